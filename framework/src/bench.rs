//! Speed measurements through the project's own code path (`autoprompt bench ...`, driven
//! by `just bench`): one search iteration (`search::trigger::SearchState::step`) on SST-2 sentences,
//! in wall seconds and CPU seconds, and the encoder forward in GFLOP/s. Timed here, never
//! asserted in tests.
//!
//! The iteration is the faithful one: gradients over `accumulation` batches, then the current
//! trigger and every candidate scored on `eval_batches` fresh batches (default: as many as
//! `accumulation`, as in the paper's code), exactly what a search step does.

use std::path::PathBuf;
use std::time::Instant;

use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Int, Tensor, TensorData};
use rand::Rng;
use serde::Serialize;

use crate::lm::LmError;
use crate::lm::{EncoderInput, MaskedLmConfig};
use crate::prompt::TemplateError;
use crate::prompt::verbalizer::VerbalizerError;
use crate::prompt::{Encoded, Template, Verbalizer};
use crate::tasks::TaskError;

/// Why a measurement could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error(transparent)]
    Model(#[from] LmError),
    #[error(transparent)]
    Task(#[from] TaskError),
    #[error("template")]
    Template(#[from] TemplateError),
    #[error("label words")]
    Verbalizer(#[from] VerbalizerError),
    #[error(
        "the host engine does not cover `{0}` (projected embeddings or gelu_new): bench it with --engine burn"
    )]
    HostEngineDoesNotCover(String),
}
use crate::search::candidates::{CandidateFilter, allowed_tokens};
use crate::search::trigger::{SearchContext, SearchInputs, SearchState, Split};
use crate::search::{Engine, Gold, MultiToken, Scorer, SearchSettings, SelectBy, Target};
use crate::tasks::{MalformedRows, sample};

/// The search-iteration workload (the CLI's `autoprompt bench search` flags fill it).
#[derive(Debug, Clone)]
pub struct SearchBench {
    /// A model directory, hub id, or `splade-tiny`.
    pub model: String,
    /// SST-2 TSV whose first 512 rows are the workload.
    pub data: PathBuf,
    pub batch_size: usize,
    /// Batches whose gradients are summed per iteration.
    pub accumulation: usize,
    /// Fresh batches the current trigger and every candidate are scored on per iteration
    /// (`None`: `accumulation`, as in the paper's code and the search's default).
    pub eval_batches: Option<usize>,
    pub candidates: usize,
    pub triggers: usize,
    /// Timed iterations (the median is reported).
    pub iters: usize,
    /// Untimed iterations first.
    pub warmup: usize,
    /// Rows per evaluation forward pass.
    pub eval_rows: usize,
    /// Who runs the gradients and evaluations (`Auto`: the host engine on CPU backends).
    pub engine: Engine,
    /// Exact pruning of candidate evaluation (the search's default).
    pub prune: bool,
    /// The metric candidates are compared by (its bound decides what pruning can skip).
    pub select_by: SelectBy,
    /// Label words of two tokens ("very bad" / "very good") scored this way; `None`: the
    /// single tokens "terrible" / "great".
    pub multi_token: Option<MultiToken>,
}

#[derive(Debug, Clone, Serialize)]
pub struct BenchResult {
    pub implementation: String,
    pub median_seconds: f64,
    /// User + system CPU seconds of the whole process (every thread) over the timed
    /// iterations, divided by their number.
    pub cpu_s_per_iteration: f64,
    pub candidate_examples_per_second: f64,
    pub peak_rss_mb: f64,
    pub threads: usize,
    pub batch_size: usize,
    pub triggers: usize,
    /// Timed iterations (after the warm-up).
    pub iters: usize,
    /// Batches each candidate was scored on per iteration (the search setting's value).
    pub eval_batches: usize,
    pub prune: bool,
    pub select_by: SelectBy,
    /// Candidate rows (current prompt excluded) pruning skipped, as a fraction of all
    /// candidate rows of the timed iterations.
    pub pruned_fraction: f64,
    /// How the two-token label words were scored (`None`: single-token words).
    pub multi_token: Option<String>,
    /// Encoder rows (forward and backward) per timed iteration.
    pub encoder_rows_per_iteration: f64,
}

/// Peak resident set size of this process (Linux `VmHWM`), in MiB.
pub fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// User + system CPU time of this process so far, every thread (live or exited) counted, in
/// clock ticks: fields `utime` and `stime` of `/proc/self/stat`. A tick is 1/100 s
/// ([`CPU_TICKS_PER_SECOND`], Linux's `USER_HZ`, fixed in its ABI on x86 and arm). `None`
/// where `/proc` is not available.
pub fn process_cpu_ticks() -> Option<u64> {
    cpu_ticks_of_stat(&std::fs::read_to_string("/proc/self/stat").ok()?)
}

/// `utime + stime` of a `/proc/<pid>/stat` line.
fn cpu_ticks_of_stat(stat: &str) -> Option<u64> {
    // The command name (field 2) may hold spaces and parentheses: count from the last `)`.
    let fields: Vec<&str> = stat[stat.rfind(')')? + 1..].split_whitespace().collect();
    // `fields` starts at field 3 (state); utime and stime are fields 14 and 15.
    let ticks = |i: usize| fields.get(i)?.parse::<u64>().ok();
    Some(ticks(11)? + ticks(12)?)
}

/// The unit of [`process_cpu_ticks`].
pub const CPU_TICKS_PER_SECOND: f64 = 100.0;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// The workload's label words and what is scored at `[P]`: the single tokens "terrible" /
/// "great", or, with `multi_token`, the two-token words "very bad" / "very good".
fn label_words(
    multi_token: Option<MultiToken>,
    tokenizer: &crate::lm::LmTokenizer,
) -> Result<(Verbalizer, Target), BenchError> {
    let (negative, positive) = match multi_token {
        None => ("terrible", "great"),
        Some(_) => ("very bad", "very good"),
    };
    let words = [
        ("0".to_string(), vec![negative.to_string()]),
        ("1".to_string(), vec![positive.to_string()]),
    ]
    .into();
    let classes = ["0".to_string(), "1".to_string()];
    let verbalizer = Verbalizer::from_words(&classes, &words, tokenizer, multi_token.is_some())?;
    let target = Target::of_classes(
        &verbalizer,
        multi_token.unwrap_or_default(),
        tokenizer.special.mask.id,
        tokenizer.special.pad.id,
    );
    Ok((verbalizer, target))
}

/// Times `warmup + iters` search iterations; reports the median of the last `iters`.
pub fn search_iteration<B: AutodiffBackend>(
    bench: &SearchBench,
    name: &str,
    device: &B::Device,
) -> Result<BenchResult, BenchError> {
    let lm = crate::lm::load::<B>(&bench.model, device)?;
    let (rows, _) = crate::tasks::sst2::read(&bench.data, MalformedRows::Error)?;
    let rows = &rows[..rows.len().min(512)];
    let template = Template::parse(&format!(
        "[CLS] {{sentence}} {}[P] . [SEP]",
        "[T] ".repeat(bench.triggers)
    ))
    .expect("valid template");
    let (verbalizer, target) = label_words(bench.multi_token, &lm.tokenizer)?;
    let mask = lm.tokenizer.special.mask.id;
    let placeholder = vec![mask; bench.triggers];
    let encoded: Vec<Encoded> = rows
        .iter()
        .map(|e| {
            template.encode_with_masks(
                |f| e.field(f),
                &lm.tokenizer,
                &placeholder,
                crate::prompt::LengthLimit::at_end(128),
                false,
                target.predict_masks(),
            )
        })
        .collect::<Result<_, _>>()?;
    let golds: Vec<Gold> = rows
        .iter()
        .map(|e| Gold {
            index: usize::from(e.label == "1"),
            token: 0,
        })
        .collect();
    let scorer = Scorer::with_engine(
        lm.model.clone(),
        target,
        bench.eval_rows,
        device.clone(),
        bench.engine,
    );
    let settings = SearchSettings {
        batch_size: bench.batch_size,
        accumulation_steps: bench.accumulation,
        num_candidates: bench.candidates,
        eval_batch_size: bench.eval_rows,
        eval_batches: bench.eval_batches,
        prune: bench.prune,
        ..Default::default()
    };
    let allowed = allowed_tokens(
        &lm.tokenizer,
        lm.model.vocab_size(),
        &verbalizer.all_token_ids(),
        CandidateFilter::default(),
    );
    let train_classes: Vec<usize> = golds.iter().map(|g| g.index).collect();
    let display = |id: u32| lm.tokenizer.display_token(id);
    let stop = crate::interrupt::StopSignal::new();
    let ctx = SearchContext {
        scorer: &scorer,
        settings: &settings,
        select_by: bench.select_by,
        allowed: &allowed,
        pad_id: lm.tokenizer.special.pad.id,
        initial_trigger: mask,
        train_classes: &train_classes,
        display: &display,
        progress: &crate::progress::NoProgress,
        stop: &stop,
    };
    let split = Split {
        encoded: &encoded,
        golds: &golds,
    };
    // The search's own iteration, on no dev rows: an accepted candidate costs no dev pass, so
    // every iteration does the same work (gradients, then the current prompt and every
    // candidate on `eval_batches` batches).
    let no_dev = Split {
        encoded: &[],
        golds: &[],
    };
    let inputs = SearchInputs::new(&ctx, split, no_dev);
    let mut state = SearchState::start(&inputs, &mut |_, _| {});
    let mut rng = sample::rng(0, "bench");
    let eval_batches = settings.eval_batches();
    let rows_per_example = scorer.scoring_rows(1);
    let batch_rows = (bench.batch_size.min(encoded.len()) * eval_batches) as u64 * rows_per_example;
    // Both label words have the same length, so every example's gradient costs the same.
    let gradient_rows = (bench.batch_size.min(encoded.len()) * settings.accumulation_steps.max(1))
        as u64
        * scorer.gradient_rows(&golds[..1]).0;
    let mut encoder_rows = 0u64;
    let mut times = vec![];
    // CPU ticks over the timed iterations; `None` where they cannot be read.
    let mut cpu = Some(0u64);
    let mut scored = 0u64;
    let mut pruned = 0u64;
    for it in 0..bench.warmup + bench.iters {
        let before = state.rows();
        let (t0, c0) = (Instant::now(), process_cpu_ticks());
        state.step(&inputs, &mut rng, &mut |_, _| {});
        let dt = t0.elapsed().as_secs_f64();
        let dc = process_cpu_ticks()
            .zip(c0)
            .map(|(c1, c0)| c1.saturating_sub(c0));
        if it >= bench.warmup {
            times.push(dt);
            cpu = cpu.zip(dc).map(|(a, b)| a + b);
            // Candidate rows: the forward rows past the gradients and the current prompt's.
            scored += state.rows().forward - before.forward - gradient_rows - batch_rows;
            encoder_rows += state.rows().total() - before.total();
            pruned += state.rows().pruned - before.pruned;
        }
        tracing::info!(
            iteration = it,
            seconds = dt,
            cpu_ticks = dc,
            "bench iteration"
        );
    }
    let total: f64 = times.iter().sum();
    let timed = times.len();
    Ok(BenchResult {
        implementation: name.to_string(),
        median_seconds: median(times),
        cpu_s_per_iteration: cpu
            .map_or(f64::NAN, |t| t as f64 / CPU_TICKS_PER_SECOND / timed as f64),
        candidate_examples_per_second: scored as f64 / rows_per_example as f64 / total,
        peak_rss_mb: peak_rss_mb(),
        threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
        batch_size: bench.batch_size,
        triggers: bench.triggers,
        iters: timed,
        eval_batches,
        prune: bench.prune,
        select_by: bench.select_by,
        pruned_fraction: pruned as f64 / (scored + pruned).max(1) as f64,
        multi_token: bench.multi_token.map(|m| m.describe()),
        encoder_rows_per_iteration: encoder_rows as f64 / timed as f64,
    })
}

/// Encoder forward throughput.
#[derive(Debug, Clone, Serialize)]
pub struct ForwardResult {
    pub implementation: String,
    pub batch: usize,
    pub seq: usize,
    pub median_seconds: f64,
    /// [`encoder_flops`] at `batch × seq`: the work every implementation performs here.
    pub gflop: f64,
    /// What `gflop` counts ([`FULL_ENCODER`]), so the report can check that every row
    /// counts the same work.
    pub flops_of: &'static str,
    pub gflops_per_second: f64,
    /// Plain `[n, n] × [n, n]` matmul on the same backend, GFLOP/s.
    pub backend_sgemm_gflops_per_second: f64,
}

/// The work of `bench forward` on every implementation: the full encoder (embeddings, then
/// every layer at every one of the `batch × seq` tokens, no padding), no MLM head and no
/// pooler. The host engine's shortcut of running the last layer at `[P]` only (the search's
/// `mask_features`) is not taken here: [`host_encoder_forward`] calls `HostModel::encode`,
/// which computes every token of every layer, and checks that it returned all of them.
pub const FULL_ENCODER: &str = "full encoder: every layer at every token; no MLM head, no pooler";

impl ForwardResult {
    /// `square_matmul`: the side `n` of the square product timed beside the forward and
    /// its median seconds.
    fn new(
        name: &str,
        [batch, seq]: [usize; 2],
        seconds: f64,
        gflop: f64,
        (n, square_matmul_seconds): (usize, f64),
    ) -> Self {
        Self {
            implementation: name.to_string(),
            batch,
            seq,
            median_seconds: seconds,
            gflop,
            flops_of: FULL_ENCODER,
            gflops_per_second: gflop / seconds,
            backend_sgemm_gflops_per_second: 2.0 * (n as f64).powi(3) / 1e9 / square_matmul_seconds,
        }
    }
}

/// FLOPs of one encoder forward (multiply-adds × 2): projections, attention, feed-forward,
/// at every token of every layer (see [`FULL_ENCODER`]); LayerNorm, GELU, softmax and the
/// embeddings are not counted. The feed-forward is two `h × i` matrices, or three in
/// ModernBERT's GeGLU (`Wi` is `h × 2i`). ModernBERT's local layers are counted at full width:
/// the eager attention of either side computes every score and masks the far ones.
pub fn encoder_flops(config: &MaskedLmConfig, batch: usize, seq: usize) -> f64 {
    let tokens = (batch * seq) as f64;
    let (h, i, s) = (
        config.hidden_size as f64,
        config.intermediate_size as f64,
        seq as f64,
    );
    let ffn_matrices = if config.modern.is_some() { 3.0 } else { 2.0 };
    config.num_layers as f64
        * (tokens * (8.0 * h * h + 2.0 * ffn_matrices * h * i) + 4.0 * batch as f64 * s * s * h)
}

/// Times the encoder forward at `batch × seq` (random token ids) and a square matmul.
pub fn encoder_forward<B: Backend>(
    model_source: &str,
    batch: usize,
    seq: usize,
    iters: usize,
    name: &str,
    device: &B::Device,
) -> Result<ForwardResult, BenchError> {
    let lm = crate::lm::load::<B>(model_source, device)?;
    let mut rng = sample::rng(0, "forward");
    let vocab = lm.model.vocab_size();
    let ids: Vec<i64> = (0..batch * seq)
        .map(|_| rng.random_range(1000..vocab as i64))
        .collect();
    let ids = Tensor::<B, 2, Int>::from_data(TensorData::new(ids, [batch, seq]), device);
    let run = || {
        let input = EncoderInput {
            inputs_embeds: lm.model.embed_tokens(ids.clone()),
            token_type_ids: Tensor::zeros([batch, seq], device),
            attention_mask: Tensor::ones([batch, seq], device),
        };
        let t0 = Instant::now();
        let out = lm.model.encode(input);
        let _ = out.into_data();
        t0.elapsed().as_secs_f64()
    };
    run();
    let times: Vec<f64> = (0..iters).map(|_| run()).collect();
    let c = &lm.config;
    let gflop = encoder_flops(c, batch, seq) / 1e9;
    let secs = median(times);
    let n = 2048;
    let a = Tensor::<B, 2>::random([n, n], burn::tensor::Distribution::Default, device);
    let b = Tensor::<B, 2>::random([n, n], burn::tensor::Distribution::Default, device);
    let _ = a.clone().matmul(b.clone()).into_data();
    let mm: Vec<f64> = (0..3)
        .map(|_| {
            let t0 = Instant::now();
            let _ = a.clone().matmul(b.clone()).into_data();
            t0.elapsed().as_secs_f64()
        })
        .collect();
    Ok(ForwardResult::new(
        name,
        [batch, seq],
        secs,
        gflop,
        (n, median(mm)),
    ))
}

/// `batch × seq` random token ids from the vocabulary's upper part (no special tokens).
fn random_ids(batch: usize, seq: usize, vocab: u32) -> Vec<u32> {
    let mut rng = sample::rng(0, "forward");
    (0..batch * seq)
        .map(|_| rng.random_range(1000..vocab))
        .collect()
}

/// The host engine's model, or why `model_source` has none.
fn host_model(
    model_source: &str,
) -> Result<
    (
        crate::lm::LoadedModel<burn::backend::NdArray>,
        crate::lm::host::HostModel,
    ),
    BenchError,
> {
    let lm = crate::lm::load::<burn::backend::NdArray>(model_source, &Default::default())?;
    let host = crate::lm::host::HostModel::from_model(&lm.model)
        .ok_or_else(|| BenchError::HostEngineDoesNotCover(model_source.to_string()))?;
    Ok((lm, host))
}

/// `ids` (`rows × seq`, no padding) packed into one shard per worker, as the search splits
/// its rows across cores.
fn host_shards(ids: &[u32], batch: usize, seq: usize) -> Vec<crate::lm::host::Packed> {
    let per_worker = batch.div_ceil(crate::search::parallel::workers(batch));
    ids.chunks(per_worker * seq)
        .map(|rows| {
            let n = rows.len();
            crate::lm::host::Packed::from_padded(rows, &vec![0; n], &vec![1.0; n], seq)
        })
        .collect()
}

/// Median seconds of the host engine's own `n × n` product, split by rows across one worker
/// per core (as the forward's rows are).
fn host_square_matmul(n: usize) -> f64 {
    use crate::lm::host::kernels;
    use crate::search::parallel::{map_ordered, workers};
    let a: Vec<f32> = (0..n * n).map(|i| (i % 7) as f32 * 0.1).collect();
    let b: Vec<f32> = (0..n * n).map(|i| (i % 5) as f32 * 0.1).collect();
    let halves: Vec<(usize, usize)> = {
        let per = n.div_ceil(workers(n));
        (0..n).step_by(per).map(|s| (s, per.min(n - s))).collect()
    };
    let product = || {
        let t0 = Instant::now();
        map_ordered(&halves, |&(row0, rows)| {
            let mut out = vec![0.0; rows * n];
            kernels::matmul(
                &mut out,
                n,
                kernels::View::block(&a, n, (row0, rows), (0, n)),
                kernels::View::dense(&b, n, n),
                false,
            );
            out
        });
        t0.elapsed().as_secs_f64()
    };
    product();
    median((0..3).map(|_| product()).collect())
}

/// Encoder forward throughput of the host engine ([`crate::lm::host`]) at `batch × seq`,
/// run the way the search runs it: the rows split across one worker per core.
pub fn host_encoder_forward(
    model_source: &str,
    batch: usize,
    seq: usize,
    iters: usize,
    name: &str,
) -> Result<ForwardResult, BenchError> {
    use crate::search::parallel::map_ordered;
    let (lm, host) = host_model(model_source)?;
    let shards = host_shards(
        &random_ids(batch, seq, host.vocab_size() as u32),
        batch,
        seq,
    );
    let run = || {
        let t0 = Instant::now();
        let hidden = map_ordered(&shards, |p| host.encode(p));
        assert_eq!(
            hidden.iter().map(Vec::len).sum::<usize>(),
            batch * seq * host.hidden_size()
        );
        t0.elapsed().as_secs_f64()
    };
    run();
    let secs = median((0..iters).map(|_| run()).collect());
    let gflop = encoder_flops(&lm.config, batch, seq) / 1e9;
    let n = 2048;
    Ok(ForwardResult::new(
        name,
        [batch, seq],
        secs,
        gflop,
        (n, host_square_matmul(n)),
    ))
}

/// What `bench forward --gradient` times ([`host_gradient_pass`]), word for word as
/// `benches/torch_forward.py --gradient` says it.
pub const GRADIENT_PASS: &str = "trigger-gradient pass: encoder forward, head at [P], backward to the input embeddings; counted as 2 x the full encoder";

/// The trigger-gradient pass of the host engine at `batch × seq`: the encoder forward, the
/// head transform at each row's last token (standing for its `[P]`), and the backward of the
/// features' sum to every token's input embedding, with no weight gradients (HotFlip's
/// gradient, [`crate::lm::host::HostModel::input_gradient`]). The host engine computes its
/// last layer at `[P]` only, as the search does; GFLOP counts the full encoder twice (the
/// forward, and the input backward of every product: [`GRADIENT_PASS`]) on every
/// implementation, so the rows compare the same work.
pub fn host_gradient_pass(
    model_source: &str,
    batch: usize,
    seq: usize,
    iters: usize,
    name: &str,
) -> Result<ForwardResult, BenchError> {
    use crate::search::parallel::map_ordered;
    let (lm, host) = host_model(model_source)?;
    let shards = host_shards(
        &random_ids(batch, seq, host.vocab_size() as u32),
        batch,
        seq,
    );
    let masks: Vec<Vec<usize>> = shards
        .iter()
        .map(|p| p.starts[1..].iter().map(|&end| end - 1).collect())
        .collect();
    let work: Vec<usize> = (0..shards.len()).collect();
    let run = || {
        let t0 = Instant::now();
        let grads = map_ordered(&work, |&i| {
            let (features, cache) = host.mask_features_for_gradient(&shards[i], &masks[i]);
            host.input_gradient(&shards[i], &masks[i], &cache, &vec![1.0; features.len()])
        });
        assert_eq!(
            grads.iter().map(Vec::len).sum::<usize>(),
            batch * seq * host.hidden_size()
        );
        t0.elapsed().as_secs_f64()
    };
    run();
    let secs = median((0..iters).map(|_| run()).collect());
    let gflop = 2.0 * encoder_flops(&lm.config, batch, seq) / 1e9;
    let n = 2048;
    let mut result =
        ForwardResult::new(name, [batch, seq], secs, gflop, (n, host_square_matmul(n)));
    result.flops_of = GRADIENT_PASS;
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_ticks_are_utime_plus_stime_even_with_parentheses_in_the_name() {
        let stat = "4242 (a (b) c) R 1 4242 4242 0 -1 4194304 100 0 0 0 250 17 0 0 20 0 3 0";
        assert_eq!(cpu_ticks_of_stat(stat), Some(267));
        assert_eq!(cpu_ticks_of_stat("4242 (x) R 1"), None);
    }

    #[test]
    fn this_process_cpu_time_is_readable_and_grows() {
        let Some(before) = process_cpu_ticks() else {
            return; // no /proc here
        };
        let t0 = Instant::now();
        let mut x = 0u64;
        while t0.elapsed().as_millis() < 50 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(std::hint::black_box(1));
        }
        std::hint::black_box(x);
        assert!(process_cpu_ticks().expect("readable once") >= before);
    }

    fn config(json: &str) -> MaskedLmConfig {
        MaskedLmConfig::from_hf(serde_json::from_str(json).unwrap()).unwrap()
    }

    #[test]
    fn bert_base_forward_flops_at_32_by_64() {
        // 12 layers, 768 hidden, 3072 intermediate: the 352.7 GFLOP of reports/bench.md.
        let bert_base = config(
            r#"{"model_type": "bert", "vocab_size": 28996, "hidden_size": 768, "num_hidden_layers": 12,
                "num_attention_heads": 12, "intermediate_size": 3072, "max_position_embeddings": 512}"#,
        );
        let gflop = encoder_flops(&bert_base, 32, 64) / 1e9;
        assert!((gflop - 352.7).abs() < 0.05, "{gflop}");
    }

    #[test]
    fn modernbert_base_forward_flops_count_the_gated_feed_forward() {
        // 22 layers × (2048 tokens × (8·768² + 6·768·1152) + 4·32·64²·768) = 460.6 GFLOP.
        let modernbert_base = config(
            r#"{"model_type": "modernbert", "vocab_size": 50368, "hidden_size": 768,
                "num_hidden_layers": 22, "num_attention_heads": 12, "intermediate_size": 1152,
                "max_position_embeddings": 8192}"#,
        );
        let gflop = encoder_flops(&modernbert_base, 32, 64) / 1e9;
        assert!((gflop - 460.6).abs() < 0.05, "{gflop}");
    }
}
