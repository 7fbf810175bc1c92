//! SICK-E from `SICK.txt` (tab-separated, CRLF, no final newline). `SemEval_set` gives the
//! splits: TRAIN → train budget, TRIAL → dev budget, TEST → evaluation. The paper's
//! variants are built from the file: standard 3-class, 3-way balanced (every split
//! down-sampled to equal classes), 2-way (contradiction vs. entailment, neutral pairs left
//! out, every split down-sampled to equal classes: the paper's "unbiased variant with 2-way
//! classification of contradiction vs. entailment").

use super::sample::{self, rng};
use super::{
    DataPaths, Example, RowSink, SickVariant, TaskData, TaskError, TaskSpec, lines, read_text,
};

const LABELS: [&str; 3] = ["CONTRADICTION", "ENTAILMENT", "NEUTRAL"];

/// Class names of a variant, in a fixed order.
pub fn classes(variant: SickVariant) -> Vec<String> {
    let names: &[&str] = match variant {
        SickVariant::TwoWay => &["CONTRADICTION", "ENTAILMENT"],
        _ => &LABELS,
    };
    names.iter().map(|s| s.to_string()).collect()
}

struct Row {
    split: String,
    example: Example,
}

pub fn load(spec: &TaskSpec, paths: &DataPaths, seed: u64) -> Result<TaskData, TaskError> {
    let path = paths.data_dir.join("sick/SICK.txt");
    let variant = spec.variant().unwrap_or(SickVariant::Standard);
    let text = read_text(
        &path,
        "SICK is shipped in the repository's data/sick/; set data_dir",
    )?;
    let mut rows = lines(&text);
    let header: Vec<&str> = rows
        .next()
        .map(|(_, h)| h.split('\t').collect())
        .unwrap_or_default();
    let column = |name: &str| {
        header
            .iter()
            .position(|h| *h == name)
            .ok_or_else(|| TaskError::Malformed {
                path: path.clone(),
                line: 1,
                message: format!("header lacks column `{name}`"),
            })
    };
    let (a, b, label, split) = (
        column("sentence_A")?,
        column("sentence_B")?,
        column("entailment_label")?,
        column("SemEval_set")?,
    );
    let mut sink = RowSink::new(spec.budget().malformed_rows);
    for (line, row) in rows {
        if row.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = row.split('\t').collect();
        let parsed = if fields.len() != header.len() {
            Err(format!(
                "expected {} fields, found {}",
                header.len(),
                fields.len()
            ))
        } else if !LABELS.contains(&fields[label]) {
            Err(format!("unknown entailment_label `{}`", fields[label]))
        } else {
            let gold = fields[label];
            Ok(Row {
                split: fields[split].to_string(),
                example: Example {
                    fields: vec![
                        ("sentence_A".into(), fields[a].trim().to_string()),
                        ("sentence_B".into(), fields[b].trim().to_string()),
                    ],
                    label: gold.to_string(),
                },
            })
        };
        sink.push(parsed.map_err(|message| TaskError::Malformed {
            path: path.clone(),
            line,
            message,
        }))?;
    }
    let keep = |r: &&Row| variant != SickVariant::TwoWay || r.example.label != "NEUTRAL";
    let split_of = |name: &str| -> Vec<Example> {
        sink.rows
            .iter()
            .filter(keep)
            .filter(|r| r.split == name)
            .map(|r| r.example.clone())
            .collect()
    };
    let (mut train_pool, mut dev_pool, mut test) =
        (split_of("TRAIN"), split_of("TRIAL"), split_of("TEST"));
    let unbiased = variant != SickVariant::Standard;
    let balance = spec.budget().balance || unbiased;
    if unbiased {
        test = sample::equalize_classes(test, &mut rng(0, "test-balance"));
    }
    let (train, dev, test) = sample::classification_budget(
        spec,
        balance,
        seed,
        "SICK-E",
        &mut train_pool,
        Some((&mut dev_pool, "TRIAL")),
        test,
    )?;
    Ok(TaskData {
        train,
        dev,
        test,
        classes: classes(variant),
        candidates: None,
        manual_template: None,
        files: vec![path],
        skipped_rows: sink.skipped,
        filtered_examples: 0,
        origin: None,
        splits: vec![],
    })
}
