//! Automatic label tokens: a logistic regression on the head features at `[P]` (triggers
//! left as the mask token), then every vocabulary token is scored per class by projecting
//! its output embedding through the learned weights; the top `k` allowed, whole-word tokens
//! of each class become its label tokens.

use burn::module::AutodiffModule;
use burn::nn::{Linear, LinearConfig};
use burn::optim::{AdamConfig, GradientsParams, Optimizer};
use burn::tensor::activation::log_softmax;
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{Tensor, TensorData};

use super::LabelSearchSettings;
use super::burn_engine::{int_tensor, to_vec};
use super::candidates::top_k;

/// Label tokens found for each class, with the classifier's training accuracy.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LabelSearchResult {
    pub token_ids: Vec<Vec<u32>>,
    pub train_accuracy: f64,
}

/// `features` is `[n, hidden]` row-major, `classes[i]` the class of row `i`;
/// `embeddings` the `[vocab, hidden]` output embedding matrix, row-major; `allowed[id]`
/// filters tokens.
pub fn label_search<B: AutodiffBackend>(
    features: &[f32],
    classes: &[usize],
    num_classes: usize,
    embeddings: &[f32],
    allowed: &[bool],
    settings: &LabelSearchSettings,
    device: &B::Device,
) -> LabelSearchResult {
    let n = classes.len();
    let hidden = features.len() / n.max(1);
    let x = Tensor::<B, 2>::from_data(TensorData::new(features.to_vec(), [n, hidden]), device);
    let y = int_tensor::<B, 2>(classes.iter().copied(), [n, 1], device);
    // Zero initialisation: the problem is convex, so this is deterministic and loses nothing.
    let mut probe: Linear<B> = LinearConfig::new(hidden, num_classes).init(device);
    // (`zeros_like` drops the autodiff mark: set it again or Adam never sees a gradient.)
    probe.weight = probe.weight.map(|w| w.zeros_like().require_grad());
    probe.bias = probe.bias.map(|p| p.map(|b| b.zeros_like().require_grad()));
    let mut optim = AdamConfig::new().init::<B, Linear<B>>();
    for _ in 0..settings.steps {
        let logits = probe.forward(x.clone());
        let loss = log_softmax(logits, 1).gather(1, y.clone()).mean().neg();
        let grads = GradientsParams::from_grads(loss.backward(), &probe);
        probe = optim.step(settings.lr, probe, grads);
    }
    let probe = probe.valid();
    let predictions = to_vec(probe.forward(x.inner()));
    let correct = predictions
        .chunks(num_classes)
        .zip(classes)
        .filter(|(row, c)| crate::tasks::metrics::pessimistic_rank(row, **c) == 0)
        .count();
    // [vocab, classes]: how strongly each token's output embedding points to each class.
    let embeddings = Tensor::<B::InnerBackend, 2>::from_data(
        TensorData::new(
            embeddings.to_vec(),
            [embeddings.len() / hidden.max(1), hidden],
        ),
        device,
    );
    let token_scores = to_vec(embeddings.matmul(probe.weight.val()));
    // Classes take their tokens in turn, so no token serves two classes.
    let mut allowed = allowed.to_vec();
    let token_ids = (0..num_classes)
        .map(|c| {
            let column: Vec<f32> = token_scores
                .iter()
                .skip(c)
                .step_by(num_classes)
                .copied()
                .collect();
            let chosen = top_k(&column, &allowed, settings.k);
            for &id in &chosen {
                allowed[id as usize] = false;
            }
            chosen
        })
        .collect();
    LabelSearchResult {
        token_ids,
        train_accuracy: correct as f64 / n.max(1) as f64,
    }
}
