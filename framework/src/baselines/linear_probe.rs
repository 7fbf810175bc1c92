//! Linear probe: a frozen encoder, the mean of its last hidden states over real tokens
//! (padding excluded — the paper's code averaged over padding too, by mistake), dropout, and
//! one linear layer trained with Adam. Dev accuracy picks the epoch whose weights are
//! evaluated.

use crate::metric::{Measure, Metric, Split};
use std::collections::BTreeMap;

use burn::module::AutodiffModule;
use burn::nn::{Dropout, DropoutConfig, Linear, LinearConfig};
use burn::optim::decay::WeightDecayConfig;
use burn::optim::{AdamConfig, GradientsParams, Optimizer};
use burn::tensor::activation::log_softmax;
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Int, Tensor, TensorData};
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};

use crate::interrupt::StopSignal;
use crate::lm::{EncoderInput, LmError, LoadedModel};
use crate::prompt::LengthLimit;
use crate::tasks::metrics::accuracy_of_logits;
use crate::tasks::{Example, sample};

/// `[method]` settings of `kind = "linear_probe"`; defaults follow the paper's code.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProbeSettings {
    /// Default 10.
    pub epochs: usize,
    /// Adam learning rate. Default 1e-3.
    pub lr: f64,
    /// Default 1e-6.
    pub weight_decay: f64,
    /// Dropout on the pooled features. Default 0.1.
    pub dropout: f64,
    /// Default 32.
    pub batch_size: usize,
}

impl Default for ProbeSettings {
    fn default() -> Self {
        Self {
            epochs: 10,
            lr: 1e-3,
            weight_decay: 1e-6,
            dropout: 0.1,
            batch_size: 32,
        }
    }
}

/// An example as the model's own sentence (pair) input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentenceInput {
    pub ids: Vec<u32>,
    pub segments: Vec<u32>,
    /// Tokens the fields lost to fit the length limit (0: the example fit whole).
    pub cut_tokens: usize,
}

/// Token ids and segments of an example as the model's own sentence (pair) input:
/// `[CLS] a [SEP]` or `[CLS] a [SEP] b [SEP]` (RoBERTa: `<s> a </s></s> b </s>`), the fields
/// cut as `limit` says when too long.
pub fn sentence_input<B: Backend>(
    lm: &LoadedModel<B>,
    example: &Example,
    limit: LengthLimit,
) -> Result<SentenceInput, LmError> {
    let s = &lm.tokenizer.special;
    let texts: Vec<&str> = example.fields.iter().map(|(_, v)| v.as_str()).collect();
    let mut pieces: Vec<Vec<u32>> = texts
        .iter()
        .map(|t| lm.tokenizer.encode(t))
        .collect::<Result<_, _>>()?;
    let specials =
        1 + pieces.len() + usize::from(lm.tokenizer.uses_roberta_pairs() && pieces.len() > 1);
    let cut_tokens = limit
        .truncate
        .fit(
            &mut pieces.iter_mut().collect::<Vec<_>>(),
            limit.max_tokens.saturating_sub(specials),
        )
        .iter()
        .sum();
    let (mut ids, mut segments) = (vec![s.cls.id], vec![0]);
    for (i, piece) in pieces.iter().enumerate() {
        if i > 0 && lm.tokenizer.uses_roberta_pairs() {
            ids.push(s.sep.id);
            segments.push(0);
        }
        let segment = if lm.tokenizer.uses_roberta_pairs() {
            0
        } else {
            i.min(1) as u32
        };
        ids.extend(piece);
        ids.push(s.sep.id);
        segments.extend(std::iter::repeat_n(segment, piece.len() + 1));
    }
    Ok(SentenceInput {
        ids,
        segments,
        cut_tokens,
    })
}

/// Mean-pooled last hidden states over real tokens, `[n, hidden]`, computed in chunks;
/// and how many examples were cut to fit `limit`.
pub fn pooled_features<B: Backend>(
    lm: &LoadedModel<B>,
    examples: &[Example],
    limit: LengthLimit,
    device: &B::Device,
) -> Result<(Vec<f32>, usize), LmError> {
    let mut out = vec![];
    let mut truncated = 0;
    for chunk in examples.chunks(64) {
        let inputs: Vec<SentenceInput> = chunk
            .iter()
            .map(|e| sentence_input(lm, e, limit))
            .collect::<Result<_, _>>()?;
        truncated += inputs.iter().filter(|x| x.cut_tokens > 0).count();
        let seq = inputs.iter().map(|x| x.ids.len()).max().unwrap_or(1);
        let rows = inputs.len();
        let mut ids = vec![lm.tokenizer.special.pad.id as i64; rows * seq];
        let mut segs = vec![0i64; rows * seq];
        let mut mask = vec![0f32; rows * seq];
        for (r, input) in inputs.iter().enumerate() {
            for (c, (&id, &sg)) in input.ids.iter().zip(&input.segments).enumerate() {
                ids[r * seq + c] = id as i64;
                segs[r * seq + c] = sg as i64;
                mask[r * seq + c] = 1.0;
            }
        }
        let mask_t = Tensor::<B, 2>::from_data(TensorData::new(mask, [rows, seq]), device);
        let hidden = lm.model.encode(EncoderInput {
            inputs_embeds: lm.model.embed_tokens(Tensor::<B, 2, Int>::from_data(
                TensorData::new(ids, [rows, seq]),
                device,
            )),
            token_type_ids: Tensor::from_data(TensorData::new(segs, [rows, seq]), device),
            attention_mask: mask_t.clone(),
        });
        let weights = mask_t.clone().unsqueeze_dim::<3>(2);
        let pooled = (hidden * weights)
            .sum_dim(1)
            .reshape([rows, lm.model.hidden_size()])
            / mask_t.sum_dim(1);
        out.extend(
            pooled
                .into_data()
                .convert::<f32>()
                .into_vec::<f32>()
                .expect("f32"),
        );
    }
    Ok((out, truncated))
}

fn predict<B: Backend>(
    probe: &Linear<B>,
    features: &[f32],
    hidden: usize,
    device: &B::Device,
) -> Vec<f32> {
    let n = features.len() / hidden;
    let x = Tensor::<B, 2>::from_data(TensorData::new(features.to_vec(), [n, hidden]), device);
    probe
        .forward(x)
        .into_data()
        .convert::<f32>()
        .into_vec::<f32>()
        .expect("f32")
}

/// Trains the probe on `train`, selects the epoch on `dev`, returns `accuracy` (evaluation
/// split) and `dev_accuracy` with the evaluation split's predictions; `None` when `stop` was
/// requested (checked before every epoch).
pub fn run<B: AutodiffBackend>(
    lm: &LoadedModel<B>,
    data: super::BaselineData,
    settings: &ProbeSettings,
    device: &B::Device,
    stop: &StopSignal,
) -> Result<Option<super::BaselineOutcome>, LmError> {
    let super::BaselineData {
        classes,
        splits,
        limit,
        seed,
    } = data;
    let frozen = crate::lm::LoadedModel {
        model: lm.model.valid(),
        tokenizer: lm.tokenizer.clone(),
        config: lm.config.clone(),
        resolved: lm.resolved.clone(),
        files: lm.files.clone(),
        skipped_tensors: lm.skipped_tensors.clone(),
    };
    let inner_device = device.clone();
    let [train, dev, test] = splits;
    let gold = |xs: &[Example]| crate::tasks::class_indices(xs, classes);
    let (train_y, dev_y, test_y) = (gold(train), gold(dev), gold(test));
    let features = |xs: &[Example]| pooled_features(&frozen, xs, limit, &inner_device);
    let ((train_x, train_cut), (dev_x, dev_cut), (test_x, test_cut)) =
        (features(train)?, features(dev)?, features(test)?);
    let hidden = lm.model.hidden_size();
    // Initialisation and dropout draw from burn's generator: seeded, and held by this
    // cell alone (see `with_seeded_rng`).
    let outcome = crate::backend::with_seeded_rng::<B, _>(device, seed, || {
        let mut probe: Linear<B> = LinearConfig::new(hidden, classes.len()).init(device);
        let dropout: Dropout = DropoutConfig::new(settings.dropout).init();
        let mut optim = AdamConfig::new()
            .with_weight_decay(Some(WeightDecayConfig::new(settings.weight_decay as f32)))
            .init::<B, Linear<B>>();
        let mut rng = sample::rng(seed, "linear-probe");
        let mut order: Vec<usize> = (0..train_y.len()).collect();
        let mut best: Option<(f64, Linear<B::InnerBackend>)> = None;
        for _ in 0..settings.epochs.max(1) {
            if stop.requested() {
                return None;
            }
            order.shuffle(&mut rng);
            for batch in order.chunks(settings.batch_size.max(1)) {
                let x: Vec<f32> = batch
                    .iter()
                    .flat_map(|&i| train_x[i * hidden..(i + 1) * hidden].iter().copied())
                    .collect();
                let x =
                    Tensor::<B, 2>::from_data(TensorData::new(x, [batch.len(), hidden]), device);
                let y = Tensor::<B, 2, Int>::from_data(
                    TensorData::new(
                        batch.iter().map(|&i| train_y[i] as i64).collect::<Vec<_>>(),
                        [batch.len(), 1],
                    ),
                    device,
                );
                let loss = log_softmax(probe.forward(dropout.forward(x)), 1)
                    .gather(1, y)
                    .mean()
                    .neg();
                let grads = GradientsParams::from_grads(loss.backward(), &probe);
                probe = optim.step(settings.lr, probe, grads);
            }
            let eval = probe.valid();
            let dev_acc = accuracy_of_logits(&predict(&eval, &dev_x, hidden, device), &dev_y);
            if best.as_ref().is_none_or(|(b, _)| dev_acc > *b) {
                best = Some((dev_acc, eval));
            }
        }
        let (dev_acc, chosen) = best.expect("at least one epoch");
        let test_logits = predict(&chosen, &test_x, hidden, device);
        let mut metrics = BTreeMap::new();
        metrics.insert(Metric::ACCURACY, accuracy_of_logits(&test_logits, &test_y));
        metrics.insert(Metric::Of(Measure::Accuracy, Split::Dev), dev_acc);
        Some(super::BaselineOutcome {
            metrics,
            truncated: train_cut + dev_cut + test_cut,
            predictions: super::logit_predictions(test, classes, &test_logits),
        })
    });
    Ok(outcome)
}
