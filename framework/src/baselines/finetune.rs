//! Fine-tuning: the masked LM's encoder plus a linear classification head on the first
//! token's state ([CLS] / `<s>`), all weights trained with AdamW (bias correction on), linear
//! warm-up over the first 10% of steps then linear decay, dropout in training mode, and the
//! epoch with the best dev accuracy evaluated.
//!
//! Long runs checkpoint at epoch boundaries ([`FinetuneState`]: weights, optimizer moments,
//! the best epoch's weights, the shuffle's order and generator). So that a resumed run draws
//! the dropout masks an uninterrupted one draws, burn's generator is seeded at the start of
//! every epoch from the cell's seed and the epoch (its position cannot be saved).

use crate::metric::{Measure, Metric, Split};
use std::collections::BTreeMap;

use burn::module::{AutodiffModule, Module};
use burn::nn::{Dropout, Linear, LinearConfig};
use burn::optim::{AdamWConfig, GradientsParams, Optimizer};
use burn::record::{FullPrecisionSettings, NamedMpkBytesRecorder, Record, Recorder, RecorderError};
use burn::tensor::activation::log_softmax;
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Int, Tensor, TensorData};
use rand::RngCore;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};

use super::BaselineData;
use super::linear_probe::{SentenceInput, sentence_input};
use crate::checkpoint::{Checkpoints, RngPosition};
use crate::interrupt::StopSignal;
use crate::lm::{EncoderInput, LmError, LoadedModel, MaskedLm};
use crate::progress::{ProgressSink, Stage};
use crate::tasks::metrics::accuracy_of_logits;
use crate::tasks::{Example, sample};

/// `[method]` settings of `kind = "finetune"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FinetuneSettings {
    /// Default: 20 when the training set has at most 1000 examples (the paper's low-data
    /// runs), else 3.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub epochs: Option<usize>,
    /// Peak learning rate. Default 2e-5.
    pub lr: f64,
    /// Default 0.01.
    pub weight_decay: f64,
    /// Fraction of steps of linear warm-up. Default 0.1.
    pub warmup: f64,
    /// Default 32.
    pub batch_size: usize,
    /// Dropout in training mode. Default 0.1.
    pub dropout: f64,
}

impl Default for FinetuneSettings {
    fn default() -> Self {
        Self {
            epochs: None,
            lr: 2e-5,
            weight_decay: 0.01,
            warmup: 0.1,
            batch_size: 32,
            dropout: 0.1,
        }
    }
}

/// Encoder + head on the first token.
#[derive(Module, Debug)]
pub struct Classifier<B: Backend> {
    lm: MaskedLm<B>,
    head: Linear<B>,
    #[module(skip)]
    dropout: f64,
}

/// A padded batch of sentence inputs.
struct Inputs {
    rows: usize,
    seq: usize,
    ids: Vec<i64>,
    segments: Vec<i64>,
    mask: Vec<f32>,
}

fn inputs(encoded: &[&SentenceInput], pad: u32) -> Inputs {
    let seq = encoded.iter().map(|x| x.ids.len()).max().unwrap_or(1);
    let rows = encoded.len();
    let mut out = Inputs {
        rows,
        seq,
        ids: vec![pad as i64; rows * seq],
        segments: vec![0; rows * seq],
        mask: vec![0.0; rows * seq],
    };
    for (r, input) in encoded.iter().enumerate() {
        for (c, (&id, &s)) in input.ids.iter().zip(&input.segments).enumerate() {
            out.ids[r * seq + c] = id as i64;
            out.segments[r * seq + c] = s as i64;
            out.mask[r * seq + c] = 1.0;
        }
    }
    out
}

impl<B: Backend> Classifier<B> {
    /// `[rows, classes]` logits.
    fn forward(&self, x: &Inputs, device: &B::Device) -> Tensor<B, 2> {
        let ids =
            Tensor::<B, 2, Int>::from_data(TensorData::new(x.ids.clone(), [x.rows, x.seq]), device);
        let hidden = self.lm.encode(EncoderInput {
            inputs_embeds: self.lm.embed_tokens(ids),
            token_type_ids: Tensor::from_data(
                TensorData::new(x.segments.clone(), [x.rows, x.seq]),
                device,
            ),
            attention_mask: Tensor::from_data(
                TensorData::new(x.mask.clone(), [x.rows, x.seq]),
                device,
            ),
        });
        let h = self.lm.hidden_size();
        let first = hidden.slice([0..x.rows, 0..1, 0..h]).reshape([x.rows, h]);
        self.head
            .forward(Dropout { prob: self.dropout }.forward(first))
    }
}

/// A fine-tuning run at an epoch boundary: what a checkpoint holds ([`crate::checkpoint`]).
/// Weights and optimizer state are burn records in MessagePack at full precision, so a
/// resumed run continues bit for bit.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FinetuneState {
    next_epoch: usize,
    step: usize,
    /// The shuffle order so far (each epoch shuffles the previous order).
    order: Vec<usize>,
    rng: RngPosition,
    #[serde(with = "serde_bytes")]
    model: Vec<u8>,
    #[serde(with = "serde_bytes")]
    optimizer: Vec<u8>,
    /// The best epoch's dev accuracy and weights so far.
    best_dev: Option<f64>,
    #[serde(with = "serde_bytes")]
    best_model: Vec<u8>,
}

fn to_bytes<B: Backend, R: Record<B>>(record: R) -> Result<Vec<u8>, RecorderError> {
    Recorder::<B>::record(
        &NamedMpkBytesRecorder::<FullPrecisionSettings>::default(),
        record,
        (),
    )
}

fn from_bytes<B: Backend, R: Record<B>>(
    bytes: &[u8],
    device: &B::Device,
) -> Result<R, RecorderError> {
    Recorder::<B>::load(
        &NamedMpkBytesRecorder::<FullPrecisionSettings>::default(),
        bytes.to_vec(),
        device,
    )
}

/// The seed of burn's generator (dropout) for one epoch.
fn epoch_seed(seed: u64, epoch: usize) -> u64 {
    sample::rng(seed, &format!("finetune-dropout-{epoch}")).next_u64()
}

/// Learning rate at `step` of `total`: linear warm-up, then linear decay to 0.
pub fn learning_rate(peak: f64, warmup_fraction: f64, step: usize, total: usize) -> f64 {
    let warmup = ((total as f64) * warmup_fraction).ceil().max(1.0);
    let s = step as f64 + 1.0;
    if s <= warmup {
        peak * s / warmup
    } else {
        peak * ((total as f64 - s) / (total as f64 - warmup).max(1.0)).max(0.0)
    }
}

fn evaluate<B: Backend>(
    model: &Classifier<B>,
    encoded: &[SentenceInput],
    gold: &[usize],
    pad: u32,
    device: &B::Device,
) -> f64 {
    accuracy_of_logits(&logits_of(model, encoded, pad, device), gold)
}

/// The head's logits, row-major `[examples, classes]`.
fn logits_of<B: Backend>(
    model: &Classifier<B>,
    encoded: &[SentenceInput],
    pad: u32,
    device: &B::Device,
) -> Vec<f32> {
    let mut logits = vec![];
    for chunk in encoded.chunks(64) {
        let refs: Vec<&SentenceInput> = chunk.iter().collect();
        logits.extend(
            model
                .forward(&inputs(&refs, pad), device)
                .into_data()
                .convert::<f32>()
                .into_vec::<f32>()
                .expect("f32"),
        );
    }
    logits
}

/// Fine-tunes on `train`, selects the epoch on `dev`; returns `accuracy` and `dev_accuracy`
/// with the evaluation split's predictions, or `None` when a stop was requested
/// ([`crate::interrupt`]). Reports every step to `progress`.
pub fn run<B: AutodiffBackend>(
    lm: &LoadedModel<B>,
    data: BaselineData,
    settings: &FinetuneSettings,
    device: &B::Device,
    checkpoints: &mut dyn Checkpoints<FinetuneState>,
    (progress, stop): (&dyn ProgressSink, &StopSignal),
) -> Result<Option<super::BaselineOutcome>, LmError> {
    let BaselineData {
        classes,
        splits: [train, dev, test],
        limit,
        seed,
    } = data;
    let encode = |xs: &[Example]| {
        xs.iter()
            .map(|e| sentence_input(lm, e, limit))
            .collect::<Result<Vec<_>, _>>()
    };
    let gold = |xs: &[Example]| crate::tasks::class_indices(xs, classes);
    let (train_x, dev_x, test_x) = (encode(train)?, encode(dev)?, encode(test)?);
    let (train_y, dev_y, test_y) = (gold(train), gold(dev), gold(test));
    let truncated = [&train_x, &dev_x, &test_x]
        .iter()
        .flat_map(|split| split.iter())
        .filter(|x| x.cut_tokens > 0)
        .count();
    let pad = lm.tokenizer.special.pad.id;
    // Initialisation and dropout draw from burn's generator: seeded, and held by this
    // cell alone (see `with_seeded_rng`).
    let outcome = crate::backend::with_seeded_rng::<B, _>(device, seed, || {
        let mut encoder = lm.model.clone();
        encoder.dropout = settings.dropout;
        let head = LinearConfig::new(lm.model.hidden_size(), classes.len()).init(device);
        // burn initialises parameters lazily, at first use, and a clone (a checkpoint's
        // snapshot) initialises on its own with other draws: initialise now, from the seed.
        head.weight.val();
        if let Some(bias) = &head.bias {
            bias.val();
        }
        let mut model = Classifier {
            lm: encoder,
            head,
            dropout: settings.dropout,
        };
        let epochs = settings
            .epochs
            .unwrap_or(if train.len() <= 1000 { 20 } else { 3 });
        let batch_size = settings.batch_size.max(1);
        let total_steps = epochs * train.len().div_ceil(batch_size);
        let new_optim = || {
            AdamWConfig::new()
                .with_weight_decay(settings.weight_decay as f32)
                .init::<B, Classifier<B>>()
        };
        let mut optim = new_optim();
        let mut rng = sample::rng(seed, "finetune");
        let mut order: Vec<usize> = (0..train.len()).collect();
        let mut step = 0;
        let mut best: Option<(f64, Classifier<B::InnerBackend>)> = None;
        let mut first_epoch = 0;
        if let Some(state) = checkpoints.resume() {
            match restore(state, model.clone(), new_optim(), device) {
                Ok(r) => {
                    tracing::info!(
                        epoch = r.next_epoch,
                        "resuming fine-tuning from its checkpoint"
                    );
                    (model, optim, best) = (r.model, r.optim, r.best);
                    (first_epoch, step, order) = (r.next_epoch, r.step, r.order);
                    r.rng.restore(&mut rng);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "checkpoint does not fit this model; starting over")
                }
            }
        }
        for epoch in first_epoch..epochs {
            let stop = stop.requested();
            if stop || checkpoints.due() {
                match snapshot(epoch, step, &order, &rng, &model, &optim, best.as_ref()) {
                    Ok(state) => checkpoints.save(&state),
                    Err(e) => tracing::warn!(error = %e, "could not record a checkpoint"),
                }
            }
            if stop {
                return None;
            }
            B::seed(device, epoch_seed(seed, epoch));
            order.shuffle(&mut rng);
            let mut epoch_loss = 0.0;
            for batch in order.chunks(batch_size) {
                let refs: Vec<&SentenceInput> = batch.iter().map(|&i| &train_x[i]).collect();
                let y = Tensor::<B, 2, Int>::from_data(
                    TensorData::new(
                        batch.iter().map(|&i| train_y[i] as i64).collect::<Vec<_>>(),
                        [batch.len(), 1],
                    ),
                    device,
                );
                let loss = log_softmax(model.forward(&inputs(&refs, pad), device), 1)
                    .gather(1, y)
                    .mean()
                    .neg();
                epoch_loss += loss
                    .clone()
                    .into_data()
                    .convert::<f32>()
                    .into_vec::<f32>()
                    .expect("f32")[0];
                let grads = GradientsParams::from_grads(loss.backward(), &model);
                model = optim.step(
                    learning_rate(settings.lr, settings.warmup, step, total_steps),
                    model,
                    grads,
                );
                step += 1;
                progress.report(Stage::Train {
                    epoch,
                    epochs,
                    step,
                    steps: total_steps,
                    best_dev: best.as_ref().map(|(b, _)| *b),
                });
            }
            let eval = model.valid();
            let dev_acc = evaluate(&eval, &dev_x, &dev_y, pad, device);
            tracing::debug!(
                epoch,
                loss = epoch_loss,
                dev_accuracy = dev_acc,
                "fine-tuning epoch"
            );
            if best.as_ref().is_none_or(|(b, _)| dev_acc > *b) {
                best = Some((dev_acc, eval));
            }
        }
        let (dev_acc, chosen) = best.expect("at least one epoch");
        let test_logits = logits_of(&chosen, &test_x, pad, device);
        let mut metrics = BTreeMap::new();
        metrics.insert(Metric::ACCURACY, accuracy_of_logits(&test_logits, &test_y));
        metrics.insert(Metric::Of(Measure::Accuracy, Split::Dev), dev_acc);
        Some(super::BaselineOutcome {
            metrics,
            truncated,
            predictions: super::logit_predictions(test, classes, &test_logits),
        })
    });
    Ok(outcome)
}

/// A fine-tuning run restored from a checkpoint.
struct Restored<B: AutodiffBackend, O> {
    next_epoch: usize,
    step: usize,
    order: Vec<usize>,
    rng: RngPosition,
    model: Classifier<B>,
    optim: O,
    best: Option<(f64, Classifier<B::InnerBackend>)>,
}

fn restore<B: AutodiffBackend, O: Optimizer<Classifier<B>, B>>(
    state: FinetuneState,
    model: Classifier<B>,
    optim: O,
    device: &B::Device,
) -> Result<Restored<B, O>, RecorderError> {
    let valid = model.valid();
    let best = match state.best_dev {
        Some(dev) => Some((
            dev,
            valid.load_record(from_bytes::<B::InnerBackend, _>(&state.best_model, device)?),
        )),
        None => None,
    };
    Ok(Restored {
        next_epoch: state.next_epoch,
        step: state.step,
        order: state.order,
        rng: state.rng,
        model: model.load_record(from_bytes::<B, _>(&state.model, device)?),
        optim: optim.load_record(from_bytes::<B, _>(&state.optimizer, device)?),
        best,
    })
}

fn snapshot<B: AutodiffBackend, O: Optimizer<Classifier<B>, B>>(
    next_epoch: usize,
    step: usize,
    order: &[usize],
    rng: &rand_chacha::ChaCha8Rng,
    model: &Classifier<B>,
    optim: &O,
    best: Option<&(f64, Classifier<B::InnerBackend>)>,
) -> Result<FinetuneState, RecorderError> {
    Ok(FinetuneState {
        next_epoch,
        step,
        order: order.to_vec(),
        rng: RngPosition::of(rng),
        model: to_bytes::<B, _>(model.clone().into_record())?,
        optimizer: to_bytes::<B, _>(optim.to_record())?,
        best_dev: best.map(|b| b.0),
        best_model: match best {
            Some((_, m)) => to_bytes::<B::InnerBackend, _>(m.clone().into_record())?,
            None => vec![],
        },
    })
}

#[cfg(test)]
mod tests {
    use super::learning_rate;

    #[test]
    fn warmup_then_linear_decay() {
        // 100 steps, 10 of warm-up.
        assert!((learning_rate(1.0, 0.1, 0, 100) - 0.1).abs() < 1e-12);
        assert!((learning_rate(1.0, 0.1, 9, 100) - 1.0).abs() < 1e-12);
        assert!((learning_rate(1.0, 0.1, 54, 100) - 0.5).abs() < 1e-12);
        assert_eq!(learning_rate(1.0, 0.1, 99, 100), 0.0);
    }
}
