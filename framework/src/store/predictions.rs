//! A cell's predictions as a Parquet file beside its record (`predictions/<id>.parquet`):
//! columns `example` (u32), `gold`, `predicted` (null for fact retrieval), `rank` (u32, null
//! for an example that could not be scored) and, for classification, one `score_<class>`
//! column (f32) per class in class order (null where a method has no scores).

use std::fs;
use std::io::Cursor;
use std::path::{Path, PathBuf};

use polars::prelude::*;

use super::{Store, StoreError, write_atomic};
use crate::record::{Prediction, Predictions, Record};

impl Store {
    /// Path of a cell's predictions on its evaluation split (see [`Record::predictions`]).
    pub fn predictions_path(&self, id: &str) -> PathBuf {
        self.root.join("predictions").join(format!("{id}.parquet"))
    }

    /// A cell's stored predictions (`None`: the cell stored none, as records from before
    /// predictions were kept).
    pub fn predictions(&self, id: &str) -> Result<Option<Predictions>, StoreError> {
        let path = self.predictions_path(id);
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(StoreError::Io { path, source }),
        };
        from_parquet(bytes)
            .map(Some)
            .map_err(|source| StoreError::Parquet { path, source })
    }

    /// Writes predictions atomically to `path` (a cell's own, or any file `eval` is asked for).
    pub fn write_predictions_to(path: &Path, predictions: &Predictions) -> Result<(), StoreError> {
        let bytes = to_parquet(predictions).map_err(|source| StoreError::Parquet {
            path: path.to_owned(),
            source,
        })?;
        write_atomic(path, &bytes)
    }

    /// Fills in the stored predictions of each record (those without a file keep `None`).
    pub fn attach_predictions(&self, records: &mut [Record]) -> Result<(), StoreError> {
        for record in records {
            record.predictions = self.predictions(&record.id)?;
        }
        Ok(())
    }
}

const SCORE_PREFIX: &str = "score_";

/// The predictions as Parquet bytes.
fn to_parquet(p: &Predictions) -> PolarsResult<Vec<u8>> {
    let rows = &p.rows;
    let mut columns = vec![
        Column::new(
            "example".into(),
            rows.iter().map(|r| r.example).collect::<Vec<u32>>(),
        ),
        Column::new(
            "gold".into(),
            rows.iter().map(|r| r.gold.as_str()).collect::<Vec<&str>>(),
        ),
        Column::new(
            "predicted".into(),
            rows.iter()
                .map(|r| r.predicted.as_deref())
                .collect::<Vec<Option<&str>>>(),
        ),
        Column::new(
            "rank".into(),
            rows.iter().map(|r| r.rank).collect::<Vec<Option<u32>>>(),
        ),
    ];
    for (i, class) in p.classes.iter().enumerate() {
        columns.push(Column::new(
            format!("{SCORE_PREFIX}{class}").as_str().into(),
            rows.iter()
                .map(|r| r.scores.get(i).copied())
                .collect::<Vec<Option<f32>>>(),
        ));
    }
    let mut df = DataFrame::new(columns)?;
    let mut buf = vec![];
    ParquetWriter::new(&mut buf).finish(&mut df)?;
    Ok(buf)
}

/// Predictions from Parquet bytes written by [`to_parquet`].
fn from_parquet(bytes: Vec<u8>) -> PolarsResult<Predictions> {
    let df = ParquetReader::new(Cursor::new(bytes)).finish()?;
    let example = df.column("example")?.u32()?.clone();
    let gold = df.column("gold")?.str()?.clone();
    let predicted = df.column("predicted")?.str()?.clone();
    let rank = df.column("rank")?.u32()?.clone();
    let mut classes = vec![];
    let mut scores = vec![];
    for column in df.get_columns() {
        if let Some(class) = column.name().strip_prefix(SCORE_PREFIX) {
            classes.push(class.to_string());
            scores.push(column.f32()?.clone());
        }
    }
    let rows = (0..df.height())
        .map(|i| {
            let missing =
                |what: &str| PolarsError::ComputeError(format!("row {i}: no {what}").into());
            Ok(Prediction {
                example: example.get(i).ok_or_else(|| missing("example"))?,
                gold: gold.get(i).ok_or_else(|| missing("gold"))?.to_string(),
                predicted: predicted.get(i).map(str::to_string),
                rank: rank.get(i),
                scores: scores.iter().filter_map(|c| c.get(i)).collect(),
            })
        })
        .collect::<PolarsResult<Vec<_>>>()?;
    Ok(Predictions { classes, rows })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn predictions_round_trip_exactly() {
        let p = Predictions {
            classes: vec!["0".into(), "1".into()],
            rows: vec![
                Prediction {
                    example: 0,
                    gold: "1".into(),
                    predicted: Some("1".into()),
                    rank: Some(0),
                    scores: vec![-1.25, 0.1 + 0.2],
                },
                Prediction {
                    example: 3,
                    gold: "0".into(),
                    predicted: None,
                    rank: None,
                    scores: vec![],
                },
            ],
        };
        assert_eq!(from_parquet(to_parquet(&p).unwrap()).unwrap(), p);
        let facts = Predictions {
            classes: vec![],
            rows: vec![Prediction {
                example: 7,
                gold: "paris".into(),
                predicted: None,
                rank: Some(12),
                scores: vec![],
            }],
        };
        assert_eq!(from_parquet(to_parquet(&facts).unwrap()).unwrap(), facts);
    }
}
