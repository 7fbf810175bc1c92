//! Checks of the library's sources: no clap types, no printing (ARCHITECTURE.md).

mod common;

/// Every library source file under `framework/src` with its text: all `.rs` files but the
/// binary's own modules, `main.rs` and `cli/` (declared by `main.rs` only).
fn library_sources() -> Vec<(std::path::PathBuf, String)> {
    let src = common::repo().join("framework/src");
    let mut stack = vec![src.clone()];
    let mut files = vec![];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            if path == src.join("main.rs") || path == src.join("cli") {
                continue;
            }
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                files.push((path, text));
            }
        }
    }
    assert!(
        !files.is_empty(),
        "no library sources under {}",
        src.display()
    );
    files
}

/// The library knows nothing of clap (ARCHITECTURE.md): no file under `framework/src` but
/// `main.rs` names it; the CLI keeps mirrors of the library's enums.
#[test]
fn the_library_derives_no_clap_types() {
    let offenders: Vec<_> = library_sources()
        .into_iter()
        .filter(|(_, text)| {
            ["clap::", "#[arg(", "#[command("]
                .iter()
                .any(|p| text.contains(p))
        })
        .map(|(path, _)| path)
        .collect();
    assert!(offenders.is_empty(), "clap in the library: {offenders:?}");
    let lib = std::fs::read_to_string(common::repo().join("framework/src/lib.rs")).unwrap();
    assert!(
        !lib.contains("mod cli"),
        "the library must not declare the CLI's modules"
    );
}

/// The CLI prints; the library logs through `tracing` only (ARCHITECTURE.md): no library
/// file writes to stdout or stderr itself.
#[test]
fn the_library_prints_nothing() {
    let offenders: Vec<_> = library_sources()
        .into_iter()
        .filter(|(_, text)| {
            let code: String = text
                .lines()
                .filter(|l| !l.trim_start().starts_with("//"))
                .collect::<Vec<_>>()
                .join("\n");
            ["println!(", "eprintln!(", "print!(", "eprint!(", "dbg!("]
                .iter()
                .any(|p| code.contains(p))
        })
        .map(|(path, _)| path)
        .collect();
    assert!(offenders.is_empty(), "the library prints: {offenders:?}");
}

/// The runner schedules; methods run (ARCHITECTURE.md): nothing under `methods/` or
/// `baselines/` names `crate::run`, so a method never reaches back into the runner.
#[test]
fn methods_and_baselines_never_reach_into_the_runner() {
    let src = common::repo().join("framework/src");
    let offenders: Vec<_> = library_sources()
        .into_iter()
        .filter(|(path, _)| {
            path.starts_with(src.join("methods")) || path.starts_with(src.join("baselines"))
        })
        .filter(|(_, text)| text.contains("crate::run") || text.contains("super::super::run"))
        .map(|(path, _)| path)
        .collect();
    let methods = library_sources()
        .into_iter()
        .filter(|(path, _)| path.starts_with(src.join("methods")))
        .count();
    assert!(methods > 0, "no sources under framework/src/methods");
    assert!(
        offenders.is_empty(),
        "methods calling the runner: {offenders:?}"
    );
}
