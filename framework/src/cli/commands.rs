//! What the subcommands do beyond loading and one library call: printing plans, writing
//! reports, benchmarks and fill-mask.

use std::path::Path;

use anyhow::Context;

use autoprompt::config::{self, BackendKind, ConfigError, Experiment};
use autoprompt::plan::{self, Cell, TableData};
use autoprompt::report::{self, ReportMeta};
use autoprompt::store::{CellState, Store};

use super::args::{BenchCommand, ExperimentArgs};

pub fn bench(command: BenchCommand) -> anyhow::Result<String> {
    use autoprompt::bench;
    Ok(match command {
        BenchCommand::Search { bench: b, backend } => {
            let (b, backend): (bench::SearchBench, BackendKind) = (b.into(), backend.into());
            let name = implementation_name(backend, b.engine);
            let result = autoprompt::with_backend!(
                backend,
                B,
                device,
                Err(anyhow::Error::from(autoprompt::backend::no_cuda())),
                bench::search_iteration::<B>(&b, &name, &device).map_err(anyhow::Error::from)
            )?;
            serde_json::to_string(&result)?
        }
        BenchCommand::Forward {
            model,
            batch,
            seq,
            iters,
            backend,
            engine,
            gradient,
        } => {
            let (backend, engine): (BackendKind, autoprompt::search::Engine) =
                (backend.into(), engine.into());
            let name = implementation_name(backend, engine);
            let on_host = engine.resolve(backend, true) == autoprompt::search::EngineKind::Host;
            if gradient {
                anyhow::ensure!(
                    on_host,
                    "--gradient times the host engine only (--engine auto or host on a CPU backend)"
                );
                let result = bench::host_gradient_pass(&model, batch, seq, iters, &name)?;
                return Ok(serde_json::to_string(&result)?);
            }
            if on_host {
                let result = bench::host_encoder_forward(&model, batch, seq, iters, &name)?;
                return Ok(serde_json::to_string(&result)?);
            }
            let result = autoprompt::with_backend!(
                    backend,
                    B,
                    device,
                    Err(anyhow::Error::from(autoprompt::backend::no_cuda())),
                    bench::encoder_forward::<
                        <B as burn::tensor::backend::AutodiffBackend>::InnerBackend,
                    >(&model, batch, seq, iters, &name, &device)
                    .map_err(anyhow::Error::from)
                )?;
            serde_json::to_string(&result)?
        }
    })
}

pub fn load(args: &ExperimentArgs) -> Result<(Experiment, Vec<Cell>), ConfigError> {
    let experiment = config::load(&args.file, &args.set)?;
    let cells = plan::plan(&experiment)?;
    Ok((experiment, cells))
}

/// [`load`], with the user tables plan time read.
pub fn load_with_tables(
    args: &ExperimentArgs,
) -> Result<(Experiment, Vec<Cell>, Vec<TableData>), ConfigError> {
    let experiment = config::load(&args.file, &args.set)?;
    let (cells, tables) = plan::plan_with_tables(&experiment)?;
    Ok((experiment, cells, tables))
}

pub fn grid_text(cell: &Cell) -> String {
    cell.grid
        .iter()
        .map(|(k, v)| format!("{k}={:#}", config::GridValue(v)))
        .collect::<Vec<_>>()
        .join("  ")
}

pub fn print_plan(
    experiment: &Experiment,
    cells: &[Cell],
    tables: &[TableData],
) -> anyhow::Result<()> {
    use std::io::Write;
    let store = Store::open(&experiment.settings.results_dir, &experiment.name)?;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{} — {} cells (results in {})",
        experiment.name,
        cells.len(),
        store.root.display()
    )?;
    writeln!(
        out,
        "{:<5} {:<16} {:<9} {:<12} grid",
        "#", "id", "status", "method"
    )?;
    for cell in cells {
        let status = match store.state(&cell.id) {
            CellState::Finished(_) => "finished",
            CellState::Failed(_) => "failed",
            CellState::Corrupt(_) => "corrupt",
            CellState::Pending => "pending",
        };
        writeln!(
            out,
            "{:<5} {:<16} {:<9} {:<12} {}",
            cell.index,
            cell.id,
            status,
            cell.spec.method.name(),
            grid_text(cell)
        )?;
    }
    print_table_data(&mut out, tables)?;
    Ok(())
}

/// Per table task (once per distinct task and columns, at its first cell's seed, as plan
/// time read it): each split's pool and what the budget draws from it, by class, and the
/// warnings (`autoprompt::tasks::SplitSummary::warnings`).
fn print_table_data(out: &mut impl std::io::Write, tables: &[TableData]) -> anyhow::Result<()> {
    for table in tables {
        writeln!(
            out,
            "\ndata: {} (cell {}, seed {})",
            table.name, table.cell_index, table.seed
        )?;
        writeln!(
            out,
            "  {:<6} {:>8} {:>7}  by class (pool → drawn)",
            "split", "pool", "drawn"
        )?;
        for split in &table.splits {
            let classes = split
                .pool_classes
                .iter()
                .map(|(c, n)| {
                    format!(
                        "{c} {n} → {}",
                        split.drawn_classes.get(c).copied().unwrap_or(0)
                    )
                })
                .collect::<Vec<_>>()
                .join(", ");
            writeln!(
                out,
                "  {:<6} {:>8} {:>7}  {classes}",
                split.split, split.pool, split.drawn
            )?;
        }
        for warning in table.splits.iter().flat_map(|s| s.warnings()) {
            writeln!(out, "  warning: {warning}")?;
        }
    }
    Ok(())
}

pub fn report(experiment: &Experiment, delta_against: Option<&str>) -> anyhow::Result<bool> {
    let store = Store::open(&experiment.settings.results_dir, &experiment.name)?;
    let mut records = store.records()?;
    store.attach_predictions(&mut records)?;
    let report_path = Path::new("reports").join(format!("{}.md", experiment.name));
    let meta = ReportMeta {
        name: &experiment.name,
        description: &experiment.description,
        experiment_file: &experiment.file,
        delta_against,
    };
    let files = report::build(&records, &store.root, &report_path, &meta)?;
    let metrics = report::metric_names(&records);
    println!("{}", report::summary_markdown(&files.summary, &metrics)?);
    if let Some(comparisons) = &files.comparisons {
        println!("{comparisons}");
    }
    for path in &files.written {
        println!("wrote {}", path.display());
    }
    for (id, error) in &files.failed_cells {
        eprintln!("failed cell {id}: {error}");
    }
    Ok(files.failed_cells.is_empty())
}

/// `a` against `b` in every setting of the experiment that has both, as text: per setting,
/// one line per metric with Δ = a − b, both 95% intervals (`*`: excludes 0), p and n.
pub fn versus(
    experiment: &Experiment,
    a: &str,
    b: &str,
    metrics: &[autoprompt::metric::Metric],
) -> anyhow::Result<String> {
    use report::paired::{self, Outcome};
    use std::fmt::Write;
    let store = Store::open(&experiment.settings.results_dir, &experiment.name)?;
    let mut records = store.records()?;
    store.attach_predictions(&mut records)?;
    let metrics = if metrics.is_empty() {
        report::metric_names(&records)
    } else {
        metrics.to_vec()
    };
    let comparisons = paired::compare_two(&records, a, b, &metrics)?;
    let interval = |i: Option<report::stats::Interval>| match i {
        Some(i) => format!(
            "[{:+.4}, {:+.4}]{}",
            i.low,
            i.high,
            if i.excludes_zero() { "*" } else { " " }
        ),
        None => "-".into(),
    };
    let mut out = String::new();
    let mut setting = None;
    let mut last_note = None;
    for c in &comparisons {
        if setting != Some(&c.setting) {
            setting = Some(&c.setting);
            last_note = None;
            writeln!(out, "\n{}", c.setting)?;
            writeln!(
                out,
                "  {:<20} {:>9} {:>17}  {:<19}  {:<19}  {:>6} {:>3}",
                "metric", "Δ (a − b)", "a vs b", "t 95%", "bootstrap 95%", "p", "n"
            )?;
        }
        match &c.outcome {
            Outcome::Paired(p) => {
                writeln!(
                    out,
                    "  {:<20} {:>+9.4} {:>17}  {:<19}  {:<19}  {:>6} {:>3}",
                    c.metric,
                    p.delta(),
                    format!("{:.4} vs {:.4}", p.a_mean, p.b_mean),
                    interval(p.t.interval),
                    interval(p.bootstrap),
                    p.t.p_value.map_or("-".into(), |p| if p < 0.001 {
                        "<0.001".to_string()
                    } else {
                        format!("{p:.3}")
                    }),
                    p.seeds.len()
                )?;
                if let Some(e) = &p.examples {
                    writeln!(
                        out,
                        "  {:<20} over {} evaluation examples: bootstrap 95% {}, McNemar p {} (largest over the seeds)",
                        "",
                        e.examples,
                        interval(e.bootstrap),
                        e.mcnemar_p_max().map_or("-".into(), |p| format!("{p:.3}"))
                    )?;
                }
            }
            Outcome::Refused(_) => writeln!(out, "  {:<20} -", c.metric)?,
        }
        // Notes are about seeds: print each once per setting.
        let note = c.note();
        if note.is_some() && note != last_note {
            writeln!(out, "  note: {}", note.as_deref().unwrap_or_default())?;
        }
        last_note = note;
    }
    writeln!(
        out,
        "\na = {a}, b = {b}. *: the 95% interval excludes 0 (t: paired t-test; bootstrap: {} resamples over seeds).",
        report::stats::RESAMPLES
    )?;
    Ok(out)
}

/// `rust-host` where the host engine runs, else `rust-<backend>`, with `+openblas` where the
/// ndarray backend's matmuls go to OpenBLAS.
pub fn implementation_name(backend: BackendKind, engine: autoprompt::search::Engine) -> String {
    if engine.resolve(backend, true) == autoprompt::search::EngineKind::Host {
        return "rust-host".to_string();
    }
    let blas = cfg!(feature = "openblas") && backend == BackendKind::Ndarray;
    format!(
        "rust-{}{}",
        backend.name(),
        if blas { "+openblas" } else { "" }
    )
}

/// Joins the paper's numbers with the records of every experiment in `experiments_dir`.
pub fn paper_report(experiments_dir: &Path, tables_dir: &Path, out: &Path) -> anyhow::Result<()> {
    let markdown = report::paper::build(experiments_dir, tables_dir)?;
    autoprompt::store::write_atomic(out, markdown.as_bytes())?;
    println!("{markdown}");
    eprintln!("wrote {}", out.display());
    Ok(())
}

/// The model's top-`k` predictions at every mask of `text`.
pub fn fill_mask(
    model: &str,
    text: &str,
    k: usize,
    backend: BackendKind,
    unused: autoprompt::lm::UnusedTensors,
) -> anyhow::Result<Vec<Vec<autoprompt::lm::Prediction>>> {
    fn on<B: burn::tensor::backend::Backend>(
        model: &str,
        text: &str,
        k: usize,
        unused: autoprompt::lm::UnusedTensors,
        device: B::Device,
    ) -> anyhow::Result<Vec<Vec<autoprompt::lm::Prediction>>> {
        let lm = autoprompt::lm::load_with::<B>(model, unused, &device)
            .with_context(|| format!("loading {model}"))?;
        Ok(autoprompt::lm::fill_mask(&lm, text, k, &device)?)
    }
    autoprompt::with_backend!(
        backend,
        B,
        device,
        Err(autoprompt::backend::no_cuda().into()),
        on::<<B as burn::tensor::backend::AutodiffBackend>::InnerBackend>(
            model, text, k, unused, device
        )
    )
}
