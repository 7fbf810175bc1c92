//! The search on the real embedded model and real SST-2 sentences: gradients against finite
//! differences, HotFlip scores against plain dot products, template encoding, label search,
//! and determinism of a whole search.

mod common;

use std::collections::BTreeMap;

use burn::backend::{Autodiff, NdArray};
use burn::tensor::activation::log_softmax;
use burn::tensor::{Int, Tensor, TensorData};

use autoprompt::lm::{self, EncoderInput, LoadedModel};
use autoprompt::prompt::{Batch, Encoded, LengthLimit, Template, Verbalizer};
use autoprompt::search::candidates::{CandidateFilter, allowed_tokens};
use autoprompt::search::trigger::{SearchContext, Split, batch_with_triggers, search};
use autoprompt::search::{Gold, Scorer, SearchSettings, SelectBy, Target};
use autoprompt::tasks;

type B = Autodiff<NdArray>;

fn load<BK: burn::tensor::backend::Backend>() -> LoadedModel<BK> {
    lm::load::<BK>(common::splade_tiny().to_str().unwrap(), &Default::default()).unwrap()
}

fn sst2(train: usize, dev: usize, seed: u64) -> tasks::TaskData {
    common::sst2(train, dev, seed)
}

const TEMPLATE: &str = "[CLS] {sentence} [T] [T] [T] [P] . [SEP]";

fn verbalizer<BK: burn::tensor::backend::Backend>(lm: &LoadedModel<BK>) -> Verbalizer {
    let words: BTreeMap<String, Vec<String>> = [
        (
            "0".to_string(),
            vec!["terrible".to_string(), "bad".to_string()],
        ),
        ("1".to_string(), vec!["great".to_string()]),
    ]
    .into();
    Verbalizer::from_words(
        &["0".to_string(), "1".to_string()],
        &words,
        &lm.tokenizer,
        false,
    )
    .unwrap()
}

fn encode<BK: burn::tensor::backend::Backend>(
    lm: &LoadedModel<BK>,
    data: &[tasks::Example],
    triggers: &[u32],
) -> (Vec<Encoded>, Vec<Gold>) {
    let template = Template::parse(TEMPLATE).unwrap();
    let encoded = data
        .iter()
        .map(|e| {
            template
                .encode(
                    |f| e.field(f),
                    &lm.tokenizer,
                    triggers,
                    LengthLimit::at_end(64),
                    false,
                )
                .unwrap()
        })
        .collect();
    let golds = data
        .iter()
        .map(|e| Gold {
            index: e.label.parse().unwrap(),
            token: 0,
        })
        .collect();
    (encoded, golds)
}

/// The loss computed independently of the scorer: full-vocabulary log-softmax at [P], then
/// log-sum-exp of each class's label tokens, minus the mean gold class log-likelihood.
fn independent_loss(
    lm: &LoadedModel<B>,
    batch: &Batch,
    golds: &[Gold],
    v: &Verbalizer,
    offset: Option<(usize, Tensor<B, 1>)>,
) -> f64 {
    let device = Default::default();
    let ids: Vec<i64> = batch.ids.iter().map(|&i| i as i64).collect();
    let ids =
        Tensor::<B, 2, Int>::from_data(TensorData::new(ids, [batch.rows, batch.seq_len]), &device);
    let mut embeds = lm.model.embed_tokens(ids);
    if let Some((slot, delta)) = offset {
        // Move the embedding of trigger `slot` in every row by `delta`.
        let h = delta.dims()[0];
        let mut mask = vec![0.0f32; batch.rows * batch.seq_len * h];
        for r in 0..batch.rows {
            let pos = batch.trigger_positions[r * batch.num_triggers + slot];
            let d = delta.to_data().convert::<f32>().into_vec::<f32>().unwrap();
            mask[(r * batch.seq_len + pos) * h..(r * batch.seq_len + pos + 1) * h]
                .copy_from_slice(&d);
        }
        embeds = embeds
            + Tensor::from_data(
                TensorData::new(mask, [batch.rows, batch.seq_len, h]),
                &device,
            );
    }
    let segs: Vec<i64> = batch.segment_ids.iter().map(|&i| i as i64).collect();
    let hidden = lm.model.encode(EncoderInput {
        inputs_embeds: embeds,
        token_type_ids: Tensor::from_data(
            TensorData::new(segs, [batch.rows, batch.seq_len]),
            &device,
        ),
        attention_mask: Tensor::from_data(
            TensorData::new(batch.attention_mask.clone(), [batch.rows, batch.seq_len]),
            &device,
        ),
    });
    let pos: Vec<i64> = batch.predict_positions.iter().map(|&p| p as i64).collect();
    let features = lm.model.mask_features(
        hidden,
        Tensor::from_data(TensorData::new(pos, [batch.rows]), &device),
    );
    let vocab = lm.model.vocab_size();
    let all = Tensor::<B, 1, Int>::arange(0..vocab as i64, &device);
    let logp: Vec<f64> = log_softmax(lm.model.score_tokens(features, all), 1)
        .into_data()
        .convert::<f64>()
        .into_vec::<f64>()
        .unwrap();
    let mut total = 0.0;
    for (r, gold) in golds.iter().enumerate() {
        let class = &v.classes[gold.index];
        let lp: Vec<f64> = class
            .token_ids
            .iter()
            .map(|&t| logp[r * vocab + t as usize])
            .collect();
        let max = lp.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        total += max + lp.iter().map(|x| (x - max).exp()).sum::<f64>().ln();
    }
    -total / golds.len() as f64
}

#[test]
fn trigger_gradient_matches_finite_differences() {
    let lm = load::<B>();
    let data = sst2(4, 1, 3);
    let v = verbalizer(&lm);
    let triggers = [
        lm.tokenizer.single_token_id("movie").unwrap(),
        lm.tokenizer.special.mask.id,
        lm.tokenizer.single_token_id("really").unwrap(),
    ];
    let (encoded, golds) = encode(&lm, &data.train, &triggers);
    let refs: Vec<&Encoded> = encoded.iter().collect();
    let batch = batch_with_triggers(&refs, &triggers, lm.tokenizer.special.pad.id);
    let target = Target::Classes {
        label_ids: v.all_token_ids(),
        spans: v.class_spans(),
    };
    let scorer = Scorer::new(lm.model.clone(), target, 64, Default::default());
    let (loss, grad) = scorer.trigger_gradient(&batch, &golds, None);
    let reference = independent_loss(&lm, &batch, &golds, &v, None);
    // The scorer computes in f32 (on the host engine, in its own summation order): a few
    // units in the last place of a loss near 8.
    assert!(
        (loss as f64 - reference).abs() / reference < 1e-5,
        "loss {loss} vs independent {reference}"
    );
    let h = grad[0].len();
    for (slot, g) in grad.iter().enumerate() {
        // Direction: the gradient itself, normalised; the directional derivative is |g|.
        let norm = g.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
        let dir: Vec<f64> = g.iter().map(|x| *x as f64 / norm).collect();
        // float32 model: a step of 1e-2 along a unit direction balances truncation error
        // against rounding (the loss is ~8, float32 resolves ~1e-6 of it).
        let eps = 1e-2;
        let plus = Tensor::<B, 1>::from_data(
            TensorData::new(
                dir.iter().map(|d| (d * eps) as f32).collect::<Vec<_>>(),
                [h],
            ),
            &Default::default(),
        );
        let minus = plus.clone().neg();
        let fd = (independent_loss(&lm, &batch, &golds, &v, Some((slot, plus)))
            - independent_loss(&lm, &batch, &golds, &v, Some((slot, minus))))
            / (2.0 * eps);
        println!("slot {slot}: finite difference {fd:.6}, gradient norm {norm:.6}");
        assert!(
            (fd - norm).abs() / norm < 1e-3,
            "slot {slot}: finite difference {fd} vs gradient norm {norm}"
        );
    }
}

#[test]
fn hotflip_scores_are_minus_embedding_dot_gradient() {
    let lm = load::<B>();
    let v = verbalizer(&lm);
    let scorer = Scorer::new(
        lm.model.clone(),
        Target::Classes {
            label_ids: v.all_token_ids(),
            spans: v.class_spans(),
        },
        64,
        Default::default(),
    );
    let h = lm.model.hidden_size();
    let g: Vec<f32> = (0..h).map(|i| ((i * 37 % 11) as f32 - 5.0) / 7.0).collect();
    let scores = scorer.hotflip_scores(&g);
    let e: Vec<f32> = lm
        .model
        .word_embedding_matrix()
        .into_data()
        .into_vec::<f32>()
        .unwrap();
    for token in [0usize, 2204, 2919, 30000] {
        let dot: f32 = e[token * h..(token + 1) * h]
            .iter()
            .zip(&g)
            .map(|(a, b)| a * b)
            .sum();
        assert!(
            (scores[token] + dot).abs() < 1e-4,
            "token {token}: {} vs {}",
            scores[token],
            -dot
        );
    }
}

#[test]
fn long_fields_are_truncated_never_the_template() {
    let lm = load::<B>();
    let template = Template::parse(TEMPLATE).unwrap();
    let long = "a truly remarkable and very long sentence about films ".repeat(10);
    let mask = lm.tokenizer.special.mask.id;
    let e = template
        .encode(
            |_| Some(long.as_str()),
            &lm.tokenizer,
            &[mask, mask, mask],
            LengthLimit::at_end(16),
            false,
        )
        .unwrap();
    assert_eq!(e.ids.len(), 16);
    assert_eq!(e.ids[0], lm.tokenizer.special.cls.id);
    assert_eq!(*e.ids.last().unwrap(), lm.tokenizer.special.sep.id);
    // [CLS] + 9 field tokens + 3 triggers + [P] + "." + [SEP]: only the field was cut.
    assert_eq!(e.trigger_positions, vec![10, 11, 12]);
    assert_eq!(e.predict_position, 13);
    let dot = lm.tokenizer.encode(".").unwrap();
    assert_eq!(e.ids[15 - dot.len()..15], dot[..]);
}

#[test]
fn sentence_pair_segments() {
    let lm = load::<B>();
    let t = Template::parse("[CLS] {sentence_A} [SEP] {sentence_B} [P] [SEP]").unwrap();
    let fields = [
        ("sentence_A", "a man is cooking"),
        ("sentence_B", "a person cooks"),
    ];
    let get = |f: &str| fields.iter().find(|(k, _)| *k == f).map(|(_, v)| *v);
    let e = t
        .encode(get, &lm.tokenizer, &[], LengthLimit::at_end(64), true)
        .unwrap();
    let sep = e
        .ids
        .iter()
        .position(|&i| i == lm.tokenizer.special.sep.id)
        .unwrap();
    assert!(e.segment_ids[..=sep].iter().all(|&s| s == 0));
    assert!(e.segment_ids[sep + 1..].iter().all(|&s| s == 1));
}

/// SST-2 prompts with three all-mask trigger slots on the embedded model, the scorer of the
/// two label words, and the trigger candidates a search allows.
struct Fixture {
    lm: LoadedModel<B>,
    mask: u32,
    train: Vec<Encoded>,
    train_golds: Vec<Gold>,
    dev: Vec<Encoded>,
    dev_golds: Vec<Gold>,
    scorer: Scorer,
    allowed: Vec<bool>,
    classes: Vec<usize>,
    stop: autoprompt::interrupt::StopSignal,
}

fn fixture(train: usize, dev: usize) -> Fixture {
    let lm = load::<B>();
    let data = sst2(train, dev, 0);
    let v = verbalizer(&lm);
    let mask = lm.tokenizer.special.mask.id;
    let (train, train_golds) = encode(&lm, &data.train, &[mask; 3]);
    let (dev, dev_golds) = encode(&lm, &data.dev, &[mask; 3]);
    let target = Target::Classes {
        label_ids: v.all_token_ids(),
        spans: v.class_spans(),
    };
    let scorer = Scorer::new(lm.model.clone(), target, 256, Default::default());
    let allowed = allowed_tokens(
        &lm.tokenizer,
        lm.model.vocab_size(),
        &v.all_token_ids(),
        CandidateFilter::default(),
    );
    let classes = train_golds.iter().map(|g| g.index).collect();
    Fixture {
        lm,
        mask,
        train,
        train_golds,
        dev,
        dev_golds,
        scorer,
        allowed,
        classes,
        stop: Default::default(),
    }
}

impl Fixture {
    fn context<'a>(
        &'a self,
        settings: &'a SearchSettings,
        display: &'a dyn Fn(u32) -> String,
    ) -> SearchContext<'a> {
        SearchContext {
            scorer: &self.scorer,
            settings,
            select_by: SelectBy::Accuracy,
            allowed: &self.allowed,
            pad_id: self.lm.tokenizer.special.pad.id,
            initial_trigger: self.mask,
            train_classes: &self.classes,
            display,
            progress: &autoprompt::progress::NoProgress,
            stop: &self.stop,
        }
    }

    fn train(&self) -> Split<'_> {
        Split {
            encoded: &self.train,
            golds: &self.train_golds,
        }
    }

    fn dev(&self) -> Split<'_> {
        Split {
            encoded: &self.dev,
            golds: &self.dev_golds,
        }
    }

    /// Dev accuracy of `triggers`, computed apart from the search.
    fn dev_accuracy(&self, triggers: &[u32]) -> f64 {
        use autoprompt::search::trigger::{evaluate_split, metric};
        let pad = self.lm.tokenizer.special.pad.id;
        metric(
            &evaluate_split(&self.scorer, pad, self.dev(), triggers, false),
            SelectBy::Accuracy,
        )
    }
}

fn run_search(seed: u64) -> autoprompt::search::SearchResult {
    run_search_with(seed, &SearchSettings::default()).0
}

/// A short search on SST-2 with `options`' `keep_initial` and `eval_batches`; returns the
/// result and the starting prompt's dev metric.
fn run_search_with(seed: u64, options: &SearchSettings) -> (autoprompt::search::SearchResult, f64) {
    let f = fixture(24, 24);
    let settings = SearchSettings {
        iters: 4,
        batch_size: 8,
        accumulation_steps: 2,
        num_candidates: 8,
        keep_initial: options.keep_initial,
        eval_batches: options.eval_batches,
        ..Default::default()
    };
    let display = |id: u32| f.lm.tokenizer.display_token(id);
    let ctx = f.context(&settings, &display);
    let mut improvements = 0;
    let result = search(&ctx, f.train(), f.dev(), seed, |_, _| improvements += 1);
    let accepted = result.steps.iter().filter(|s| s.accepted).count();
    if settings.keep_initial {
        assert!(
            improvements >= 1,
            "the initial prompt counts as the first best"
        );
    } else {
        assert_eq!(
            improvements > 0,
            accepted > 0,
            "only accepted prompts are bests"
        );
    }
    assert_eq!(result.steps.len(), 4);
    for step in &result.steps {
        // Acceptance rule: a candidate is taken only when strictly better on the batch.
        let best = step.best_candidate.as_ref().map(|c| c.2);
        assert_eq!(
            step.accepted,
            best.is_some_and(|b| b > step.current),
            "{step:?}"
        );
        assert_eq!(step.dev.is_some(), step.accepted);
        if let Some((id, _, _)) = &step.best_candidate {
            assert!(f.allowed[*id as usize], "filtered token {id} proposed");
        }
    }
    let initial_dev = f.dev_accuracy(&[f.mask; 3]);
    (result, initial_dev)
}

/// The reference keeps the first accepted trigger whatever the start scored on dev (its best
/// starts at −∞); `keep_initial` lets the start compete. Either way the result is the best
/// dev metric among the prompts that compete.
#[test]
fn best_on_dev_starts_at_minus_infinity_unless_keep_initial() {
    let mask_id = load::<B>().tokenizer.special.mask.id;
    for seed in [0, 3] {
        for keep_initial in [false, true] {
            let options = SearchSettings {
                keep_initial,
                ..Default::default()
            };
            let (result, initial_dev) = run_search_with(seed, &options);
            let accepted: Vec<f64> = result.steps.iter().filter_map(|s| s.dev).collect();
            let best_accepted = accepted.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let mask = result.trigger_ids.iter().all(|&t| t == mask_id);
            eprintln!(
                "seed {seed} keep_initial {keep_initial}: start {initial_dev}, accepted {accepted:?}, best {}",
                result.best_dev
            );
            match (keep_initial, accepted.is_empty()) {
                (_, true) => assert!(mask && result.best_dev == initial_dev),
                (false, false) => {
                    assert_eq!(result.best_dev, best_accepted, "seed {seed}");
                    assert!(!mask, "an accepted trigger replaces the start");
                }
                (true, false) => {
                    assert_eq!(
                        result.best_dev,
                        best_accepted.max(initial_dev),
                        "seed {seed}"
                    );
                    assert_eq!(mask, initial_dev >= best_accepted, "seed {seed}");
                }
            }
        }
    }
}

/// The reference's greedy iteration, written here from the step's parts: the gradient of
/// `triggers` over `accumulation_steps` batches, one slot's HotFlip candidates, then the
/// current prompt (first) and every candidate scored on every row of the same fresh batches
/// (`ctx` must not prune). Returns the loss, the candidates and the metrics.
fn reference_iteration(
    ctx: &SearchContext,
    train: Split,
    triggers: &[u32],
    stream: &mut autoprompt::search::trigger::BatchStream,
    rng: &mut rand_chacha::ChaCha8Rng,
) -> (f32, Vec<autoprompt::search::trigger::Candidate>, Vec<f64>) {
    use autoprompt::search::evaluation::score_prompts;
    use autoprompt::search::trigger::{EncoderRows, accumulate_gradients, expand};
    let mut rows = EncoderRows::default();
    let current = vec![triggers.to_vec()];
    let (loss, grad) = accumulate_gradients(ctx, train, &current, stream, rng, None, &mut rows)
        .pop()
        .expect("one prompt");
    let candidates = expand(ctx, triggers, &grad, 1, rng);
    let pool: Vec<Vec<u32>> = current
        .into_iter()
        .chain(candidates.iter().map(|c| c.triggers.clone()))
        .collect();
    let metrics = score_prompts(ctx, train, &pool, 1, stream, rng, &mut rows)
        .into_iter()
        .map(|m| m.expect("without pruning every prompt is scored in full"))
        .collect();
    (loss, candidates, metrics)
}

/// Candidates are scored on `eval_batches` fresh batches drawn after the gradient batches
/// and the slot, and their metric is the one over all those rows: recomputed here row by
/// row, one prompt at a time, from a replay of the same stream.
#[test]
fn candidates_are_scored_on_eval_batches_fresh_batches() {
    use autoprompt::search::trigger::{BatchStream, evaluate_split, metric};
    use rand::Rng;
    let f = fixture(40, 8);
    let settings = SearchSettings {
        batch_size: 8,
        accumulation_steps: 2,
        num_candidates: 4,
        eval_batches: Some(3),
        prune: false,
        ..Default::default()
    };
    let display = |id: u32| f.lm.tokenizer.display_token(id);
    let ctx = f.context(&settings, &display);
    let triggers = [f.mask; 3];
    let mut rng = tasks::sample::rng(5, "propose");
    let mut replay_rng = rng.clone();
    let mut stream = BatchStream::new(&f.classes, false);
    let mut replay = BatchStream::new(&f.classes, false);
    let (_, candidates, metrics) =
        reference_iteration(&ctx, f.train(), &triggers, &mut stream, &mut rng);
    let slot = candidates[0].slots[0];
    for _ in 0..settings.accumulation_steps {
        replay.next(settings.batch_size, &mut replay_rng);
    }
    assert_eq!(slot, replay_rng.random_range(0..3));
    let rows: Vec<usize> = (0..3)
        .flat_map(|_| replay.next(settings.batch_size, &mut replay_rng))
        .collect();
    assert_eq!(rows.len(), 24);
    let encoded: Vec<Encoded> = rows.iter().map(|&i| f.train[i].clone()).collect();
    let golds: Vec<Gold> = rows.iter().map(|&i| f.train_golds[i]).collect();
    let score = |t: &[u32]| {
        let split = Split {
            encoded: &encoded,
            golds: &golds,
        };
        metric(
            &evaluate_split(&f.scorer, ctx.pad_id, split, t, false),
            SelectBy::Accuracy,
        )
    };
    assert_eq!(metrics[0], score(&triggers));
    assert_eq!(candidates.len(), 4);
    for (c, &m) in candidates.iter().zip(&metrics[1..]) {
        assert_eq!(c.slots, vec![slot]);
        assert_eq!(m, score(&c.triggers), "candidate {:?}", c.triggers);
    }
    // Metrics over 24 rows: multiples of 1/24, finer than one 8-row batch's 1/8.
    assert_eq!((metrics[0] * 24.0).fract(), 0.0);
}

#[test]
fn search_is_deterministic_for_a_seed() {
    let a = run_search(11);
    let b = run_search(11);
    assert_eq!(a.trigger_ids, b.trigger_ids);
    assert_eq!(a.steps.len(), b.steps.len());
    for (x, y) in a.steps.iter().zip(&b.steps) {
        assert_eq!(
            (
                x.slot,
                x.accepted,
                &x.best_candidate,
                x.current,
                x.loss,
                x.dev
            ),
            (
                y.slot,
                y.accepted,
                &y.best_candidate,
                y.current,
                y.loss,
                y.dev
            )
        );
    }
}

#[test]
fn label_search_finds_distinct_tokens_that_separate_the_classes() {
    use autoprompt::search::LabelSearchSettings;
    use autoprompt::search::labels::label_search;
    let lm = load::<B>();
    let data = sst2(200, 1, 5);
    let mask = lm.tokenizer.special.mask.id;
    let (encoded, golds) = encode(&lm, &data.train, &[mask; 3]);
    let refs: Vec<&Encoded> = encoded.iter().collect();
    let batch = batch_with_triggers(&refs, &[mask; 3], lm.tokenizer.special.pad.id);
    let scorer = Scorer::new(
        lm.model.clone(),
        Target::Classes {
            label_ids: vec![],
            spans: vec![],
        },
        256,
        Default::default(),
    );
    let features = scorer.mask_features(&batch);
    let classes: Vec<usize> = golds.iter().map(|g| g.index).collect();
    let allowed = allowed_tokens(
        &lm.tokenizer,
        lm.model.vocab_size(),
        &[],
        CandidateFilter {
            capitalized: false,
            non_alphabetic: true,
        },
    );
    let result = label_search::<B>(
        &features,
        &classes,
        2,
        &scorer.word_embeddings(),
        &allowed,
        &LabelSearchSettings::default(),
        &Default::default(),
    );
    let majority = classes
        .iter()
        .filter(|&&c| c == 1)
        .count()
        .max(classes.iter().filter(|&&c| c == 0).count()) as f64
        / classes.len() as f64;
    assert!(
        result.train_accuracy > majority + 0.05,
        "probe {} vs majority {majority}",
        result.train_accuracy
    );
    assert_eq!(
        result.token_ids.iter().map(Vec::len).collect::<Vec<_>>(),
        [3, 3]
    );
    assert!(
        result.token_ids[0]
            .iter()
            .all(|t| !result.token_ids[1].contains(t)),
        "{:?}",
        result.token_ids
    );
    assert!(
        result
            .token_ids
            .iter()
            .flatten()
            .all(|&t| allowed[t as usize])
    );
}

#[test]
fn a_label_token_cannot_serve_two_classes() {
    let lm = load::<B>();
    let words: BTreeMap<String, Vec<String>> = [
        ("0".to_string(), vec!["good".to_string()]),
        (
            "1".to_string(),
            vec!["great".to_string(), "good".to_string()],
        ),
    ]
    .into();
    let err = Verbalizer::from_words(
        &["0".to_string(), "1".to_string()],
        &words,
        &lm.tokenizer,
        false,
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("`good` is used by both `0` and `1`"),
        "{err}"
    );
}

/// The loop with `beam_size = 1` is the reference's greedy step exactly: the same slots,
/// candidates, metrics, acceptances and triggers as a replay of the reference's iteration
/// written here from the step's parts (gradient, one slot's HotFlip candidates, the current
/// prompt and every candidate scored on the same batches, the best candidate accepted only if
/// strictly better) on the same random stream, and the encoder rows the formula gives.
#[test]
fn beam_of_one_is_the_greedy_step_exactly() {
    use autoprompt::search::trigger::{BatchStream, best_index};
    let f = fixture(24, 24);
    let settings = SearchSettings {
        iters: 5,
        batch_size: 8,
        accumulation_steps: 2,
        num_candidates: 6,
        eval_batches: Some(2),
        prune: false,
        ..Default::default()
    };
    let display = |id: u32| f.lm.tokenizer.display_token(id);
    let ctx = f.context(&settings, &display);
    let result = search(&ctx, f.train(), f.dev(), 9, |_, _| {});
    assert_eq!(result.steps.len(), 5);

    let mut rng = tasks::sample::rng(9, "search-0");
    let mut stream = BatchStream::new(&f.classes, false);
    let mut triggers = vec![f.mask; 3];
    let (dev_rows, grad_rows, eval_rows) = (24u64, 2 * 8u64, 2 * 8 * 7u64);
    let (mut forward, mut backward) = (dev_rows, 0u64);
    for step in &result.steps {
        let (loss, candidates, metrics) =
            reference_iteration(&ctx, f.train(), &triggers, &mut stream, &mut rng);
        let slot = candidates.first().map_or(0, |c| c.slots[0]);
        let (current, candidate_metrics) = (metrics[0], &metrics[1..]);
        assert_eq!((step.slot, step.loss, step.current), (slot, loss, current));
        let best = best_index(candidate_metrics);
        assert_eq!(
            step.best_candidate.as_ref().map(|c| (c.0, c.2)),
            best.map(|i| (candidates[i].triggers[slot], candidate_metrics[i]))
        );
        let taken = best.filter(|&i| candidate_metrics[i] > current);
        assert_eq!(step.accepted, taken.is_some());
        forward += grad_rows + eval_rows;
        backward += grad_rows;
        if let Some(i) = taken {
            triggers = candidates[i].triggers.clone();
            assert_eq!(step.dev, Some(f.dev_accuracy(&triggers)));
            forward += dev_rows;
        }
        let rows = step.rows.expect("rows counted");
        assert_eq!((rows.forward, rows.backward), (forward, backward));
    }
    assert_eq!(result.rows, result.steps.last().unwrap().rows);
    let accepted: Vec<f64> = result.steps.iter().filter_map(|s| s.dev).collect();
    if let Some(best) = accepted.iter().copied().reduce(f64::max) {
        assert_eq!(result.best_dev, best);
    }
}

/// A beam of 3: members are distinct, each expanded with its own candidates (the backward
/// rows grow with the beam), the search is deterministic per seed, and the reported dev
/// metric is the returned prompt's.
#[test]
fn beam_search_is_deterministic_and_scores_every_member() {
    let f = fixture(24, 24);
    let settings = SearchSettings {
        iters: 3,
        batch_size: 8,
        accumulation_steps: 2,
        num_candidates: 4,
        eval_batches: Some(1),
        beam_size: 3,
        ..Default::default()
    };
    let display = |id: u32| f.lm.tokenizer.display_token(id);
    let ctx = f.context(&settings, &display);
    let a = search(&ctx, f.train(), f.dev(), 4, |_, _| {});
    let b = search(&ctx, f.train(), f.dev(), 4, |_, _| {});
    assert_eq!(a.trigger_ids, b.trigger_ids);
    assert_eq!(a.steps, {
        let mut s = b.steps.clone();
        for (x, y) in s.iter_mut().zip(&a.steps) {
            x.seconds = y.seconds;
        }
        s
    });
    // Iteration 0 expands the start alone; from then on three members (4 candidates each
    // give 5 distinct prompts at least, so the beam fills).
    let backward: Vec<u64> = a.steps.iter().map(|s| s.rows.unwrap().backward).collect();
    assert_eq!(backward, vec![16, 16 + 48, 16 + 96]);
    let forward_step1 = a.steps[1].rows.unwrap().forward - a.steps[0].rows.unwrap().forward;
    let dev_rows = if a.steps[1].accepted { 24 } else { 0 };
    // Gradients of 3 members on 16 rows, then 3 members + 12 candidates on one 8-row batch.
    assert_eq!(forward_step1, 48 + 15 * 8 + dev_rows);
    assert_eq!(a.best_dev, f.dev_accuracy(&a.trigger_ids));
}

/// `positions_per_step = 2`: every candidate changes two distinct slots, each to one of that
/// slot's top tokens, and only tokens that may become triggers.
#[test]
fn multi_position_candidates_change_that_many_slots() {
    use autoprompt::search::trigger::{BatchStream, accumulate_gradients, expand};
    let f = fixture(16, 8);
    let settings = SearchSettings {
        batch_size: 8,
        accumulation_steps: 1,
        num_candidates: 5,
        ..Default::default()
    };
    let display = |id: u32| f.lm.tokenizer.display_token(id);
    let ctx = f.context(&settings, &display);
    let start = vec![f.mask; 3];
    let mut rng = tasks::sample::rng(2, "expand");
    let mut rows = Default::default();
    let (_, grad) = accumulate_gradients(
        &ctx,
        f.train(),
        std::slice::from_ref(&start),
        &mut BatchStream::new(&f.classes, false),
        &mut rng,
        None,
        &mut rows,
    )
    .pop()
    .unwrap();
    let tops: Vec<Vec<u32>> = (0..3)
        .map(|s| {
            autoprompt::search::candidates::top_k(&f.scorer.hotflip_scores(&grad[s]), &f.allowed, 5)
        })
        .collect();
    let candidates = expand(&ctx, &start, &grad, 2, &mut rng);
    assert_eq!(candidates.len(), 5);
    for c in &candidates {
        assert_eq!(c.slots.len(), 2);
        assert!(c.slots[0] < c.slots[1], "{:?}", c.slots);
        for (slot, top) in tops.iter().enumerate() {
            if c.slots.contains(&slot) {
                assert!(top.contains(&c.triggers[slot]), "{c:?}");
                assert!(f.allowed[c.triggers[slot] as usize]);
            } else {
                assert_eq!(c.triggers[slot], f.mask);
            }
        }
    }
    // One position per step: one slot, its top tokens in order.
    let single = expand(&ctx, &start, &grad, 1, &mut rng);
    let slot = single[0].slots[0];
    let tokens: Vec<u32> = single.iter().map(|c| c.triggers[slot]).collect();
    assert_eq!(tokens, tops[slot]);
}

/// Keeps every state the search saves (a save at every iteration) and resumes from a chosen one.
struct MemoryCheckpoints {
    saved: Vec<autoprompt::search::trigger::SearchState>,
    resume_from: Option<autoprompt::search::trigger::SearchState>,
}

impl autoprompt::checkpoint::Checkpoints<autoprompt::search::trigger::SearchState>
    for MemoryCheckpoints
{
    fn resume(&mut self) -> Option<autoprompt::search::trigger::SearchState> {
        self.resume_from.take()
    }
    fn due(&self) -> bool {
        true
    }
    fn save(&mut self, state: &autoprompt::search::trigger::SearchState) {
        self.saved.push(state.clone());
    }
}

/// A search resumed from the state saved at any iteration boundary (a checkpoint, round-tripped
/// through its file format) finishes with the result of the search that was never stopped,
/// wall times aside; with two restarts, a state from either restart works.
#[test]
fn a_search_resumed_from_any_checkpoint_equals_the_uninterrupted_one() {
    use autoprompt::checkpoint::Checkpoints;
    use autoprompt::search::trigger::search_resumable;
    let f = fixture(24, 24);
    let settings = SearchSettings {
        iters: 4,
        restarts: 2,
        batch_size: 8,
        accumulation_steps: 2,
        num_candidates: 5,
        eval_batches: Some(1),
        ..Default::default()
    };
    let display = |id: u32| f.lm.tokenizer.display_token(id);
    let ctx = f.context(&settings, &display);
    let without_times = |mut r: autoprompt::search::SearchResult| {
        r.seconds_per_iteration = 0.0;
        r.steps.iter_mut().for_each(|s| s.seconds = 0.0);
        r
    };
    let mut all = MemoryCheckpoints {
        saved: vec![],
        resume_from: None,
    };
    let mut improvements = 0;
    let whole = without_times(search_resumable(
        &ctx,
        f.train(),
        f.dev(),
        5,
        |_, _| improvements += 1,
        &mut all,
    ));
    assert_eq!(all.saved.len(), 8, "one state before every iteration");
    assert_eq!(
        whole,
        without_times(search(&ctx, f.train(), f.dev(), 5, |_, _| {}))
    );
    let dir = tempfile::tempdir().unwrap();
    for (i, state) in all.saved.iter().enumerate() {
        assert_eq!(state.position(), (i / 4, i % 4));
        // Through the file format, as a killed run's next attempt reads it.
        let mut file = autoprompt::store::FileCheckpoints::new(
            dir.path().join("c.ckpt"),
            std::time::Duration::ZERO,
        );
        file.save(state);
        let mut resumed = MemoryCheckpoints {
            saved: vec![],
            resume_from: file.resume(),
        };
        assert_eq!(resumed.resume_from.as_ref(), Some(state));
        let result = search_resumable(&ctx, f.train(), f.dev(), 5, |_, _| {}, &mut resumed);
        assert_eq!(without_times(result), whole, "resumed from state {i}");
    }
}

/// Exact pruning: over seeds and both selection metrics, a search that stops scoring
/// candidates which cannot be chosen makes every decision of one that scores every row —
/// the same slots, losses, current metrics, acceptances, dev metrics and result — while
/// running fewer rows (the ones it skipped are counted).
#[test]
fn pruning_makes_the_decisions_of_scoring_every_row() {
    let f = fixture(48, 24);
    let display = |id: u32| f.lm.tokenizer.display_token(id);
    let mut skipped = [0u64; 2];
    for (m, select_by) in [SelectBy::Accuracy, SelectBy::LogLikelihood]
        .into_iter()
        .enumerate()
    {
        for seed in 0..3 {
            let [pruned, full] = [true, false].map(|prune| {
                let settings = SearchSettings {
                    iters: 6,
                    batch_size: 8,
                    accumulation_steps: 2,
                    num_candidates: 8,
                    eval_batches: Some(6),
                    prune,
                    ..Default::default()
                };
                let mut ctx = f.context(&settings, &display);
                ctx.select_by = select_by;
                search(&ctx, f.train(), f.dev(), seed, |_, _| {})
            });
            let what = format!("{select_by:?}, seed {seed}");
            assert_eq!(pruned.trigger_ids, full.trigger_ids, "{what}");
            assert_eq!(pruned.best_dev.to_bits(), full.best_dev.to_bits(), "{what}");
            assert_eq!(pruned.steps.len(), full.steps.len(), "{what}");
            for (p, q) in pruned.steps.iter().zip(&full.steps) {
                let decision = |s: &autoprompt::search::SearchStep| {
                    (
                        (s.restart, s.iteration, s.slot, s.loss.to_bits()),
                        (s.current.to_bits(), s.accepted, s.dev.map(f64::to_bits)),
                    )
                };
                assert_eq!(decision(p), decision(q), "{what}: {p:?} vs {q:?}");
                if p.accepted {
                    assert_eq!(p.best_candidate, q.best_candidate, "{what}");
                } else if let (Some(a), Some(b)) = (&p.best_candidate, &q.best_candidate) {
                    // A dropped candidate may have been the best of the losers.
                    assert!(
                        a.2 <= b.2,
                        "{what}: {a:?} above the full evaluation's {b:?}"
                    );
                }
                let (pr, qr) = (p.rows.unwrap(), q.rows.unwrap());
                assert_eq!(qr.pruned, 0, "{what}");
                assert_eq!(pr.backward, qr.backward, "{what}");
                assert_eq!(pr.forward + pr.pruned, qr.forward, "{what}");
            }
            skipped[m] += pruned.rows.unwrap().pruned;
        }
    }
    eprintln!(
        "candidate rows skipped: accuracy {}, log-likelihood {}",
        skipped[0], skipped[1]
    );
    assert!(skipped[0] > 0, "pruning skipped nothing: {skipped:?}");
    // Log-likelihood selection keeps the reference's stacked passes, unpruned.
    assert_eq!(skipped[1], 0);
}

/// The search checks the stop handle it is given (not the process's): a requested stop ends
/// it before its next iteration, as interrupted.
#[test]
fn a_requested_stop_ends_the_search_before_its_next_iteration() {
    let f = fixture(24, 8);
    let settings = SearchSettings {
        iters: 3,
        batch_size: 8,
        accumulation_steps: 1,
        num_candidates: 2,
        ..Default::default()
    };
    let display = |id: u32| f.lm.tokenizer.display_token(id);
    let ctx = f.context(&settings, &display);
    f.stop.request();
    let result = search(&ctx, f.train(), f.dev(), 0, |_, _| {});
    assert_eq!(
        result.stopped_by,
        autoprompt::search::StopReason::Interrupted
    );
    assert!(result.steps.is_empty(), "{:?}", result.steps);
    assert!(!autoprompt::interrupt::StopSignal::process().requested());
}
