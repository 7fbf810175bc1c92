//! Every model family end to end through the CLI, on real SST-2 sentences: `fill-mask` on a
//! transformers-written directory, a short AutoPrompt search that runs, is deterministic per
//! seed, and whose reported dev accuracy is what `autoprompt eval` gives its saved prompt; the
//! baselines (manual prompt, linear probe, fine-tuning); loading by hub id from a hub cache;
//! and an unknown `model_type` is an error listing the supported ones. (Numerical parity with
//! transformers is `tests/parity.rs`; host engine against burn, `tests/host_engine.rs`.)

mod common;

use std::path::{Path, PathBuf};

/// The families and the model directory each is tested with: BERT (the embedded
/// SPLADE-tiny), RoBERTa, DistilBERT, ELECTRA's generator, XLM-RoBERTa, ALBERT and ModernBERT
/// (random fixtures written by `tests/parity/make_fixtures.py`).
fn families() -> Vec<(&'static str, PathBuf)> {
    vec![
        ("bert", common::splade_tiny()),
        (
            "roberta",
            common::repo().join("tests/fixtures/tiny-roberta"),
        ),
        (
            "distilbert",
            common::repo().join("tests/fixtures/tiny-distilbert"),
        ),
        (
            "electra",
            common::repo().join("tests/fixtures/tiny-electra"),
        ),
        (
            "xlm-roberta",
            common::repo().join("tests/fixtures/tiny-xlm-roberta"),
        ),
        ("albert", common::repo().join("tests/fixtures/tiny-albert")),
        (
            "modernbert",
            common::repo().join("tests/fixtures/tiny-modernbert"),
        ),
    ]
}

/// The engine each family's search runs on with `engine = "auto"` on a CPU backend: the host
/// engine, but for ELECTRA's and ALBERT's projected embeddings (and ALBERT's `gelu_new`),
/// which fall back to burn.
fn expected_engine(family: &str) -> autoprompt::search::EngineKind {
    match family {
        "electra" | "albert" => autoprompt::search::EngineKind::Burn,
        _ => autoprompt::search::EngineKind::Host,
    }
}

/// A finished record of the experiment's only cell.
fn the_record(dir: &Path, name: &str) -> (PathBuf, autoprompt::record::Record) {
    let (path, record) = common::records(&dir.join("results"), name)
        .into_iter()
        .next()
        .expect("a record");
    assert_eq!(
        record.status,
        autoprompt::record::Status::Finished,
        "{name}: {:?}",
        record.error
    );
    (path, record)
}

#[test]
fn fill_mask_works_for_every_family() {
    for (family, model) in families() {
        let out = common::cli()
            .args(["fill-mask", "--model"])
            .arg(&model)
            .args(["--top-k", "3", "a good movie , it was [MASK] ."])
            .output()
            .unwrap();
        common::assert_success(&out);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(stdout.starts_with("mask 1:"), "{family}: {stdout}");
        assert_eq!(stdout.lines().count(), 4, "{family}: {stdout}");
    }
}

#[test]
fn an_unknown_model_type_lists_the_supported_ones() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("mystery");
    std::fs::create_dir_all(&model).unwrap();
    for entry in std::fs::read_dir(common::repo().join("tests/fixtures/tiny-distilbert"))
        .unwrap()
        .flatten()
    {
        std::fs::copy(entry.path(), model.join(entry.file_name())).unwrap();
    }
    let config = model.join("config.json");
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("\"distilbert\"", "\"mystery-lm\"");
    std::fs::write(&config, text).unwrap();
    let out = common::cli()
        .args(["fill-mask", "--model"])
        .arg(&model)
        .arg("it was [MASK] .")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("model_type `mystery-lm` is not supported")
            && stderr.contains(
                "bert, roberta, xlm-roberta, camembert, distilbert, electra, albert, modernbert"
            ),
        "{stderr}"
    );
}

#[test]
fn a_short_search_runs_on_every_family_deterministically_and_eval_agrees() {
    for (family, model) in families() {
        let body = format!(
            "[model]\nsource = {:?}\n[task]\nkind = \"sst2\"\ntrain_size = 16\ndev_size = 16\ntest_size = 32\n[method]\nkind = \"autoprompt\"\ntemplate = \"[CLS] {{sentence}} [T] [T] [P] . [SEP]\"\nlabels = \"auto\"\nsearch = {{ iters = 3, batch_size = 8, accumulation_steps = 2, num_candidates = 5 }}\nlabel_search = {{ steps = 20, k = 2 }}\n",
            model.display().to_string()
        );
        let runs: Vec<autoprompt::record::Record> = (0..2)
            .map(|run| {
                let dir = tempfile::tempdir().unwrap();
                let file = common::experiment(dir.path(), family, &body);
                // The first run logs at info level: a fallback to burn must say so.
                let quiet: &[&str] = if run == 0 { &[] } else { &["-q"] };
                let out = common::cli()
                    .args(quiet)
                    .arg("run")
                    .arg(&file)
                    .output()
                    .unwrap();
                common::assert_success(&out);
                let fallback = String::from_utf8_lossy(&out.stderr)
                    .contains("the host engine does not cover this model");
                if run == 0 {
                    assert_eq!(
                        fallback,
                        expected_engine(family) == autoprompt::search::EngineKind::Burn,
                        "{family}: the fallback info line"
                    );
                }
                let (record_path, record) = the_record(dir.path(), family);
                if run == 0 {
                    // `eval` of the saved prompt on dev gives the dev accuracy the run reported.
                    let out = common::cli()
                        .arg("eval")
                        .arg(&file)
                        .arg("--prompt")
                        .arg(&record_path)
                        .args(["--split", "dev"])
                        .output()
                        .unwrap();
                    common::assert_success(&out);
                    let stdout = String::from_utf8_lossy(&out.stdout);
                    let reported = record.metrics["dev_accuracy"];
                    let line = stdout
                        .lines()
                        .find(|l| l.trim_start().starts_with("accuracy"))
                        .unwrap_or_else(|| panic!("{family}: {stdout}"));
                    let evaluated: f64 = line.split_whitespace().last().unwrap().parse().unwrap();
                    assert!(
                        (evaluated - reported).abs() < 5e-5,
                        "{family}: eval {evaluated} vs reported dev accuracy {reported}"
                    );
                }
                record
            })
            .collect();
        let (a, b) = (&runs[0], &runs[1]);
        assert_eq!(a.search.as_ref().unwrap().steps.len(), 3, "{family}");
        assert_eq!(
            a.prompt.as_ref().unwrap().trigger_ids,
            b.prompt.as_ref().unwrap().trigger_ids,
            "{family}: not deterministic"
        );
        assert_eq!(a.metrics, b.metrics, "{family}: not deterministic");
        assert_eq!(
            a.provenance.engine,
            Some(expected_engine(family)),
            "{family}"
        );
        eprintln!(
            "{family}: triggers {:?}, labels {:?}, dev accuracy {:.4}, accuracy {:.4}",
            a.prompt.as_ref().unwrap().trigger_tokens,
            a.prompt.as_ref().unwrap().verbalizer.as_ref().map(|v| v
                .classes
                .iter()
                .map(|c| c.tokens.clone())
                .collect::<Vec<_>>()),
            a.metrics["dev_accuracy"],
            a.metrics["accuracy"]
        );
    }
}

/// ALBERT's layers share one set of weights; fine-tuning it is refused with a reason rather
/// than run with each layer's copy updated apart.
#[test]
fn fine_tuning_albert_is_refused_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let body = format!(
        "[model]\nsource = {:?}\n[task]\nkind = \"sst2\"\ntrain_size = 8\ndev_size = 8\ntest_size = 8\n[method]\nkind = \"finetune\"\nfinetune = {{ epochs = 1 }}\n",
        common::repo()
            .join("tests/fixtures/tiny-albert")
            .display()
            .to_string()
    );
    let file = common::experiment(dir.path(), "albert_ft", &body);
    let out = common::cli().arg("run").arg(&file).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("fine-tuning ALBERT is not supported"),
        "{stderr}"
    );
}

/// `dir`'s files laid out as the Hugging Face hub cache keeps a download of `org/name` under
/// `home/hub`: `refs/main` naming a commit, the files as blobs, and the commit's snapshot as
/// relative symlinks to them.
fn hub_cache_copy(dir: &Path, home: &Path, org: &str, name: &str) {
    let repo = home.join("hub").join(format!("models--{org}--{name}"));
    let commit = "0123456789abcdef0123456789abcdef01234567";
    let snapshot = repo.join("snapshots").join(commit);
    std::fs::create_dir_all(repo.join("refs")).unwrap();
    std::fs::create_dir_all(repo.join("blobs")).unwrap();
    std::fs::create_dir_all(&snapshot).unwrap();
    std::fs::write(repo.join("refs/main"), commit).unwrap();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let file = entry.file_name().to_string_lossy().into_owned();
        let blob = format!("blob-{file}");
        std::fs::copy(entry.path(), repo.join("blobs").join(&blob)).unwrap();
        std::os::unix::fs::symlink(format!("../../blobs/{blob}"), snapshot.join(&file)).unwrap();
    }
}

/// Every family loads by hub id from a hub cache the test builds (offline), and predicts what
/// its local directory predicts.
#[test]
fn every_family_loads_by_hub_id_from_the_hub_cache() {
    let home = tempfile::tempdir().unwrap();
    for (family, model) in families() {
        let name = format!("tiny-{family}");
        hub_cache_copy(&model, home.path(), "autoprompt-test", &name);
        let fill = |source: &std::ffi::OsStr| {
            let out = common::cli()
                .env("HF_HOME", home.path())
                .env("HF_HUB_OFFLINE", "1")
                .args(["fill-mask", "--model"])
                .arg(source)
                .args(["--top-k", "3", "a good movie , it was [MASK] ."])
                .output()
                .unwrap();
            common::assert_success(&out);
            String::from_utf8_lossy(&out.stdout).into_owned()
        };
        let from_cache = fill(format!("autoprompt-test/{name}").as_ref());
        assert!(from_cache.starts_with("mask 1:"), "{family}: {from_cache}");
        assert_eq!(from_cache, fill(model.as_os_str()), "{family}");
    }
}

/// The baselines run on every family too: the manual prompt, the linear probe on `[P]`'s
/// features, and fine-tuning (but ALBERT's, refused above), each finishing with accuracies
/// in [0, 1] on SST-2.
#[test]
fn the_baselines_run_on_every_family() {
    for (family, model) in families() {
        let finetune = if family == "albert" {
            ""
        } else {
            "  { kind = \"finetune\", finetune = { epochs = 1 } },\n"
        };
        let body = format!(
            "[model]\nsource = {:?}\n[task]\nkind = \"sst2\"\ntrain_size = 16\ndev_size = 16\ntest_size = 16\n[method]\nkind = \"majority\"\n[grid]\nmethod = [\n  {{ kind = \"manual\", template = \"[CLS] {{sentence}} it was [P] . [SEP]\", labels = {{ \"0\" = [\"bad\"], \"1\" = [\"good\"] }} }},\n  {{ kind = \"linear_probe\" }},\n{finetune}]\n",
            model.display().to_string()
        );
        let dir = tempfile::tempdir().unwrap();
        let file = common::experiment(dir.path(), family, &body);
        let out = common::cli()
            .arg("-q")
            .arg("run")
            .arg(&file)
            .output()
            .unwrap();
        common::assert_success(&out);
        let records: Vec<autoprompt::record::Record> =
            common::records(&dir.path().join("results"), family)
                .into_iter()
                .map(|(_, record)| record)
                .collect();
        let mut methods: Vec<&str> = records.iter().map(|r| r.spec.method.name()).collect();
        methods.sort_unstable();
        let mut expected = vec!["linear_probe", "manual"];
        if family != "albert" {
            expected.insert(0, "finetune");
        }
        assert_eq!(methods, expected, "{family}");
        for record in &records {
            assert_eq!(
                record.status,
                autoprompt::record::Status::Finished,
                "{family}"
            );
            for metric in ["accuracy", "dev_accuracy"] {
                let value = record.metrics[metric];
                assert!((0.0..=1.0).contains(&value), "{family} {metric} {value}");
            }
        }
    }
}
