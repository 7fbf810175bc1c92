//! Fine-tuning: the masked LM's encoder plus a linear classification head on the first
//! token's state ([CLS] / `<s>`), all weights trained with AdamW (bias correction on), linear
//! warm-up over the first 10% of steps then linear decay, dropout in training mode, and the
//! epoch with the best dev accuracy evaluated.

use std::collections::BTreeMap;

use burn::module::{AutodiffModule, Module};
use burn::nn::{Dropout, Linear, LinearConfig};
use burn::optim::{AdamWConfig, GradientsParams, Optimizer};
use burn::tensor::activation::log_softmax;
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Int, Tensor, TensorData};
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};

use super::linear_probe::sentence_input;
use crate::lm::{EncoderInput, LmError, LoadedModel, MaskedLm};
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

fn inputs(encoded: &[&(Vec<u32>, Vec<u32>)], pad: u32) -> Inputs {
    let seq = encoded.iter().map(|(i, _)| i.len()).max().unwrap_or(1);
    let rows = encoded.len();
    let mut out = Inputs {
        rows,
        seq,
        ids: vec![pad as i64; rows * seq],
        segments: vec![0; rows * seq],
        mask: vec![0.0; rows * seq],
    };
    for (r, (ids, segs)) in encoded.iter().enumerate() {
        for (c, (&id, &s)) in ids.iter().zip(segs).enumerate() {
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
    encoded: &[(Vec<u32>, Vec<u32>)],
    gold: &[usize],
    pad: u32,
    device: &B::Device,
) -> f64 {
    let mut logits = vec![];
    for chunk in encoded.chunks(64) {
        let refs: Vec<&(Vec<u32>, Vec<u32>)> = chunk.iter().collect();
        logits.extend(
            model
                .forward(&inputs(&refs, pad), device)
                .into_data()
                .convert::<f32>()
                .into_vec::<f32>()
                .expect("f32"),
        );
    }
    accuracy_of_logits(&logits, gold)
}

/// Fine-tunes on `train`, selects the epoch on `dev`; returns `accuracy` and `dev_accuracy`,
/// or `None` when a stop was requested ([`crate::interrupt`]).
pub fn run<B: AutodiffBackend>(
    lm: &LoadedModel<B>,
    classes: &[String],
    splits: [&[Example]; 3],
    settings: &FinetuneSettings,
    seed: u64,
    max_len: usize,
    device: &B::Device,
) -> Result<Option<BTreeMap<String, f64>>, LmError> {
    let [train, dev, test] = splits;
    let encode = |xs: &[Example]| {
        xs.iter()
            .map(|e| sentence_input(lm, e, max_len))
            .collect::<Result<Vec<_>, _>>()
    };
    let gold = |xs: &[Example]| crate::tasks::class_indices(xs, classes);
    let (train_x, dev_x, test_x) = (encode(train)?, encode(dev)?, encode(test)?);
    let (train_y, dev_y, test_y) = (gold(train), gold(dev), gold(test));
    let pad = lm.tokenizer.special.pad.id;
    // Initialisation and dropout draw from burn's generator: seeded, and held by this
    // cell alone (see `with_seeded_rng`).
    let metrics = crate::backend::with_seeded_rng::<B, _>(device, seed, || {
        let mut encoder = lm.model.clone();
        encoder.dropout = settings.dropout;
        let mut model = Classifier {
            lm: encoder,
            head: LinearConfig::new(lm.model.hidden_size(), classes.len()).init(device),
            dropout: settings.dropout,
        };
        let epochs = settings
            .epochs
            .unwrap_or(if train.len() <= 1000 { 20 } else { 3 });
        let batch_size = settings.batch_size.max(1);
        let total_steps = epochs * train.len().div_ceil(batch_size);
        let mut optim = AdamWConfig::new()
            .with_weight_decay(settings.weight_decay as f32)
            .init::<B, Classifier<B>>();
        let mut rng = sample::rng(seed, "finetune");
        let mut order: Vec<usize> = (0..train.len()).collect();
        let mut step = 0;
        let mut best: Option<(f64, Classifier<B::InnerBackend>)> = None;
        for epoch in 0..epochs {
            if crate::interrupt::stop_requested() {
                return None;
            }
            order.shuffle(&mut rng);
            let mut epoch_loss = 0.0;
            for batch in order.chunks(batch_size) {
                let refs: Vec<&(Vec<u32>, Vec<u32>)> = batch.iter().map(|&i| &train_x[i]).collect();
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
        let mut metrics = BTreeMap::new();
        metrics.insert(
            "accuracy".to_string(),
            evaluate(&chosen, &test_x, &test_y, pad, device),
        );
        metrics.insert("dev_accuracy".to_string(), dev_acc);
        Some(metrics)
    });
    Ok(metrics)
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
