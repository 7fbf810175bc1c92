//! A user's own data as a task: `classification` (text columns → one of a set of labels)
//! and `fact_probe` (a LAMA-style subject → object table), from CSV, TSV, JSON Lines, JSON
//! or Parquet files, one file with a split column, or a Hugging Face dataset.
//!
//! Every column is a template field under its own name. Rows become [`Example`]s exactly as
//! the paper's loaders make them (values trimmed), and the budget is drawn by the same
//! sampling code ([`sample::classification_budget`], [`sample::fact_budget`]), so a paper
//! dataset written out as a table gives the same examples for the same seed as its own loader
//! (`tests/own_data.rs` checks it for SST-2, SICK-E 2-way and a LAMA relation).
//!
//! Classification: the classes are `task.labels` (rows with other labels dropped and
//! counted), else every label of the training pool, sorted (integers numerically); a dev or
//! evaluation row whose label the training pool lacks is malformed. Fact probes: facts whose
//! object is not in `task.vocab` are dropped and counted, and training (and dev) facts that
//! are also evaluation facts are removed, as the LAMA loader does.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use super::sample;
use super::table::{self, ColumnRequest, ColumnRole, Request, Table};
use super::{
    Candidates, ClassificationTask, Delimiter, Example, FactProbeTask, RowSink, SplitNames,
    SplitSummary, TableSource, TaskData, TaskError, TaskSpec, TextColumns, lines, read_text,
};

/// Which split a file's (or a split column's) rows belong to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Split {
    Train,
    Dev,
    Test,
}

/// A file to read, the split its rows go to (`None`: decided by the split column), and the
/// experiment key that named it.
struct Source {
    path: PathBuf,
    split: Option<Split>,
    key: &'static str,
}

/// An example and where its row is (table index into [`Pools::tables`], row index).
type Located = (Example, usize, usize);

/// The examples of each split, before the budget, with the tables they came from.
#[derive(Default)]
struct Pools {
    train: Vec<Located>,
    dev: Option<Vec<Located>>,
    test: Vec<Located>,
    tables: Vec<table::Locator>,
    skipped: usize,
    /// Rows whose split-column value names no split.
    unassigned: usize,
}

fn examples(pool: Vec<Located>) -> Vec<Example> {
    pool.into_iter().map(|(e, _, _)| e).collect()
}

/// Loads a table task and draws its budget for `seed`.
pub fn load(spec: &TaskSpec, seed: u64, text: &TextColumns) -> Result<TaskData, TaskError> {
    let own = spec
        .table()
        .expect("only table kinds reach the generic loader");
    let source = &own.source;
    let Resolved {
        sources,
        split_column,
        origin,
    } = sources(source)?;
    let request = request(spec, text, split_column.as_deref());
    let mut pools = Pools {
        dev: has_dev_split(source).then(Vec::new),
        ..Default::default()
    };
    let mut files = vec![];
    for s in &sources {
        let format = table::format_of(&s.path, own.format, s.key)?;
        let delimiter = own.delimiter.map(Delimiter::byte);
        let rows = table::read(&s.path, format, delimiter, &request, s.key)?;
        collect(
            spec,
            source,
            &rows,
            s.split,
            split_column.as_deref(),
            &request,
            &mut pools,
        )?;
        files.push(s.path.clone());
    }
    check_not_empty(source, &pools)?;
    let mut data = match spec {
        TaskSpec::Classification(task) => classification(spec, task, seed, pools, source)?,
        TaskSpec::FactProbe(task) => {
            let (data, vocab_file) = fact_probe(spec, task, seed, pools)?;
            files.extend(vocab_file);
            data
        }
        _ => unreachable!("only table kinds reach the generic loader"),
    };
    data.files = files;
    data.origin = origin;
    Ok(data)
}

/// A source resolved to files.
struct Resolved {
    sources: Vec<Source>,
    /// One-file sources: the column naming each row's split.
    split_column: Option<String>,
    /// Hub sources: the dataset id and commit, for provenance.
    origin: Option<String>,
}

/// Whether a source names a dev split of its own (without one, dev is drawn from train).
fn has_dev_split(source: &TableSource) -> bool {
    match source {
        TableSource::Files { dev, .. } => dev.is_some(),
        TableSource::OneFile { splits, .. } | TableSource::Hub { splits, .. } => {
            splits.as_ref().is_some_and(|s| s.dev.is_some())
        }
    }
}

/// The files of a source, the split column (one-file sources) and the hub origin.
fn sources(source: &TableSource) -> Result<Resolved, TaskError> {
    let file = |path: &PathBuf, split, key| Source {
        path: path.clone(),
        split: Some(split),
        key,
    };
    Ok(match source {
        TableSource::Files { train, dev, test } => {
            let mut list = vec![file(train, Split::Train, "task.train")];
            list.extend(dev.iter().map(|d| file(d, Split::Dev, "task.dev")));
            list.push(file(test, Split::Test, "task.test"));
            Resolved {
                sources: list,
                split_column: None,
                origin: None,
            }
        }
        TableSource::OneFile {
            file: path,
            split_column,
            ..
        } => Resolved {
            sources: vec![Source {
                path: path.clone(),
                split: None,
                key: "task.file",
            }],
            split_column: Some(split_column.clone()),
            origin: None,
        },
        TableSource::Hub {
            id,
            config,
            revision,
            splits,
        } => {
            let found = super::hub::resolve(
                id,
                config.as_deref(),
                revision.as_deref().unwrap_or("main"),
                SplitNames::given_or_default(splits),
            )?;
            let mut list: Vec<Source> = found
                .train
                .iter()
                .map(|p| file(p, Split::Train, "task.hub"))
                .collect();
            for p in found.dev.iter().flatten() {
                list.push(file(p, Split::Dev, "task.hub"));
            }
            list.extend(found.test.iter().map(|p| file(p, Split::Test, "task.hub")));
            Resolved {
                sources: list,
                split_column: None,
                origin: Some(found.origin),
            }
        }
    })
}

/// The columns a table task reads.
fn request(spec: &TaskSpec, text: &TextColumns, split_column: Option<&str>) -> Request {
    let mut columns = vec![];
    let mut push = |name: &str, role, purpose: String, key: &str| {
        columns.push(ColumnRequest {
            name: name.to_string(),
            role,
            purpose,
            key: key.to_string(),
        })
    };
    match spec {
        TaskSpec::Classification(task) => push(
            task.label_column(),
            ColumnRole::Key,
            "the label column, task.label".into(),
            "task.label",
        ),
        TaskSpec::FactProbe(task) => {
            push(
                task.subject_column(),
                ColumnRole::Text,
                "the subject column, task.subject".into(),
                "task.subject",
            );
            push(
                task.object_column(),
                ColumnRole::Key,
                "the object column, task.object".into(),
                "task.object",
            );
        }
        _ => unreachable!("only table kinds reach the generic loader"),
    }
    if let Some(split) = split_column {
        push(
            split,
            ColumnRole::Key,
            "the split column, task.split_column".into(),
            "task.split_column",
        );
    }
    let all_text = match text {
        TextColumns::Named(fields) => {
            for f in fields {
                push(
                    f,
                    ColumnRole::Text,
                    format!("the template's field `{{{f}}}`"),
                    "method.template",
                );
            }
            false
        }
        TextColumns::AllText => true,
    };
    Request { columns, all_text }
}

/// Turns a table's rows into examples of their splits, under the malformed-row policy.
fn collect(
    spec: &TaskSpec,
    source: &TableSource,
    table: &Table,
    split: Option<Split>,
    split_column: Option<&str>,
    request: &Request,
    pools: &mut Pools,
) -> Result<(), TaskError> {
    let answer_column = match spec {
        TaskSpec::Classification(task) => task.label_column(),
        TaskSpec::FactProbe(task) => task.object_column(),
        _ => unreachable!("only table kinds reach the generic loader"),
    };
    // Text fields: the requested ones (subject first for facts), then any others, deduplicated.
    let mut fields: Vec<&str> = vec![];
    for name in request
        .columns
        .iter()
        .filter(|c| c.role == ColumnRole::Text)
        .map(|c| c.name.as_str())
        .chain(table.extra_text.iter().map(String::as_str))
    {
        if !fields.contains(&name) && name != answer_column && Some(name) != split_column {
            fields.push(name);
        }
    }
    let answers = table.column(answer_column);
    let split_values = split_column.map(|c| table.column(c));
    let field_values: Vec<&[Option<String>]> = fields.iter().map(|f| table.column(f)).collect();
    let mut sink = RowSink::new(spec.budget().malformed_rows);
    for row in 0..table.len() {
        let bad = |column: &str, message: String| TaskError::Row {
            path: table.locator.path.clone(),
            place: table.place(row),
            column: column.to_string(),
            message,
        };
        let row_split = match (split, split_values) {
            (Some(s), _) => Ok(s),
            (None, Some(values)) => match values[row].as_deref() {
                None => Err(bad(
                    split_column.unwrap_or_default(),
                    "no split name".into(),
                )),
                Some(v) => match split_of(source, v) {
                    Some(s) => Ok(s),
                    None => {
                        pools.unassigned += 1;
                        continue;
                    }
                },
            },
            (None, None) => unreachable!("a one-file source has a split column"),
        };
        let example = row_split.and_then(|s| {
            let mut example_fields = Vec::with_capacity(fields.len());
            for (name, values) in fields.iter().zip(&field_values) {
                match &values[row] {
                    Some(v) => example_fields.push((name.to_string(), v.clone())),
                    None => return Err(bad(name, "empty or missing text".into())),
                }
            }
            let label = answers[row]
                .clone()
                .ok_or_else(|| bad(answer_column, "empty or missing value".into()))?;
            Ok((
                s,
                Example {
                    fields: example_fields,
                    label,
                },
                row,
            ))
        });
        sink.push(example)?;
    }
    pools.skipped += sink.skipped;
    let table_index = pools.tables.len();
    pools.tables.push(table.locator.clone());
    for (s, example, row) in sink.rows {
        let located = (example, table_index, row);
        match s {
            Split::Train => pools.train.push(located),
            Split::Dev => pools
                .dev
                .as_mut()
                .expect("a source with dev rows has a dev split")
                .push(located),
            Split::Test => pools.test.push(located),
        }
    }
    Ok(())
}

/// The split a split-column value names, under `task.splits`.
fn split_of(source: &TableSource, value: &str) -> Option<Split> {
    let TableSource::OneFile { splits, .. } = source else {
        return None;
    };
    let splits = SplitNames::given_or_default(splits);
    if value == splits.train {
        Some(Split::Train)
    } else if splits.dev.as_deref() == Some(value) {
        Some(Split::Dev)
    } else if value == splits.test {
        Some(Split::Test)
    } else {
        None
    }
}

/// Every split a task reads must have rows.
fn check_not_empty(source: &TableSource, pools: &Pools) -> Result<(), TaskError> {
    let (name_of, key): (Box<dyn Fn(Split) -> String>, &str) = match source {
        TableSource::Files { train, dev, test } => (
            Box::new(move |s| {
                let p = match s {
                    Split::Train => train,
                    Split::Dev => dev.as_ref().expect("a dev pool has a file"),
                    Split::Test => test,
                };
                format!("file `{}`", p.display())
            }),
            "task",
        ),
        TableSource::OneFile {
            file,
            split_column,
            splits,
        } => (
            Box::new(move |s| {
                let splits = SplitNames::given_or_default(splits);
                let value = match s {
                    Split::Train => splits.train.clone(),
                    Split::Dev => splits.dev.clone().unwrap_or_default(),
                    Split::Test => splits.test.clone(),
                };
                format!(
                    "split `{value}` (rows of `{}` whose `{split_column}` is `{value}`)",
                    file.display()
                )
            }),
            "task.splits",
        ),
        TableSource::Hub { id, splits, .. } => (
            Box::new(move |s| {
                let splits = SplitNames::given_or_default(splits);
                let value = match s {
                    Split::Train => splits.train.clone(),
                    Split::Dev => splits.dev.clone().unwrap_or_default(),
                    Split::Test => splits.test.clone(),
                };
                format!("split `{value}` of `{id}`")
            }),
            "task.splits",
        ),
    };
    let role = |s| match s {
        Split::Train => "training",
        Split::Dev => "dev",
        Split::Test => "evaluation",
    };
    let empty = [
        (Split::Train, pools.train.is_empty()),
        (Split::Dev, pools.dev.as_ref().is_some_and(Vec::is_empty)),
        (Split::Test, pools.test.is_empty()),
    ];
    match empty.into_iter().find(|(_, e)| *e) {
        Some((s, _)) => Err(TaskError::Setting {
            key: key.to_string(),
            message: format!(
                "the {} {} has no usable rows{}",
                role(s),
                name_of(s),
                if pools.skipped > 0 {
                    format!(" ({} malformed rows skipped)", pools.skipped)
                } else {
                    String::new()
                }
            ),
        }),
        None => Ok(()),
    }
}

/// Classes sorted as a user expects: integers numerically, then strings.
fn sorted_classes(labels: BTreeSet<&str>) -> Vec<String> {
    let mut classes: Vec<&str> = labels.into_iter().collect();
    classes.sort_by(|a, b| match (a.parse::<i64>(), b.parse::<i64>()) {
        (Ok(x), Ok(y)) => x.cmp(&y),
        (Ok(_), Err(_)) => std::cmp::Ordering::Less,
        (Err(_), Ok(_)) => std::cmp::Ordering::Greater,
        _ => a.cmp(b),
    });
    classes.into_iter().map(str::to_string).collect()
}

fn classification(
    spec: &TaskSpec,
    task: &ClassificationTask,
    seed: u64,
    mut pools: Pools,
    source: &TableSource,
) -> Result<TaskData, TaskError> {
    let present: BTreeSet<&str> = pools
        .train
        .iter()
        .map(|(e, _, _)| e.label.as_str())
        .collect();
    let mut filtered = pools.unassigned;
    let classes = match &task.labels {
        Some(listed) => {
            if let Some(absent) = listed.iter().find(|l| !present.contains(l.as_str())) {
                return Err(TaskError::Setting {
                    key: "task.labels".into(),
                    message: format!(
                        "class `{absent}` never occurs in the label column `{}` of the training data (its labels: {})",
                        task.label_column(),
                        sorted_classes(present).join(", ")
                    ),
                });
            }
            listed.clone()
        }
        None => sorted_classes(present),
    };
    let known: BTreeSet<String> = classes.iter().cloned().collect();
    let is_known = |l: &Located| known.contains(&l.0.label);
    if task.labels.is_some() {
        // Listed classes: rows of other classes are dropped and counted.
        for pool in [
            Some(&mut pools.train),
            pools.dev.as_mut(),
            Some(&mut pools.test),
        ]
        .into_iter()
        .flatten()
        {
            let before = pool.len();
            pool.retain(is_known);
            filtered += before - pool.len();
        }
    } else {
        // Without a class list, a label the training data lacks is a malformed row.
        for pool in [pools.dev.as_mut(), Some(&mut pools.test)]
            .into_iter()
            .flatten()
        {
            if let Some((e, table, row)) = pool.iter().find(|l| !is_known(l)) {
                if spec.budget().malformed_rows == super::MalformedRows::Error {
                    let at = &pools.tables[*table];
                    return Err(TaskError::Row {
                        path: at.path.clone(),
                        place: at.place(*row),
                        column: task.label_column().to_string(),
                        message: format!(
                            "label `{}` does not occur in the training data (its labels: {}); list the classes to keep in task.labels, or set task.malformed_rows = \"skip\"",
                            e.label,
                            classes.join(", ")
                        ),
                    });
                }
                let before = pool.len();
                pool.retain(is_known);
                pools.skipped += before - pool.len();
            }
        }
    }
    check_not_empty(source, &pools)?;
    let name = spec.display_name();
    let dev_what = match source {
        TableSource::OneFile { splits, .. } | TableSource::Hub { splits, .. } => {
            SplitNames::given_or_default(splits)
                .dev
                .clone()
                .unwrap_or_default()
        }
        TableSource::Files { dev, .. } => dev
            .as_ref()
            .map(|d| d.display().to_string())
            .unwrap_or_default(),
    };
    let mut train_pool = examples(pools.train);
    let mut dev_pool = pools.dev.map(examples);
    let test_pool = examples(pools.test);
    let train_summary = SplitSummary::pool("train", &train_pool, true);
    let dev_summary = dev_pool
        .as_deref()
        .map(|d| SplitSummary::pool("dev", d, true));
    let test_summary = SplitSummary::pool("test", &test_pool, true);
    let (train, dev, test) = sample::classification_budget(
        spec,
        spec.budget().balance,
        seed,
        &name,
        &mut train_pool,
        dev_pool.as_mut().map(|d| (d, dev_what.as_str())),
        test_pool,
    )?;
    let train_summary = train_summary.with_drawn(&train);
    let dev_summary = dev_summary
        .unwrap_or_else(|| SplitSummary::rest_of("dev", &train_summary))
        .with_drawn(&dev);
    let splits = vec![train_summary, dev_summary, test_summary.with_drawn(&test)];
    Ok(TaskData {
        train,
        dev,
        test,
        classes,
        candidates: None,
        manual_template: None,
        files: vec![],
        skipped_rows: pools.skipped,
        filtered_examples: filtered,
        origin: None,
        splits,
    })
}

/// Reads a candidate vocabulary: one word per line.
fn read_vocab(path: &Path) -> Result<Vec<String>, TaskError> {
    let text = read_text(path, "the candidate vocabulary named by task.vocab")?;
    let mut first_line: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    let mut words: Vec<String> = vec![];
    for (line, word) in lines(&text).map(|(n, l)| (n, l.trim())) {
        if word.is_empty() {
            continue;
        }
        // A candidate listed twice would be ranked against itself.
        if let Some(first) = first_line.insert(word, line) {
            return Err(TaskError::Table {
                path: path.to_owned(),
                key: "task.vocab".into(),
                message: format!(
                    "line {line} repeats `{word}` (first on line {first}); list each candidate answer once"
                ),
            });
        }
        words.push(word.to_string());
    }
    if words.is_empty() {
        return Err(TaskError::Table {
            path: path.to_owned(),
            key: "task.vocab".into(),
            message: "has no words (expected one candidate answer per line)".into(),
        });
    }
    Ok(words)
}

fn fact_probe(
    spec: &TaskSpec,
    task: &FactProbeTask,
    seed: u64,
    pools: Pools,
) -> Result<(TaskData, Option<PathBuf>), TaskError> {
    let mut filtered = pools.unassigned;
    let vocab = task.vocab.as_deref().map(read_vocab).transpose()?;
    let mut train_pool = examples(pools.train);
    let mut dev_pool = pools.dev.map(examples);
    let mut test = examples(pools.test);
    let subject = task.subject_column();
    let fact = |e: &Example| {
        (
            e.field(subject).unwrap_or_default().to_string(),
            e.label.clone(),
        )
    };
    // Facts also in the evaluation split never train (LAMA's rule), in-vocabulary or not.
    let evaluation_facts: BTreeSet<(String, String)> = test.iter().map(fact).collect();
    if let Some(words) = &vocab {
        let in_vocab: BTreeSet<&str> = words.iter().map(String::as_str).collect();
        let mut keep = |pool: &mut Vec<Example>| {
            let before = pool.len();
            pool.retain(|e| in_vocab.contains(e.label.as_str()));
            filtered += before - pool.len();
        };
        keep(&mut test);
        keep(&mut train_pool);
        if let Some(dev) = &mut dev_pool {
            keep(dev);
        }
    }
    if task.ranking == super::Ranking::Lama {
        filtered += super::remove_duplicate_facts(&mut test, subject);
    }
    let unseen = |pool: &mut Vec<Example>| pool.retain(|e| !evaluation_facts.contains(&fact(e)));
    unseen(&mut train_pool);
    if let Some(dev) = &mut dev_pool {
        unseen(dev);
    }
    let name = spec.display_name();
    let train_summary = SplitSummary::pool("train", &train_pool, false);
    let dev_summary = dev_pool
        .as_deref()
        .map(|d| SplitSummary::pool("dev", d, false));
    let test_summary = SplitSummary::pool("test", &test, false);
    let (train, dev, test) =
        sample::fact_budget(spec, seed, &name, &mut train_pool, dev_pool.as_mut(), test)?;
    let train_summary = train_summary.with_drawn(&train);
    let dev_summary = dev_summary
        .unwrap_or_else(|| SplitSummary::rest_of("dev", &train_summary))
        .with_drawn(&dev);
    let splits = vec![train_summary, dev_summary, test_summary.with_drawn(&test)];
    let data = TaskData {
        train,
        dev,
        test,
        classes: vec![],
        candidates: Some(match vocab {
            Some(words) => Candidates::Words(words),
            None => Candidates::ModelVocabulary,
        }),
        manual_template: None,
        files: vec![],
        skipped_rows: pools.skipped,
        filtered_examples: filtered,
        origin: None,
        splits,
    };
    Ok((data, task.vocab.clone()))
}
