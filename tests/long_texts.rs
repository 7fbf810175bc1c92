//! Texts longer than the model's limit: `model.truncate` chooses where fields lose tokens
//! (the template stays whole), each cell counts its truncated examples, and reports show
//! the count. Runs on the embedded SPLADE-tiny model.

mod common;

use std::path::Path;

use autoprompt::lm::LmTokenizer;
use autoprompt::prompt::{LengthLimit, Template, Truncate};

const WORDS: [&str; 20] = [
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
    "twenty",
];

fn tokenizer() -> LmTokenizer {
    LmTokenizer::from_dir(&common::splade_tiny()).unwrap()
}

/// The sentence's field as the model sees it after `[CLS]` (the template below puts the
/// field first and six template tokens around it).
fn field_words(tokenizer: &LmTokenizer, truncate: Truncate, max_tokens: usize) -> Vec<String> {
    let template = Template::parse("[CLS] {sentence} [T] it was [P] . [SEP]").unwrap();
    let sentence = WORDS.join(" ");
    let encoded = template
        .encode(
            |_| Some(sentence.as_str()),
            tokenizer,
            &[tokenizer.special.mask.id],
            LengthLimit {
                max_tokens,
                truncate,
            },
            false,
        )
        .unwrap();
    assert_eq!(encoded.ids.len(), max_tokens.min(WORDS.len() + 7));
    assert_eq!(
        encoded.cut_tokens,
        (WORDS.len() + 7).saturating_sub(max_tokens)
    );
    // The template is whole: it ends `[T] it was [P] . [SEP]` whatever was cut.
    let tail: Vec<String> = encoded.ids[encoded.ids.len() - 6..]
        .iter()
        .map(|&id| tokenizer.id_to_token(id).unwrap_or_default())
        .collect();
    assert_eq!(tail, ["[MASK]", "it", "was", "[MASK]", ".", "[SEP]"]);
    assert_eq!(encoded.predict_position, encoded.ids.len() - 3);
    encoded.ids[1..encoded.ids.len() - 6]
        .iter()
        .map(|&id| tokenizer.id_to_token(id).unwrap())
        .collect()
}

#[test]
fn each_strategy_cuts_the_field_where_it_says_and_keeps_the_template() {
    let tokenizer = tokenizer();
    // Every word is one token of the vocabulary, so words and tokens line up.
    for w in WORDS {
        assert_eq!(tokenizer.encode(w).unwrap().len(), 1, "{w}");
    }
    let keep = |truncate| field_words(&tokenizer, truncate, 14);
    assert_eq!(keep(Truncate::End), WORDS[..7]);
    assert_eq!(keep(Truncate::Start), WORDS[13..]);
    assert_eq!(
        keep(Truncate::Middle),
        [&WORDS[..4], &WORDS[17..]].concat(),
        "the beginning keeps the odd token"
    );
    // A sequence that fits is untouched by any strategy.
    for truncate in [Truncate::End, Truncate::Start, Truncate::Middle] {
        assert_eq!(field_words(&tokenizer, truncate, 64), WORDS);
    }
}

#[test]
fn a_template_longer_than_the_limit_is_an_error_whatever_the_strategy() {
    let tokenizer = tokenizer();
    let template = Template::parse("[CLS] {sentence} one two three four five [P] . [SEP]").unwrap();
    for truncate in [Truncate::End, Truncate::Start, Truncate::Middle] {
        let err = template
            .encode(
                |_| Some("a sentence"),
                &tokenizer,
                &[],
                LengthLimit {
                    max_tokens: 6,
                    truncate,
                },
                false,
            )
            .unwrap_err()
            .to_string();
        assert!(err.contains("longer (9 tokens without fields)"), "{err}");
    }
}

fn long_review(i: usize) -> String {
    format!("review {i} {}", WORDS.join(" "))
}

/// A training table of long reviews only, and an evaluation table of `long` long and
/// `short` short ones.
fn write_tables(dir: &Path, long: usize, short: usize) {
    let mut train = String::from("text,label\n");
    for i in 0..20 {
        train.push_str(&format!("{},{}\n", long_review(i), ["neg", "pos"][i % 2]));
    }
    std::fs::write(dir.join("train.csv"), train).unwrap();
    let mut test = String::from("text,label\n");
    for i in 0..long {
        test.push_str(&format!(
            "{},{}\n",
            long_review(100 + i),
            ["neg", "pos"][i % 2]
        ));
    }
    for i in 0..short {
        test.push_str(&format!("a fine film {i},{}\n", ["neg", "pos"][i % 2]));
    }
    std::fs::write(dir.join("test.csv"), test).unwrap();
}

#[test]
fn cells_count_their_truncated_examples_and_the_report_shows_them() {
    let dir = tempfile::tempdir().unwrap();
    write_tables(dir.path(), 5, 4);
    let body = format!(
        "name = \"long\"\n\
         [task]\nkind = \"classification\"\ntrain = \"train.csv\"\ntest = \"test.csv\"\n\
         train_size = 6\ndev_size = 4\n\
         [model]\nsource = {:?}\nmax_length = 16\ntruncate = \"middle\"\n\
         [grid]\nmethod = [\n  {{ kind = \"manual\", template = \"[CLS] {{text}} it was [P] . [SEP]\", labels = {{ neg = [\"bad\"], pos = [\"good\"] }} }},\n  {{ kind = \"linear_probe\", probe = {{ epochs = 2 }} }},\n]\n",
        common::splade_tiny().display().to_string()
    );
    let file = common::experiment(dir.path(), "long", &body);
    // From the temp dir: the report goes to its `reports/`.
    let out = common::run_cmd(&file)
        .current_dir(dir.path())
        .output()
        .unwrap();
    common::assert_success(&out);
    let store = autoprompt::store::Store::open(&dir.path().join("results"), "long").unwrap();
    let records = store.records().unwrap();
    assert_eq!(records.len(), 2);
    for record in &records {
        // Every training and dev review is long; five of the nine evaluation ones are.
        let counts = &record.counts;
        assert_eq!((counts.train, counts.dev, counts.test), (6, 4, 9));
        assert_eq!(
            counts.truncated,
            6 + 4 + 5,
            "{}: {counts:?}",
            record.spec.method.name()
        );
        assert_eq!(record.spec.model.truncate, Truncate::Middle);
    }
    let out = common::cli()
        .current_dir(dir.path())
        .arg("report")
        .arg(&file)
        .output()
        .unwrap();
    common::assert_success(&out);
    let report = std::fs::read_to_string(dir.path().join("reports/long.md")).unwrap();
    assert!(report.contains("truncated / cell"), "{report}");
    assert!(report.contains("15.0 (at the middle)"), "{report}");
}

#[test]
fn the_default_strategy_keeps_cell_ids_and_an_unknown_one_names_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let task =
        "[task]\nkind = \"sst2\"\ntrain_size = 10\ndev_size = 10\n[method]\nkind = \"majority\"\n";
    let ids = |model: &str| {
        let file = common::experiment(dir.path(), "ids", &format!("{task}[model]\n{model}"));
        let (_, cells) = common::load_and_plan(&file, &[]).unwrap();
        cells.into_iter().map(|c| c.id).collect::<Vec<_>>()
    };
    assert_eq!(ids(""), ids("truncate = \"end\"\n"));
    assert_ne!(ids(""), ids("truncate = \"start\"\n"));
    let file = common::experiment(
        dir.path(),
        "bad",
        &format!("{task}[model]\ntruncate = \"sideways\"\n"),
    );
    let err = common::load_and_plan(&file, &[]).unwrap_err();
    common::assert_has(
        &err,
        &[
            "bad.toml",
            "model.truncate",
            "sideways",
            "`end`",
            "`middle`",
        ],
    );
}
