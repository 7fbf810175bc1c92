//! Executing one cell: task data → method → record.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use burn::tensor::backend::AutodiffBackend;

use super::{RunError, provenance};
use crate::config::{Experiment, MethodSpec, ModelSpec};
use crate::interrupt::StopSignal;
use crate::lm::{LoadedModel, UnusedTensors};
use crate::plan::Cell;
use crate::progress::ProgressSink;
use crate::record::{Counts, Provenance, Record, Status, Timings};
use crate::store::{FileCheckpoints, Store, write_atomic};

/// A loaded model's key: its source and what loading did with unused tensors.
type ModelKey = (String, UnusedTensors);

/// Models loaded in this process, by source and strictness (loading is the slow part of
/// small cells).
pub struct Models<B: AutodiffBackend> {
    loaded: Mutex<HashMap<ModelKey, Arc<LoadedModel<B>>>>,
}

impl<B: AutodiffBackend> Default for Models<B> {
    fn default() -> Self {
        Self {
            loaded: Mutex::new(HashMap::new()),
        }
    }
}

impl<B: AutodiffBackend> Models<B> {
    pub fn get(
        &self,
        spec: &ModelSpec,
        device: &B::Device,
    ) -> Result<Arc<LoadedModel<B>>, RunError> {
        let mut loaded = self.loaded.lock().expect("model cache lock");
        let key = (spec.source.clone(), spec.unused_tensors());
        if let Some(m) = loaded.get(&key) {
            return Ok(m.clone());
        }
        let model = Arc::new(crate::lm::load_with::<B>(&key.0, key.1, device)?);
        loaded.insert(key, model.clone());
        Ok(model)
    }
}

/// Runs a cell and returns its record (a `failed` record when the method errs), or `None`
/// when a stop was requested before it finished ([`crate::interrupt`]): an interrupted cell
/// has no record, so the next run starts it again. The method reports where it stands to
/// `progress` and checks `stop` between units of work.
pub fn execute_cell<B: AutodiffBackend>(
    experiment: &Experiment,
    cell: &Cell,
    store: &Store,
    models: &Models<B>,
    device: &B::Device,
    (progress, stop): (&dyn ProgressSink, &StopSignal),
) -> Option<Record> {
    let started = Instant::now();
    let mut record = Record {
        id: cell.id.clone(),
        experiment: experiment.name.clone(),
        index: cell.index,
        grid: cell.grid.clone(),
        spec: cell.spec.clone(),
        status: Status::Finished,
        error: None,
        attempts: 1,
        metrics: Default::default(),
        counts: Counts::default(),
        prompt: None,
        search: None,
        label_search: None,
        timings: Timings::default(),
        provenance: Provenance {
            package_version: env!("CARGO_PKG_VERSION").to_string(),
            git_commit: provenance::git_commit(),
            backend: experiment.settings.backend,
            // Set by prompt methods to the engine their search ran on.
            engine: None,
            seed: cell.spec.seed,
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            ..Default::default()
        },
        predictions: None,
    };
    let context = CellContext {
        experiment,
        cell,
        store,
        progress,
        stop,
    };
    match fill(&mut record, &context, models, device, started) {
        Ok(()) => {}
        Err(RunError::Interrupted) => return None,
        Err(e) => {
            record.status = Status::Failed;
            record.error = Some(crate::errors::chain_text(&e));
        }
    }
    record.timings.total_seconds = started.elapsed().as_secs_f64();
    Some(record)
}

/// What a cell runs in: its experiment, where its files go, where its progress goes, and
/// the stop request its loops check.
struct CellContext<'a> {
    experiment: &'a Experiment,
    cell: &'a Cell,
    store: &'a Store,
    progress: &'a dyn ProgressSink,
    stop: &'a StopSignal,
}

fn fill<B: AutodiffBackend>(
    record: &mut Record,
    context: &CellContext,
    models: &Models<B>,
    device: &B::Device,
    started: Instant,
) -> Result<(), RunError> {
    let CellContext {
        experiment,
        cell,
        progress,
        stop,
        ..
    } = *context;
    let spec = &cell.spec;
    let data = crate::tasks::load_columns(
        &spec.task,
        &experiment.settings.data,
        spec.seed,
        &cell.text_columns(),
    )?;
    record.counts = Counts {
        train: data.train.len(),
        dev: data.dev.len(),
        test: data.test.len(),
        skipped_rows: data.skipped_rows,
        filtered_examples: data.filtered_examples,
        unscorable: 0,
        truncated: 0,
    };
    let mut files = data.files.clone();
    record.provenance.data_origin = data.origin.clone();
    if let MethodSpec::Majority = spec.method {
        record.timings.load_seconds = started.elapsed().as_secs_f64();
        record.metrics = crate::baselines::majority::evaluate(
            &data.train,
            &data.test,
            spec.task.is_classification(),
        );
        record.predictions = Some(crate::baselines::majority::predictions(
            &data.train,
            &data.test,
            &data.classes,
        ));
        record.provenance.files = provenance::file_hashes(&files);
        return Ok(());
    }
    let lm = models.get(&spec.model, device)?;
    files.extend(lm.files.iter().cloned());
    record.provenance.model_origin = Some(lm.resolved.origin.clone());
    record.provenance.skipped_tensors = lm.skipped_tensors.clone();
    record.timings.load_seconds = started.elapsed().as_secs_f64();
    let method_start = Instant::now();
    let limit = spec.model.length_limit(lm.max_sequence_length());
    match &spec.method {
        MethodSpec::LinearProbe { probe } => {
            let outcome = crate::baselines::linear_probe::run(
                &lm,
                baseline_data(spec, &lm, &data),
                probe,
                device,
                stop,
            )?;
            record_baseline(record, outcome)?;
        }
        MethodSpec::Finetune { finetune } => {
            if lm.config.family == crate::lm::Family::Albert {
                return Err(crate::methods::MethodError::SharedLayersNotFinetunable.into());
            }
            let outcome = crate::baselines::finetune::run(
                &lm,
                baseline_data(spec, &lm, &data),
                finetune,
                device,
                &mut checkpoints_of(context),
                (progress, stop),
            )?;
            record_baseline(record, outcome)?;
        }
        _ => run_prompt_method(record, context, &lm, &data, device)?,
    }
    if record.counts.truncated > 0 {
        tracing::info!(
            examples = record.counts.truncated,
            max_length = limit.max_tokens,
            truncate = %limit.truncate,
            "examples longer than the length limit were cut to fit"
        );
    }
    record.timings.method_seconds = method_start.elapsed().as_secs_f64();
    record.provenance.files = provenance::file_hashes(&files);
    Ok(())
}

/// The cell's checkpoints: a killed attempt of this cell may have left its state (deleted
/// with the record).
fn checkpoints_of(context: &CellContext) -> FileCheckpoints {
    FileCheckpoints::new(
        context.store.checkpoint_path(&context.cell.id),
        context.experiment.settings.checkpoint_every,
    )
}

/// What a baseline trains and is evaluated on: the cell's splits, length limit and seed.
fn baseline_data<'a, B: AutodiffBackend>(
    spec: &crate::config::CellSpec,
    lm: &LoadedModel<B>,
    data: &'a crate::tasks::TaskData,
) -> crate::baselines::BaselineData<'a> {
    crate::baselines::BaselineData {
        classes: &data.classes,
        splits: [
            data.train.as_slice(),
            data.dev.as_slice(),
            data.test.as_slice(),
        ],
        limit: spec.model.length_limit(lm.max_sequence_length()),
        seed: spec.seed,
    }
}

/// A baseline's outcome into the cell's record (`None`: it was stopped).
fn record_baseline(
    record: &mut Record,
    outcome: Option<crate::baselines::BaselineOutcome>,
) -> Result<(), RunError> {
    let outcome = outcome.ok_or(RunError::Interrupted)?;
    record.counts.truncated = outcome.truncated;
    record.metrics = outcome.metrics;
    record.predictions = Some(outcome.predictions);
    Ok(())
}

/// A prompt method ([`crate::methods`]) on the cell's data, into its record; every new best
/// prompt is kept in the store as the search finds it.
fn run_prompt_method<B: AutodiffBackend>(
    record: &mut Record,
    context: &CellContext,
    lm: &LoadedModel<B>,
    data: &crate::tasks::TaskData,
    device: &B::Device,
) -> Result<(), RunError> {
    let CellContext {
        experiment,
        cell,
        store,
        progress,
        stop,
    } = *context;
    let best_path = store.prompt_path(&cell.id);
    let mut keep_best = |artifact: &crate::record::PromptArtifact| {
        let json = serde_json::to_vec_pretty(artifact).expect("prompts serialise");
        if let Err(e) = write_atomic(&best_path, &json) {
            tracing::warn!(error = %crate::errors::Chain(&e), "could not save the best-so-far prompt");
        }
    };
    let outcome = crate::methods::run(
        &cell.spec,
        data,
        lm,
        device,
        experiment.settings.engine,
        crate::methods::MethodHooks {
            on_best: &mut keep_best,
            checkpoints: &mut checkpoints_of(context),
            progress,
            stop,
        },
    )?
    .ok_or(RunError::Interrupted)?;
    record.timings.seconds_per_iteration = outcome.search.as_ref().map(|s| s.seconds_per_iteration);
    record.provenance.engine = Some(outcome.engine);
    record.metrics = outcome.metrics;
    record.predictions = Some(outcome.predictions);
    record.counts.unscorable = outcome.unscorable;
    record.counts.truncated = outcome.truncated;
    record.prompt = Some(outcome.prompt);
    record.search = outcome.search;
    record.label_search = outcome.label_search;
    Ok(())
}
