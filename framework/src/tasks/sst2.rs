//! SST-2 (GLUE TSV, `sentence\tlabel` with a header). Train and dev budgets are drawn,
//! disjointly, from `train.tsv`; the evaluation split is GLUE's `dev.tsv` (872 sentences,
//! what papers report, since GLUE's test labels are hidden).

use std::path::Path;

use super::sample;
use super::{
    DataPaths, Example, MalformedRows, RowSink, TaskData, TaskError, TaskSpec, lines, read_text,
};

pub const CLASSES: [&str; 2] = ["0", "1"];

/// Reads one SST-2 TSV file.
pub fn read(path: &Path, policy: MalformedRows) -> Result<(Vec<Example>, usize), TaskError> {
    let text = read_text(
        path,
        "SST-2 is shipped in the repository's data/sst2/; set data_dir",
    )?;
    let mut sink = RowSink::new(policy);
    let mut rows = lines(&text);
    let header = rows.next().map(|(_, h)| h).unwrap_or("");
    if header.split('\t').collect::<Vec<_>>() != ["sentence", "label"] {
        return Err(TaskError::Malformed {
            path: path.to_owned(),
            line: 1,
            message: format!("expected header `sentence<TAB>label`, found `{header}`"),
        });
    }
    for (line, row) in rows {
        if row.trim().is_empty() {
            continue;
        }
        let parsed = match row.split('\t').collect::<Vec<_>>().as_slice() {
            [sentence, label] if CLASSES.contains(&label.trim()) => Ok(Example {
                fields: vec![("sentence".into(), sentence.trim().to_string())],
                label: label.trim().to_string(),
            }),
            [_, label] => Err(format!("unknown label `{label}` (expected 0 or 1)")),
            fields => Err(format!(
                "expected 2 tab-separated fields, found {}",
                fields.len()
            )),
        };
        sink.push(parsed.map_err(|message| TaskError::Malformed {
            path: path.to_owned(),
            line,
            message,
        }))?;
    }
    Ok((sink.rows, sink.skipped))
}

pub fn load(spec: &TaskSpec, paths: &DataPaths, seed: u64) -> Result<TaskData, TaskError> {
    let train_path = paths.data_dir.join("sst2/train.tsv");
    let eval_path = paths.data_dir.join("sst2/dev.tsv");
    let budget = spec.budget();
    let (mut pool, skipped_train) = read(&train_path, budget.malformed_rows)?;
    let (test, skipped_test) = read(&eval_path, budget.malformed_rows)?;
    let (train, dev, test) =
        sample::classification_budget(spec, budget.balance, seed, "SST-2", &mut pool, None, test)?;
    Ok(TaskData {
        train,
        dev,
        test,
        classes: CLASSES.iter().map(|c| c.to_string()).collect(),
        candidates: None,
        manual_template: None,
        files: vec![train_path, eval_path],
        skipped_rows: skipped_train + skipped_test,
        filtered_examples: 0,
        origin: None,
        splits: vec![],
    })
}
