//! Every malformed experiment is an error naming the file, the key path, what was found
//! and what was expected — never a panic. Each case asserts its message.

mod common;

use autoprompt::config;
use autoprompt::plan;

const SST2_TASK: &str = "[task]\nkind = \"sst2\"\ntrain_size = 10\ndev_size = 10\n";
const MAJORITY: &str = "[method]\nkind = \"majority\"\n";
const AUTOPROMPT: &str = "[method]\nkind = \"autoprompt\"\ntemplate = \"[CLS] {sentence} [T] [P] . [SEP]\"\nlabels = { \"0\" = [\"bad\"], \"1\" = [\"good\"] }\n";

/// Loads and plans `body`; returns the error text (panics if it is valid).
fn error_of(body: &str, overrides: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = common::experiment(dir.path(), "bad", body);
    let overrides: Vec<String> = overrides.iter().map(|s| s.to_string()).collect();
    let result = config::load(&path, &overrides).and_then(|e| plan::plan(&e).map(|_| ()));
    let err = autoprompt::errors::chain_text(&result.expect_err("config should be rejected"));
    assert!(
        err.contains("bad.toml") || err.starts_with("--set"),
        "error does not name the file: {err}"
    );
    err
}

#[test]
fn typo_in_top_level_key() {
    let err = error_of(&format!("tsk = 1\n{SST2_TASK}{MAJORITY}"), &[]);
    common::assert_has(&err, &["unknown field `tsk`", "expected one of"]);
}

#[test]
fn typo_in_task_key() {
    let err = error_of(
        "[task]\nkind = \"sst2\"\ntrain_sise = 10\ndev_size = 10\n[method]\nkind = \"majority\"\n",
        &[],
    );
    common::assert_has(&err, &["task", "unknown field `train_sise`", "train_size"]);
}

#[test]
fn wrong_type() {
    let err = error_of(
        "[task]\nkind = \"sst2\"\ntrain_size = \"ten\"\ndev_size = 10\n[method]\nkind = \"majority\"\n",
        &[],
    );
    common::assert_has(
        &err,
        &["key `task.train_size`", "invalid type: string \"ten\""],
    );
}

#[test]
fn zero_budget() {
    let err = error_of(
        "[task]\nkind = \"sst2\"\ntrain_size = 0\ndev_size = 10\n[method]\nkind = \"majority\"\n",
        &[],
    );
    common::assert_has(&err, &["key `task.train_size`", "nonzero"]);
}

#[test]
fn negative_budget() {
    let err = error_of(
        "[task]\nkind = \"sst2\"\ntrain_size = -5\ndev_size = 10\n[method]\nkind = \"majority\"\n",
        &[],
    );
    common::assert_has(&err, &["key `task.train_size`", "-5"]);
}

#[test]
fn unknown_task() {
    let err = error_of(
        "[task]\nkind = \"imdb\"\ntrain_size = 10\ndev_size = 10\n[method]\nkind = \"majority\"\n",
        &[],
    );
    common::assert_has(&err, &["key `task.kind`", "unknown variant `imdb`", "sst2"]);
}

#[test]
fn unknown_method() {
    let err = error_of(
        &format!("{SST2_TASK}[method]\nkind = \"prompt_tuning\"\n"),
        &[],
    );
    common::assert_has(
        &err,
        &["method", "unknown variant `prompt_tuning`", "autoprompt"],
    );
}

#[test]
fn missing_method() {
    let err = error_of(SST2_TASK, &[]);
    common::assert_has(&err, &["missing field `method`"]);
}

#[test]
fn empty_grid_list() {
    let err = error_of(&format!("{SST2_TASK}{MAJORITY}[grid]\nseeds = []\n"), &[]);
    common::assert_has(&err, &["key `grid.seeds`", "non-empty list", "a list of 0"]);
}

#[test]
fn grid_value_not_a_list() {
    let err = error_of(&format!("{SST2_TASK}{MAJORITY}[grid]\nseeds = 3\n"), &[]);
    common::assert_has(&err, &["key `grid.seeds`", "non-empty list", "number 3"]);
}

#[test]
fn grid_path_that_does_not_exist() {
    let err = error_of(
        &format!("{SST2_TASK}{MAJORITY}[grid]\n\"task.trainsize\" = [1, 2]\n"),
        &[],
    );
    common::assert_has(
        &err,
        &["unknown field `trainsize`", "in grid cell task.trainsize=1"],
    );
}

#[test]
fn grid_path_outside_the_cell() {
    let err = error_of(
        &format!("{SST2_TASK}{MAJORITY}[grid]\n\"results.dir\" = [\"a\"]\n"),
        &[],
    );
    common::assert_has(
        &err,
        &["grid.\"results.dir\"", "task.*, model.*, method.* or seed"],
    );
}

#[test]
fn duplicate_grid_values() {
    let err = error_of(
        &format!("{SST2_TASK}{MAJORITY}[grid]\nseeds = [1, 1]\n"),
        &[],
    );
    common::assert_has(&err, &["identical", "remove the duplicate"]);
}

#[test]
fn template_without_predict_slot() {
    let err = error_of(
        &format!(
            "{SST2_TASK}[method]\nkind = \"autoprompt\"\ntemplate = \"[CLS] {{sentence}} [T] [SEP]\"\nlabels = {{ \"0\" = [\"bad\"], \"1\" = [\"good\"] }}\n"
        ),
        &[],
    );
    common::assert_has(&err, &["key `method.template`", "no [P]"]);
}

#[test]
fn template_with_two_predict_slots() {
    let err = error_of(
        &format!(
            "{SST2_TASK}[method]\nkind = \"manual\"\ntemplate = \"[P] {{sentence}} [P]\"\nlabels = {{ \"0\" = [\"bad\"], \"1\" = [\"good\"] }}\n"
        ),
        &[],
    );
    common::assert_has(&err, &["key `method.template`", "2 [P] slots"]);
}

#[test]
fn template_field_the_task_lacks() {
    let err = error_of(
        &format!(
            "{SST2_TASK}[method]\nkind = \"autoprompt\"\ntemplate = \"[CLS] {{premise}} [T] [P] [SEP]\"\nlabels = {{ \"0\" = [\"bad\"], \"1\" = [\"good\"] }}\n"
        ),
        &[],
    );
    common::assert_has(&err, &["key `method.template`", "`premise`", "sentence"]);
}

#[test]
fn manual_prompt_with_triggers() {
    let err = error_of(
        &format!(
            "{SST2_TASK}[method]\nkind = \"manual\"\ntemplate = \"[CLS] {{sentence}} [T] [P] [SEP]\"\nlabels = {{ \"0\" = [\"bad\"], \"1\" = [\"good\"] }}\n"
        ),
        &[],
    );
    common::assert_has(&err, &["key `method.template`", "no [T]"]);
}

#[test]
fn classification_without_labels() {
    let err = error_of(
        &format!(
            "{SST2_TASK}[method]\nkind = \"autoprompt\"\ntemplate = \"[CLS] {{sentence}} [T] [P] [SEP]\"\n"
        ),
        &[],
    );
    common::assert_has(&err, &["key `method.labels`", "needs labels"]);
}

#[test]
fn labels_of_the_wrong_shape() {
    let err = error_of(
        &format!(
            "{SST2_TASK}[method]\nkind = \"autoprompt\"\ntemplate = \"[CLS] {{sentence}} [T] [P] [SEP]\"\nlabels = 5\n"
        ),
        &[],
    );
    common::assert_has(&err, &["method.labels", "\"auto\""]);
}

#[test]
fn unknown_search_setting() {
    let err = error_of(
        &format!("{SST2_TASK}{AUTOPROMPT}search = {{ iter = 5 }}\n"),
        &[],
    );
    common::assert_has(&err, &["method.search", "unknown field `iter`", "iters"]);
}

#[test]
fn zero_candidates() {
    let err = error_of(
        &format!("{SST2_TASK}{AUTOPROMPT}search = {{ num_candidates = 0 }}\n"),
        &[],
    );
    common::assert_has(&err, &["key `method.search.num_candidates`", "at least 1"]);
}

#[test]
fn lama_without_relation() {
    let err = error_of(
        "[task]\nkind = \"lama\"\ntrain_size = 10\ndev_size = 10\n[method]\nkind = \"majority\"\n",
        &[],
    );
    common::assert_has(&err, &["key `task.relation`", "required"]);
}

#[test]
fn malformed_relation_id() {
    let err = error_of(
        "[task]\nkind = \"lama\"\nrelation = \"X19\"\ntrain_size = 10\ndev_size = 10\n[method]\nkind = \"majority\"\n",
        &[],
    );
    common::assert_has(&err, &["key `task.relation`", "`X19` is not a relation id"]);
}

#[test]
fn labels_on_fact_retrieval() {
    let err = error_of(
        "[task]\nkind = \"lama\"\nrelation = \"P19\"\ntrain_size = 10\ndev_size = 10\n[method]\nkind = \"manual\"\nlabels = { a = [\"b\"] }\n",
        &[],
    );
    common::assert_has(&err, &["key `method.labels`", "remove labels"]);
}

#[test]
fn at_most_on_a_classification_task() {
    let err = error_of(
        "[task]\nkind = \"sst2\"\nat_most = true\ntrain_size = 10\ndev_size = 10\n[method]\nkind = \"majority\"\n",
        &[],
    );
    common::assert_has(
        &err,
        &[
            "key `task.at_most`",
            "only lama, relation_extraction and fact_probe",
        ],
    );
}

#[test]
fn variant_on_the_wrong_task() {
    let err = error_of(
        "[task]\nkind = \"sst2\"\nvariant = \"two_way\"\ntrain_size = 10\ndev_size = 10\n[method]\nkind = \"majority\"\n",
        &[],
    );
    common::assert_has(&err, &["key `task.variant`", "only sick_e"]);
}

#[test]
fn missing_data_file() {
    let err = error_of(
        &format!("{SST2_TASK}{MAJORITY}"),
        &["data_dir=\"/nonexistent/data\""],
    );
    common::assert_has(
        &err,
        &["/nonexistent/data/sst2/train.tsv", "is missing", "data_dir"],
    );
}

#[test]
fn unknown_backend() {
    let err = error_of(&format!("backend = \"tpu\"\n{SST2_TASK}{MAJORITY}"), &[]);
    common::assert_has(&err, &["key `backend`", "unknown variant `tpu`"]);
}

#[test]
fn invalid_experiment_name() {
    let err = error_of(&format!("name = \"my exp/1\"\n{SST2_TASK}{MAJORITY}"), &[]);
    common::assert_has(&err, &["key `name`", "`my exp/1`"]);
}

#[test]
fn toml_syntax_error() {
    let err = error_of("[task\nkind = \"sst2\"\n", &[]);
    common::assert_has(&err, &["bad.toml"]);
}

#[test]
fn malformed_override() {
    let err = error_of(&format!("{SST2_TASK}{MAJORITY}"), &["task.train_size"]);
    common::assert_has(&err, &["--set task.train_size", "expected key.path=value"]);
}

#[test]
fn override_with_wrong_type() {
    let err = error_of(&format!("{SST2_TASK}{MAJORITY}"), &["task.train_size=lots"]);
    common::assert_has(&err, &["key `task.train_size`", "string \"lots\""]);
}

#[test]
fn missing_experiment_file() {
    let err = autoprompt::errors::chain_text(
        &config::load(std::path::Path::new("/nonexistent/x.toml"), &[]).unwrap_err(),
    );
    common::assert_has(
        &err,
        &["/nonexistent/x.toml", "cannot read experiment file"],
    );
}

#[test]
fn cli_exits_with_2_and_names_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = common::experiment(
        dir.path(),
        "bad",
        "[task]\nkind = \"sst2\"\ntrain_size = 0\ndev_size = 10\n[method]\nkind = \"majority\"\n",
    );
    let out = std::process::Command::new(common::bin())
        .args(["plan"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("task.train_size") && !stderr.contains("panicked"),
        "{stderr}"
    );
}

#[test]
fn negative_or_textual_checkpoint_interval() {
    let err = error_of(
        &format!("checkpoint_seconds = -1\n{SST2_TASK}{MAJORITY}"),
        &[],
    );
    common::assert_has(
        &err,
        &[
            "checkpoint_seconds",
            "expected a number of seconds >= 0",
            "-1",
        ],
    );
    let err = error_of(
        &format!("checkpoint_seconds = \"often\"\n{SST2_TASK}{MAJORITY}"),
        &[],
    );
    common::assert_has(&err, &["checkpoint_seconds", "often"]);
}
