//! Hostile input by generation (proptest): mutated shipped experiment files, `--set`
//! overrides, templates, mutated rows of the shipped SST-2 and SICK files and of a user's
//! table, and byte-mutated saved prompts. The property everywhere: no panic, and an error names the file it came from.
//!
//! Seeded and bounded: `FUZZ_CASES` cases per property (default 48, a few seconds in
//! `just test`); `just fuzz` runs many more. Each property prints its case count, which
//! `just reliability` collects into `reports/reliability.md`.

mod common;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed, TestRunner};

/// The bounded, seeded runner every property uses (no regression files are written).
fn runner() -> TestRunner {
    let cases = std::env::var("FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(48);
    TestRunner::new(Config {
        cases,
        rng_seed: RngSeed::Fixed(0x5eed),
        failure_persistence: None,
        ..Config::default()
    })
}

/// What an input led to, when it did not break the property.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Accepted,
    /// Refused with an error that names where the fault is.
    Rejected,
}

/// Runs `property` on inputs from `strategy`; panics (with the minimal input) on the first
/// failure, and prints how many inputs were tried, accepted and rejected.
fn check<S: Strategy>(
    name: &str,
    strategy: S,
    property: impl Fn(S::Value) -> Result<Outcome, String>,
) where
    S::Value: std::fmt::Debug,
{
    let tried = AtomicUsize::new(0);
    let rejected = AtomicUsize::new(0);
    let mut runner = runner();
    let result = runner.run(&strategy, |input| {
        tried.fetch_add(1, Ordering::Relaxed);
        let outcome = property(input).map_err(TestCaseError::fail)?;
        if outcome == Outcome::Rejected {
            rejected.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("{name}: {e}");
    }
    let (tried, rejected) = (tried.into_inner(), rejected.into_inner());
    eprintln!(
        "fuzz | {name} | {tried} | {} | {rejected}",
        tried - rejected
    );
}

/// One mutation of a TOML file's lines.
#[derive(Debug, Clone)]
enum Mutation {
    /// Delete line `i`.
    Delete(usize),
    /// Repeat line `i` (a duplicate key, or a duplicate table header).
    Duplicate(usize),
    /// Replace the value after `=` on line `i` with another type.
    Retype(usize, &'static str),
    /// Append junk to the key on line `i` (an unknown key).
    Rename(usize),
    /// Cut the file at byte `i`.
    Truncate(usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let values = prop::sample::select(vec![
        "\"text\"",
        "-3",
        "0",
        "1.5e300",
        "true",
        "[]",
        "[1, \"a\"]",
        "{}",
        "{ kind = 3 }",
        "\"\"",
        "nan",
        "[[]]",
    ]);
    prop_oneof![
        (0usize..200).prop_map(Mutation::Delete),
        (0usize..200).prop_map(Mutation::Duplicate),
        ((0usize..200), values).prop_map(|(i, v)| Mutation::Retype(i, v)),
        (0usize..200).prop_map(Mutation::Rename),
        (0usize..20_000).prop_map(Mutation::Truncate),
    ]
}

fn apply(text: &str, mutations: &[Mutation]) -> String {
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    for m in mutations {
        if lines.is_empty() {
            break;
        }
        match *m {
            Mutation::Delete(i) => {
                lines.remove(i % lines.len());
            }
            Mutation::Duplicate(i) => {
                let i = i % lines.len();
                lines.insert(i, lines[i].clone());
            }
            Mutation::Retype(i, value) => {
                let i = i % lines.len();
                if let Some((key, _)) = lines[i].split_once('=') {
                    lines[i] = format!("{key}= {value}");
                }
            }
            Mutation::Rename(i) => {
                let i = i % lines.len();
                if let Some((key, rest)) = lines[i].split_once('=') {
                    lines[i] = format!("{}_x ={rest}", key.trim_end());
                }
            }
            Mutation::Truncate(n) => {
                let joined = lines.join("\n");
                let mut cut = n % (joined.len() + 1);
                while !joined.is_char_boundary(cut) {
                    cut -= 1;
                }
                lines = joined[..cut].lines().map(str::to_string).collect();
            }
        }
    }
    lines.join("\n")
}

/// Loads and plans an experiment; an error must name `file` (or, for a bad `--set`, the
/// override).
fn load_and_plan(file: &Path, set: &[String]) -> Result<Outcome, String> {
    let name = file.file_name().unwrap().to_string_lossy().into_owned();
    let named = |e: String| {
        let names_set = set.iter().any(|s| e.contains(&format!("--set {s}")));
        if e.contains(&name) || names_set {
            Ok(Outcome::Rejected)
        } else {
            Err(format!("error does not name {name}: {e}"))
        }
    };
    match common::load_and_plan(file, set) {
        Err(e) => named(e),
        Ok(_) => Ok(Outcome::Accepted),
    }
}

#[test]
fn mutated_shipped_experiment_files_give_errors_naming_the_file() {
    // Shipped files name data relative to the repository root, where `just run` runs.
    std::env::set_current_dir(common::repo()).unwrap();
    let files = common::shipped_experiments();
    let texts: Vec<(String, String)> = files
        .iter()
        .map(|f| {
            (
                f.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read_to_string(f).unwrap(),
            )
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let strategy = (0..texts.len(), prop::collection::vec(mutation(), 1..4));
    check("experiment files", strategy, |(which, mutations)| {
        let (name, text) = &texts[which];
        let path = dir.path().join(format!("mutated_{name}"));
        std::fs::write(&path, apply(text, &mutations)).unwrap();
        // Relative data paths resolve against the repository, as for the shipped file.
        load_and_plan(&path, &[])
    });
}

#[test]
fn generated_set_overrides_give_errors_naming_the_file() {
    std::env::set_current_dir(common::repo()).unwrap();
    let file = common::repo().join("experiments/sst2_lowres.toml");
    let key = prop::sample::select(vec![
        "task.train_size",
        "task.kind",
        "task.variant",
        "seeds",
        "method",
        "method.search.iters",
        "method.search.beam_size",
        "method.template",
        "model.source",
        "backend",
        "task",
        "grid",
        "task.train_size.x",
        "",
        "==",
    ]);
    let value = prop_oneof![
        Just(String::new()),
        "[a-z0-9_\\[\\]{}\",.= -]{0,24}".prop_map(|s| s),
        prop::sample::select(vec![
            "0".to_string(),
            "-1".into(),
            "[]".into(),
            "[0, \"x\"]".into(),
            "{ kind = \"majority\" }".into(),
            "99999999999999999999".into(),
            "\"unterminated".into(),
        ]),
    ];
    check("--set overrides", (key, value), |(key, value)| {
        load_and_plan(&file, &[format!("{key}={value}")])
    });
}

#[test]
fn generated_templates_parse_or_fail_without_panicking() {
    let piece = prop::sample::select(vec![
        "[CLS]",
        "[SEP]",
        "[T]",
        "[P]",
        "[MASK]",
        "<s>",
        "</s>",
        "{sentence}",
        "{",
        "}",
        "{}",
        "{sentence_A}",
        " ",
        "[",
        "]",
        "[T",
        "P]",
        "é",
        "\u{0}",
        "{{",
        "}}",
        "it was",
    ]);
    check("templates", prop::collection::vec(piece, 0..12), |pieces| {
        let source = pieces.concat();
        Ok(match autoprompt::prompt::Template::parse(&source) {
            Ok(t) => {
                let _ = (t.num_triggers(), t.fields());
                Outcome::Accepted
            }
            Err(_) => Outcome::Rejected,
        })
    });
}

/// One mutation of a data row.
fn row_mutation() -> impl Strategy<Value = (usize, u8)> {
    (0usize..60, 0u8..8)
}

fn mutate_rows(text: &str, mutations: &[(usize, u8)]) -> Vec<u8> {
    let mut lines: Vec<Vec<u8>> = text.lines().map(|l| l.as_bytes().to_vec()).collect();
    for &(i, kind) in mutations {
        // Row 0 is the header: mutate it too, rarely.
        let i = i % lines.len();
        let line = &mut lines[i];
        match kind {
            0 => line.retain(|&b| b != b'\t'),
            1 => line.extend_from_slice(b"\textra"),
            2 => {
                if let Some(p) = line.iter().rposition(|&b| b == b'\t') {
                    line.truncate(p + 1);
                    line.extend_from_slice(b"not-a-label");
                }
            }
            3 => line.clear(),
            4 => line.extend_from_slice(&[0xff, 0xfe, b'x']),
            5 => line.truncate(line.len() / 2),
            6 => line.insert(0, b'"'),
            _ => line.extend_from_slice(b"\t\t\t"),
        }
    }
    lines.join(&b"\n"[..])
}

/// Loads `spec` from `paths`; an error must name the mutated file.
fn load_task(
    spec: &autoprompt::tasks::TaskSpec,
    paths: &autoprompt::tasks::DataPaths,
    file_name: &str,
) -> Result<Outcome, String> {
    match autoprompt::tasks::load(spec, paths, 0) {
        Ok(_) => Ok(Outcome::Accepted),
        Err(e) if autoprompt::errors::chain_text(&e).contains(file_name) => Ok(Outcome::Rejected),
        Err(e) => Err(format!(
            "error does not name {file_name}: {}",
            autoprompt::errors::Chain(&e)
        )),
    }
}

#[test]
fn mutated_sst2_and_sick_rows_give_errors_naming_the_file() {
    use autoprompt::tasks::{DataPaths, TaskKind};
    let data = common::data_dir();
    let head = |path: PathBuf, n: usize| -> String {
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .take(n)
            .collect::<Vec<_>>()
            .join("\n")
    };
    let sst2_train = head(data.join("sst2/train.tsv"), 60);
    let sst2_dev = head(data.join("sst2/dev.tsv"), 40);
    let sick = {
        // Enough of every split and label for a small budget.
        let text = std::fs::read_to_string(data.join("sick/SICK.txt")).unwrap();
        let mut lines = text.lines();
        let header = lines.next().unwrap().to_string();
        let mut kept = vec![header];
        let mut counts = std::collections::BTreeMap::new();
        for line in lines {
            let fields: Vec<&str> = line.split('\t').collect();
            let key = (fields[11].to_string(), fields[3].to_string());
            let n = counts.entry(key).or_insert(0);
            if *n < 6 {
                *n += 1;
                kept.push(line.to_string());
            }
        }
        kept.join("\n")
    };
    let dir = tempfile::tempdir().unwrap();
    let strategy = (0..2usize, prop::collection::vec(row_mutation(), 1..5));
    check("SST-2 / SICK rows", strategy, |(which, mutations)| {
        let case = tempfile::tempdir_in(dir.path()).unwrap();
        let paths = DataPaths {
            data_dir: case.path().to_owned(),
            lama_dir: "unused".into(),
            lpaqa_dir: "unused".into(),
        };
        if which == 0 {
            std::fs::create_dir_all(case.path().join("sst2")).unwrap();
            std::fs::write(
                case.path().join("sst2/train.tsv"),
                mutate_rows(&sst2_train, &mutations),
            )
            .unwrap();
            std::fs::write(case.path().join("sst2/dev.tsv"), &sst2_dev).unwrap();
            load_task(
                &common::task_spec(TaskKind::Sst2, 8, 4),
                &paths,
                "train.tsv",
            )
        } else {
            std::fs::create_dir_all(case.path().join("sick")).unwrap();
            std::fs::write(
                case.path().join("sick/SICK.txt"),
                mutate_rows(&sick, &mutations),
            )
            .unwrap();
            let spec = common::task_spec_with(
                TaskKind::SickE,
                6,
                3,
                serde_json::json!({ "variant": "two_way" }),
            );
            load_task(&spec, &paths, "SICK.txt")
        }
    });
}

#[test]
fn mutated_rows_of_a_users_table_give_errors_naming_the_file() {
    use autoprompt::tasks::{DataPaths, TaskKind};
    let text = "sentence\tlabel\n".to_string()
        + &(0..40)
            .map(|i| {
                format!(
                    "a sentence number {i}\t{}",
                    if i % 2 == 0 { "pos" } else { "neg" }
                )
            })
            .collect::<Vec<_>>()
            .join("\n");
    let dir = tempfile::tempdir().unwrap();
    check(
        "user table rows",
        prop::collection::vec(row_mutation(), 1..5),
        |mutations| {
            let case = tempfile::tempdir_in(dir.path()).unwrap();
            let file = case.path().join("reviews.tsv");
            std::fs::write(&file, mutate_rows(&text, &mutations)).unwrap();
            // The same table for training and evaluation: dev comes from the training pool.
            let spec = common::task_spec_with(
                TaskKind::Classification,
                8,
                4,
                serde_json::json!({ "train": file, "test": file }),
            );
            let paths = DataPaths {
                data_dir: case.path().to_owned(),
                lama_dir: "unused".into(),
                lpaqa_dir: "unused".into(),
            };
            load_task(&spec, &paths, "reviews.tsv")
        },
    );
}

/// Byte-level mutations of a saved record and of a bare prompt file, from a real run: the
/// reader gives a prompt or an error naming the file; a prompt that parses has a template
/// that parses or fails without panicking.
#[test]
fn mutated_saved_prompts_are_read_or_refused_naming_the_file() {
    common::splade_tiny();
    let dir = tempfile::tempdir().unwrap();
    let body = "[task]\nkind = \"sst2\"\ntrain_size = 16\ndev_size = 8\ntest_size = 16\n[method]\nkind = \"autoprompt\"\ntemplate = \"[CLS] {sentence} [T] [T] [P] . [SEP]\"\nlabels = { \"0\" = [\"terrible\"], \"1\" = [\"great\"] }\nsearch = { iters = 1, batch_size = 8, accumulation_steps = 1, num_candidates = 2, keep_initial = true }\n";
    let file = common::experiment(dir.path(), "saved", body);
    let out = std::process::Command::new(common::bin())
        .arg("run")
        .arg(&file)
        .current_dir(common::repo())
        .output()
        .unwrap();
    common::assert_success(&out);
    let root = dir.path().join("results/saved");
    let first_file = |sub: &str| {
        std::fs::read_dir(root.join(sub))
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .find(|p| p.extension().is_some_and(|e| e == "json"))
            .unwrap()
    };
    let seeds = [
        std::fs::read(first_file("cells")).unwrap(),
        std::fs::read(first_file("prompts")).unwrap(),
    ];
    let edit = prop_oneof![
        (0usize..100_000, any::<u8>()).prop_map(|(i, b)| (0u8, i, b)),
        (0usize..100_000, any::<u8>()).prop_map(|(i, b)| (1u8, i, b)),
        (0usize..100_000).prop_map(|i| (2u8, i, 0)),
    ];
    check(
        "saved prompt files",
        (0..2usize, prop::collection::vec(edit, 1..6)),
        |(which, edits)| {
            let mut bytes = seeds[which].clone();
            for (kind, i, b) in edits {
                if bytes.is_empty() {
                    break;
                }
                let i = i % bytes.len();
                match kind {
                    0 => bytes[i] = b,
                    1 => bytes.insert(i, b),
                    _ => bytes.truncate(i),
                }
            }
            let path = dir.path().join("mutated prompt.json");
            std::fs::write(&path, &bytes).unwrap();
            match autoprompt::methods::read_saved_prompt(&path) {
                Ok(saved) => {
                    let prompt = match saved {
                        autoprompt::methods::SavedPrompt::Record { prompt, .. } => prompt,
                        autoprompt::methods::SavedPrompt::Bare(prompt) => prompt,
                    };
                    let _ = autoprompt::prompt::Template::parse(&prompt.template);
                    Ok(Outcome::Accepted)
                }
                Err(e) if autoprompt::errors::chain_text(&e).contains("mutated prompt.json") => {
                    Ok(Outcome::Rejected)
                }
                Err(e) => Err(format!(
                    "error does not name the file: {}",
                    autoprompt::errors::Chain(&e)
                )),
            }
        },
    );
}
