#!/usr/bin/env python3
"""Writes data/movie_reviews/, the small dataset of experiments/own_data_example.toml.

It is part of the shipped SST-2 converted to formats the paper's loader does not read, with
string labels, as a user's own data would come:

- train.parquet: the first 2,000 rows of data/sst2/train.tsv;
- test.jsonl:    all 872 rows of data/sst2/dev.tsv (GLUE's SST-2 dev split).

Columns: `sentence` (trailing space removed) and `sentiment` ("negative" for 0,
"positive" for 1). Needs `pip install polars==1.35.2`; run from the repository root.
"""

import polars as pl

LABELS = {0: "negative", 1: "positive"}


def read(path: str) -> pl.DataFrame:
    frame = pl.read_csv(path, separator="\t", quote_char=None)
    return frame.select(
        pl.col("sentence").str.strip_chars(),
        pl.col("label").replace_strict(LABELS, return_dtype=pl.String).alias("sentiment"),
    )


read("data/sst2/train.tsv").head(2000).write_parquet(
    "data/movie_reviews/train.parquet", statistics=False
)
read("data/sst2/dev.tsv").write_ndjson("data/movie_reviews/test.jsonl")
