//! Real (short) cells on the embedded model through the CLI: an AutoPrompt cell, the host
//! engine against burn, saved prompts re-evaluated, parallel cells against serial ones.

mod common;

use std::process::Command;

#[test]
fn autoprompt_cell_end_to_end_on_the_embedded_model() {
    common::splade_tiny();
    let dir = tempfile::tempdir().unwrap();
    let body = "[task]\nkind = \"sst2\"\ntrain_size = 16\ndev_size = 16\ntest_size = 64\n[method]\nkind = \"autoprompt\"\ntemplate = \"[CLS] {sentence} [T] [T] [P] . [SEP]\"\nlabels = { \"0\" = [\"terrible\"], \"1\" = [\"great\"] }\nsearch = { iters = 3, batch_size = 8, accumulation_steps = 2, num_candidates = 5 }\n";
    let file = common::experiment(dir.path(), "e2e", body);
    let out = common::run_cmd(&file).output().unwrap();
    common::assert_success(&out);
    let (path, bytes) = common::record_files(&dir.path().join("results"), "e2e")
        .pop()
        .unwrap();
    let record: autoprompt::record::Record = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(
        record.status,
        autoprompt::record::Status::Finished,
        "{:?}",
        record.error
    );
    let prompt = record.prompt.unwrap();
    assert_eq!(prompt.trigger_ids.len(), 2);
    assert!(!prompt.filled.contains("[T]"), "{}", prompt.filled);
    let search = record.search.unwrap();
    assert_eq!(search.steps.len(), 3);
    let acc = record.metrics["accuracy"];
    assert!(
        (0.0..=1.0).contains(&acc) && (acc * 64.0).fract() == 0.0,
        "{acc}"
    );
    assert!(
        record
            .provenance
            .files
            .keys()
            .any(|f| f.ends_with("model.safetensors"))
    );
    assert!(
        record
            .provenance
            .files
            .keys()
            .any(|f| f.ends_with("sst2/train.tsv"))
    );
    let id = path.file_stem().unwrap().to_string_lossy().to_string();
    assert!(
        dir.path()
            .join(format!("results/e2e/prompts/{id}.best.json"))
            .is_file()
    );
}

/// The host engine and burn's own ops find the same prompt and the same test accuracy for
/// the same cell (they agree to float rounding, so the search takes the same steps), and
/// each record says which engine ran its search.
#[test]
fn host_engine_and_burn_agree_end_to_end() {
    common::splade_tiny();
    let body = "[task]\nkind = \"sst2\"\ntrain_size = 16\ndev_size = 16\ntest_size = 64\n[method]\nkind = \"autoprompt\"\ntemplate = \"[CLS] {sentence} [T] [T] [P] . [SEP]\"\nlabels = { \"0\" = [\"terrible\"], \"1\" = [\"great\"] }\nsearch = { iters = 3, batch_size = 8, accumulation_steps = 2, num_candidates = 5 }\n";
    let run = |engine: &str| {
        let dir = tempfile::tempdir().unwrap();
        let file = common::experiment(dir.path(), "engines", body);
        let out = common::run_cmd(&file)
            .args(["--set", &format!("engine={engine}")])
            .output()
            .unwrap();
        common::assert_success(&out);
        let (_, bytes) = common::record_files(&dir.path().join("results"), "engines")
            .pop()
            .unwrap();
        serde_json::from_slice::<autoprompt::record::Record>(&bytes).unwrap()
    };
    let host = run("host");
    let burn = run("burn");
    assert_eq!(
        host.provenance.engine,
        Some(autoprompt::search::EngineKind::Host)
    );
    assert_eq!(
        burn.provenance.engine,
        Some(autoprompt::search::EngineKind::Burn)
    );
    let triggers = |r: &autoprompt::record::Record| r.prompt.as_ref().unwrap().trigger_ids.clone();
    assert_eq!(triggers(&host), triggers(&burn));
    assert_eq!(host.metrics["accuracy"], burn.metrics["accuracy"]);
    assert_eq!(host.metrics["dev_accuracy"], burn.metrics["dev_accuracy"]);
}

/// A saved prompt is portable: copied under any name it applies to the cell chosen with
/// `--cell` (and gives that cell's dev metric again), and a prompt whose token ids do not
/// name the same tokens in the model's vocabulary is refused with the file and the id —
/// never a panic.
#[test]
fn saved_prompts_are_portable_and_checked_against_the_vocabulary() {
    common::splade_tiny();
    let dir = tempfile::tempdir().unwrap();
    let body = "[task]\nkind = \"sst2\"\ntrain_size = 16\ndev_size = 16\ntest_size = 32\n[method]\nkind = \"autoprompt\"\ntemplate = \"[CLS] {sentence} [T] [T] [P] . [SEP]\"\nlabels = { \"0\" = [\"terrible\"], \"1\" = [\"great\"] }\nsearch = { iters = 2, batch_size = 8, accumulation_steps = 2, num_candidates = 3 }\n[grid]\nseeds = [0, 1]\n";
    let file = common::experiment(dir.path(), "portable", body);
    common::assert_success(&common::run_cmd(&file).output().unwrap());
    let (_, bytes) = common::record_files(&dir.path().join("results"), "portable")
        .pop()
        .unwrap();
    let record: autoprompt::record::Record = serde_json::from_slice(&bytes).unwrap();
    let prompt = record.prompt.clone().unwrap();
    let model = prompt.model.as_ref().expect("the prompt names its model");
    assert_eq!(
        (model.source.as_str(), model.vocab_size),
        ("splade-tiny", 30522)
    );
    let eval = |prompt: &autoprompt::record::PromptArtifact, cell: Option<&str>| {
        let path = dir.path().join("my prompt.json");
        std::fs::write(&path, serde_json::to_vec(prompt).unwrap()).unwrap();
        let mut cmd = Command::new(common::bin());
        cmd.args(["eval", file.to_str().unwrap(), "--prompt"])
            .arg(&path)
            .args(["--split", "dev"])
            .current_dir(common::repo());
        if let Some(id) = cell {
            cmd.args(["--cell", id]);
        }
        cmd.output().unwrap()
    };
    let out = eval(&prompt, Some(&record.id));
    common::assert_success(&out);
    let expected = format!("accuracy         {:.4}", record.metrics["dev_accuracy"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains(&expected));

    let stderr = |out: &std::process::Output| {
        assert!(!out.status.success());
        assert_ne!(out.status.code(), Some(101), "a panic");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let message = stderr(&eval(&prompt, None));
    assert!(
        message.contains("--cell") && message.contains("my prompt.json"),
        "{message}"
    );

    let mut outside = prompt.clone();
    outside.trigger_ids[1] = 4_000_000;
    let message = stderr(&eval(&outside, Some(&record.id)));
    assert!(
        message.contains("my prompt.json")
            && message.contains("4000000")
            && message.contains("outside this model's vocabulary"),
        "{message}"
    );
    let mut renamed = prompt.clone();
    renamed.trigger_tokens[0] = "not-the-same-token".into();
    let message = stderr(&eval(&renamed, Some(&record.id)));
    assert!(message.contains("another vocabulary"), "{message}");
    let mut other_model = prompt;
    other_model.model.as_mut().unwrap().vocab_size = 50265;
    let message = stderr(&eval(&other_model, Some(&record.id)));
    assert!(
        message.contains("50265") && message.contains("30522"),
        "{message}"
    );
    common::reliability(
        "a saved prompt with a trigger id outside the vocabulary, another token, another vocabulary size",
        "an error naming the prompt file and the id, never a panic",
        "each refused with exit 1 naming `my prompt.json` (and the id, token or sizes)",
        "end_to_end::saved_prompts_are_portable_and_checked_against_the_vocabulary",
    );
}

/// Fine-tuning and the linear probe draw initialisation and dropout from burn's generator;
/// with `--jobs 2` cells run side by side, and their records must equal `--jobs 1`'s.
#[test]
fn parallel_cells_give_the_records_of_serial_ones() {
    common::splade_tiny();
    let body = "[task]\nkind = \"sst2\"\ntrain_size = 24\ndev_size = 16\ntest_size = 300\n[method]\nkind = \"majority\"\n[grid]\nseeds = [0, 1]\nmethod = [\n  { kind = \"finetune\", finetune = { epochs = 2, batch_size = 8 } },\n  { kind = \"linear_probe\", probe = { epochs = 3, batch_size = 8 } },\n]\n";
    let metrics = |jobs: &str| {
        let dir = tempfile::tempdir().unwrap();
        let file = common::experiment(dir.path(), "jobs", body);
        common::assert_success(
            &common::run_cmd(&file)
                .args(["--jobs", jobs])
                .output()
                .unwrap(),
        );
        let mut out: Vec<(
            String,
            std::collections::BTreeMap<autoprompt::metric::Metric, f64>,
        )> = common::record_files(&dir.path().join("results"), "jobs")
            .into_iter()
            .map(|(_, bytes)| {
                let r: autoprompt::record::Record = serde_json::from_slice(&bytes).unwrap();
                assert_eq!(
                    r.status,
                    autoprompt::record::Status::Finished,
                    "{:?}",
                    r.error
                );
                (r.id, r.metrics)
            })
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    };
    let serial = metrics("1");
    assert_eq!(serial.len(), 4);
    assert_eq!(serial, metrics("2"));
}
