//! The Slurm launcher: one job array with one task per pending cell, each task running this
//! binary on one cell (`autoprompt run FILE --cell-index $SLURM_ARRAY_TASK_ID`) and writing its
//! record through the same atomic store; a dependent job (`afterany`) builds the report.

use std::path::PathBuf;
use std::process::Command;

use serde::{Deserialize, Serialize};

use crate::config::{Experiment, LauncherOptions};
use crate::plan::Cell;
use crate::store::{CellState, Store, write_atomic};

/// What a submission did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Submission {
    pub array_job: String,
    pub report_job: String,
    pub cells: Vec<usize>,
    pub script: PathBuf,
}

fn sbatch_lines(options: &LauncherOptions) -> Vec<String> {
    let mut lines = vec![];
    let mut push = |flag: &str, value: &Option<String>| {
        if let Some(v) = value {
            lines.push(format!("#SBATCH --{flag}={v}"));
        }
    };
    push("partition", &options.partition);
    push("time", &options.time);
    push("cpus-per-task", &options.cpus.map(|c| c.to_string()));
    push("mem", &options.mem);
    push("gres", &options.gres);
    lines.extend(options.extra.iter().map(|e| format!("#SBATCH {e}")));
    lines
}

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// Why a Slurm submission failed.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error("{what}")]
    Scheduler {
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("sbatch failed: {0}")]
    Sbatch(String),
}

fn command_error(what: &'static str, source: std::io::Error) -> LaunchError {
    LaunchError::Scheduler { what, source }
}

fn run_sbatch(args: &[String]) -> Result<String, LaunchError> {
    let out = Command::new("sbatch")
        .args(args)
        .output()
        .map_err(|e| command_error("cannot run sbatch (is Slurm installed?)", e))?;
    if !out.status.success() {
        return Err(LaunchError::Sbatch(
            String::from_utf8_lossy(&out.stderr).trim().to_string(),
        ));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    Ok(text.trim().split(';').next().unwrap_or("").to_string())
}

/// Submits the pending cells of an experiment as one array plus a dependent report job.
/// `overrides` are the `--set` arguments, passed on to every array task.
pub fn submit(
    experiment: &Experiment,
    cells: &[Cell],
    overrides: &[String],
    options: &LauncherOptions,
) -> Result<Option<Submission>, LaunchError> {
    let store = Store::open(&experiment.settings.results_dir, &experiment.name)?;
    let plan_json = serde_json::to_vec_pretty(cells).expect("cells serialise");
    write_atomic(&store.root.join("plan.json"), &plan_json)?;
    let pending: Vec<usize> = cells
        .iter()
        .filter(|c| !matches!(store.state(&c.id), CellState::Finished(_)))
        .map(|c| c.index)
        .collect();
    if pending.is_empty() {
        return Ok(None);
    }
    let exe = std::env::current_exe().map_err(|e| command_error("cannot find this binary", e))?;
    let file =
        std::fs::canonicalize(&experiment.file).map_err(|e| command_error("experiment file", e))?;
    let cwd = std::env::current_dir().map_err(|e| command_error("working directory", e))?;
    let logs = std::fs::canonicalize(&store.root)
        .map_err(|e| command_error("results directory", e))?
        .join("slurm");
    std::fs::create_dir_all(&logs).map_err(|e| command_error("results directory", e))?;
    let sets: String = overrides
        .iter()
        .map(|s| format!(" --set {}", quote(s)))
        .collect();
    let array = pending
        .iter()
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(",");
    let throttle = options
        .max_parallel
        .map(|n| format!("%{n}"))
        .unwrap_or_default();
    let script = format!(
        "#!/bin/bash\n#SBATCH --job-name=autoprompt-{name}\n#SBATCH --array={array}{throttle}\n#SBATCH --output={logs}/%A_%a.out\n#SBATCH --chdir={cwd}\n{extra}\nexec {exe} run {file}{sets} --launcher local --cell-index \"$SLURM_ARRAY_TASK_ID\"\n",
        name = experiment.name,
        logs = logs.display(),
        cwd = cwd.display(),
        extra = sbatch_lines(options).join("\n"),
        exe = quote(&exe.to_string_lossy()),
        file = quote(&file.to_string_lossy()),
    );
    let script_path = logs.join("array.sh");
    write_atomic(&script_path, script.as_bytes())?;
    let array_job = run_sbatch(&["--parsable".into(), script_path.display().to_string()])?;
    let report_cmd = format!(
        "{} report {}{sets}",
        quote(&exe.to_string_lossy()),
        quote(&file.to_string_lossy())
    );
    let report_job = run_sbatch(&[
        "--parsable".into(),
        format!("--dependency=afterany:{array_job}"),
        format!("--job-name=autoprompt-{}-report", experiment.name),
        format!("--output={}/report_%j.out", logs.display()),
        format!("--chdir={}", cwd.display()),
        format!("--wrap={report_cmd}"),
    ])?;
    let submission = Submission {
        array_job,
        report_job,
        cells: pending,
        script: script_path,
    };
    write_atomic(
        &logs.join("jobs.json"),
        &serde_json::to_vec_pretty(&submission).expect("serialises"),
    )?;
    Ok(Some(submission))
}

/// The last submission of an experiment, if any.
pub fn last_submission(store: &Store) -> Option<Submission> {
    let bytes = std::fs::read(store.root.join("slurm/jobs.json")).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// `squeue` states of the array's tasks (`index → state`), for `autoprompt status`.
pub fn queue_states(array_job: &str) -> Vec<(usize, String)> {
    let Ok(out) = Command::new("squeue")
        .args(["-h", "-r", "-j", array_job, "-o", "%K %T"])
        .output()
    else {
        return vec![];
    };
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let mut parts = l.split_whitespace();
            Some((parts.next()?.parse().ok()?, parts.next()?.to_string()))
        })
        .collect()
}
