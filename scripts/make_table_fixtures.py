"""Tables in the dialects real tools write, for the table reader's tests (standard library only).

Writes ``tests/fixtures/tables/``, every file holding the same six reviews (``REVIEWS``; the
tests in ``tests/own_data.rs`` list them too) in one tool's dialect:

* ``r_write_csv.csv`` — R's ``write.csv(df)``: a quoted header whose first name is empty
  (the row names column), every string quoted, embedded quotes doubled, LF line ends.
* ``pandas_quote_all.csv`` — pandas' ``df.to_csv(index=False, quoting=csv.QUOTE_ALL)``:
  every field quoted, the header too.
* ``excel_semicolon.csv`` — a spreadsheet's "CSV UTF-8" export in a locale whose decimal
  separator is a comma: a UTF-8 BOM, ``;`` between fields, minimal quoting, CRLF line ends,
  no newline after the last row (read with ``delimiter = ";"``).
* ``blank_lines.csv`` — minimal quoting with blank lines (one of spaces) between rows and at
  the end.
* ``quoted_tabs.tsv`` — tab-separated, fields quoted where needed (Python's ``csv`` with
  ``delimiter="\\t"``), read as ``format = "csv"`` with ``delimiter = "\\t"``.
* ``orange.tab`` — Orange's tab format: the header, a type row (``string``, ``discrete``), a
  flags row whose text cell is empty and whose label cell says ``class``, a blank line, then
  the data (tab-separated, unquoted).

Run: ``python3 scripts/make_table_fixtures.py``.
"""

import csv
import io
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "tables"

REVIEWS = [
    ("a great film, really", "pos"),
    ('the "twist" was obvious', "neg"),
    ("dull; long; loud", "neg"),
    ("café scenes are lovely", "pos"),
    ("line one\nline two", "pos"),
    ("not worth it", "neg"),
]


def write(name: str, text: str, encoding: str = "utf-8") -> None:
    (OUT / name).write_bytes(text.encode(encoding))


def rows(dialect_kwargs: dict, header: list[str], body: list[list[str]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, **dialect_kwargs)
    writer.writerow(header)
    writer.writerows(body)
    return buffer.getvalue()


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    plain = [[r, s] for r, s in REVIEWS]

    # R: write.csv quotes strings (row names are strings) and doubles embedded quotes.
    write(
        "r_write_csv.csv",
        rows(
            {"quoting": csv.QUOTE_ALL, "lineterminator": "\n"},
            ["", "review", "sentiment"],
            [[str(i + 1), r, s] for i, (r, s) in enumerate(REVIEWS)],
        ),
    )
    write(
        "pandas_quote_all.csv",
        rows({"quoting": csv.QUOTE_ALL, "lineterminator": "\n"}, ["review", "sentiment"], plain),
    )
    excel = rows(
        {"delimiter": ";", "quoting": csv.QUOTE_MINIMAL, "lineterminator": "\r\n"},
        ["review", "sentiment"],
        plain,
    )
    write("excel_semicolon.csv", "\ufeff" + excel.removesuffix("\r\n"))
    minimal = rows(
        {"quoting": csv.QUOTE_MINIMAL, "lineterminator": "\n"}, ["review", "sentiment"], plain
    ).splitlines(keepends=True)
    # header, row 1, blank, row 2, spaces, rows 3.., blank at the end. Row 5 spans two lines.
    write(
        "blank_lines.csv",
        "".join(minimal[:2] + ["\n"] + minimal[2:3] + ["   \n"] + minimal[3:] + ["\n"]),
    )
    write(
        "quoted_tabs.tsv",
        rows(
            {"delimiter": "\t", "quoting": csv.QUOTE_MINIMAL, "lineterminator": "\n"},
            ["review", "sentiment"],
            plain,
        ),
    )
    # Orange: no quoting, so the review with a line break is written on one line.
    body = "".join(f"{r.replace(chr(10), ' ')}\t{s}\n" for r, s in REVIEWS)
    write("orange.tab", "review\tsentiment\nstring\tdiscrete\n\tclass\n\n" + body)


if __name__ == "__main__":
    main()
