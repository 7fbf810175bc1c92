//! Cells and their ids: ids are stable and independent of key order, and `--set`
//! overrides grid axes, and every shipped experiment keeps its cells' ids.

mod common;

use std::collections::BTreeMap;

use autoprompt::{config, plan};

fn cells_of(text: &str) -> Vec<plan::Cell> {
    let dir = tempfile::tempdir().unwrap();
    let path = common::experiment(dir.path(), "ids", text);
    plan::plan(&config::load(&path, &[]).unwrap()).unwrap()
}

#[test]
fn cell_ids_are_stable_and_independent_of_key_order() {
    let a = cells_of(
        "[task]\nkind = \"sst2\"\ntrain_size = 10\ndev_size = 20\n[method]\nkind = \"majority\"\n[grid]\nseeds = [0, 1]\n",
    );
    let b = cells_of(
        "[method]\nkind = \"majority\"\n[grid]\nseeds = [0, 1]\n[task]\ndev_size = 20\ntrain_size = 10\nkind = \"sst2\"\n",
    );
    let ids: Vec<&str> = a.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids, b.iter().map(|c| c.id.as_str()).collect::<Vec<_>>());
    // Golden values: a change here changes every stored result's id. Only update them
    // deliberately (and say so), never to make a test pass.
    assert_eq!(ids, ["db29cdfbbc0f2e21", "5102f9bc3dce3cf2"]);
    let c = cells_of(
        "[task]\nkind = \"sst2\"\ntrain_size = 11\ndev_size = 20\n[method]\nkind = \"majority\"\n[grid]\nseeds = [0, 1]\n",
    );
    assert_ne!(c[0].id, a[0].id);
}

fn cells_with(text: &str, overrides: &[&str]) -> Vec<plan::Cell> {
    let dir = tempfile::tempdir().unwrap();
    let path = common::experiment(dir.path(), "sets", text);
    let overrides: Vec<String> = overrides.iter().map(|s| s.to_string()).collect();
    plan::plan(&config::load(&path, &overrides).unwrap()).unwrap()
}

/// `--set` wins over the grid: a single value fixes a grid axis, a list replaces its
/// values, `seeds` replaces the seed axis; keys the grid does not vary set the base.
#[test]
fn set_overrides_grid_axes() {
    let file = "[task]\nkind = \"sick_e\"\ntrain_size = 10\ndev_size = 10\n[model]\nsource = \"bert-base-cased\"\n[method]\nkind = \"majority\"\n[grid]\n\"model.source\" = [\"bert-base-cased\", \"roberta-large\"]\n\"task.variant\" = [\"standard\", \"balanced3\", \"two_way\"]\nseeds = [0, 1]\n";
    assert_eq!(cells_with(file, &[]).len(), 12);
    let fixed = cells_with(file, &["model.source=splade-tiny"]);
    assert_eq!(fixed.len(), 6);
    assert!(fixed.iter().all(|c| c.spec.model.source == "splade-tiny"));
    let narrowed = cells_with(
        file,
        &[
            "model.source=splade-tiny",
            "task.variant=[\"two_way\"]",
            "seeds=[7]",
            "task.train_size=30",
        ],
    );
    assert_eq!(narrowed.len(), 1);
    let spec = &narrowed[0].spec;
    assert_eq!(spec.seed, 7);
    assert_eq!(spec.task.budget().train_size.get(), 30);
    assert_eq!(
        serde_json::to_value(spec.task.variant()).unwrap(),
        serde_json::json!("two_way")
    );
}

/// The fixture of every shipped experiment's cell ids (`tests/fixtures/cell_ids.json`).
fn shipped_ids_fixture() -> std::path::PathBuf {
    common::repo().join("tests/fixtures/cell_ids.json")
}

/// Plans `file` with LAMA / LPAQA read from `stub` (empty files: planning only checks that
/// a task's files exist), creating each file the planner asks for under `stub`.
fn plan_with_stub_lama(file: &std::path::Path, stub: &std::path::Path) -> Vec<plan::Cell> {
    let set = [
        format!("lama_dir={:?}", stub.join("lama").display().to_string()),
        format!("lpaqa_dir={:?}", stub.join("lpaqa").display().to_string()),
    ];
    loop {
        match common::load_and_plan(file, &set) {
            Ok((_, cells)) => return cells,
            Err(e) => {
                // `data file `<path>` is missing (...)`: a stub file the planner wants.
                let missing = e
                    .split_once("data file `")
                    .and_then(|(_, rest)| rest.split_once("` is missing"))
                    .map(|(path, _)| std::path::PathBuf::from(path))
                    .filter(|p| p.starts_with(stub) && !p.exists());
                let Some(missing) = missing else {
                    panic!("{}: {e}", file.display());
                };
                std::fs::create_dir_all(missing.parent().unwrap()).unwrap();
                std::fs::write(&missing, "").unwrap();
            }
        }
    }
}

/// Every shipped experiment (`experiments/**.toml`) plans to the cell ids of the committed
/// fixture, in plan order: a refactoring of the schema's types must not change a stored
/// result's id. Planning needs the repository's data (table tasks are read at plan time)
/// but not the shared LAMA data, whose files are stubbed. Only regenerate the fixture
/// deliberately (`UPDATE_CELL_IDS=1`), when ids are meant to change, and say so.
#[test]
fn every_shipped_experiment_keeps_its_cell_ids() {
    // Shipped files name their data relative to the repository root, where `just run` runs.
    std::env::set_current_dir(common::repo()).unwrap();
    let stub = tempfile::tempdir().unwrap();
    let mut ids = BTreeMap::new();
    for file in common::shipped_experiments() {
        let name = file
            .strip_prefix(common::repo())
            .unwrap()
            .display()
            .to_string();
        let cells = plan_with_stub_lama(&file, stub.path());
        assert!(!cells.is_empty(), "{name}");
        ids.insert(name, cells.into_iter().map(|c| c.id).collect::<Vec<_>>());
    }
    let path = shipped_ids_fixture();
    if std::env::var_os("UPDATE_CELL_IDS").is_some() {
        let text = serde_json::to_string_pretty(&ids).unwrap();
        std::fs::write(&path, format!("{text}\n")).unwrap();
    }
    let expected: BTreeMap<String, Vec<String>> =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(
        ids.keys().collect::<Vec<_>>(),
        expected.keys().collect::<Vec<_>>(),
        "the shipped experiments are not the fixture's (a new file: regenerate with UPDATE_CELL_IDS=1)"
    );
    for (name, got) in &ids {
        assert_eq!(got, &expected[name], "{name}: cell ids changed");
    }
    let total: usize = ids.values().map(Vec::len).sum();
    eprintln!(
        "{} experiment files, {total} cell ids as the fixture",
        ids.len()
    );
}
