//! LAMA fact retrieval and relation extraction on T-REx.
//!
//! Fact retrieval: the prompt gets the subject (`{sub_label}`) and the model must fill the
//! object. Evaluation facts are LAMA's `TREx/<P>.jsonl` (falling back to ParaRel's
//! `pararel_trex_lms_vocab/<P>.jsonl` for relations the LAMA snapshot lacks), restricted to
//! objects in LAMA's common vocabulary; train/dev budgets are drawn from LPAQA's
//! `TREx_train/<P>.jsonl`, minus any fact that is also an evaluation fact.
//!
//! Relation extraction: the prompt also gets `{context}`, a T-REx evidence sentence that
//! mentions subject and object. Facts of the LAMA file are split deterministically by uuid
//! hash (3/5 train pool, 1/5 dev pool, 1/5 evaluation). The perturbed variant replaces the
//! object in the context with another object of the same relation.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use rand::seq::IndexedRandom;
use serde::Deserialize;

use super::sample::{self, rng};
use super::{
    Candidates, DataPaths, Example, RowSink, TaskData, TaskError, TaskKind, TaskSpec, lines,
    read_text,
};

const LAMA_HINT: &str = "LAMA is not shipped with the repository: download facebookresearch/LAMA's data.zip \
     (or use ../shared/data/lama) and set lama_dir / AUTOPROMPT_LAMA_DIR";

#[derive(Deserialize)]
struct Fact {
    sub_label: String,
    obj_label: String,
    #[serde(default)]
    uuid: Option<String>,
    #[serde(default)]
    evidences: Vec<Evidence>,
}

#[derive(Deserialize)]
struct Evidence {
    masked_sentence: String,
}

#[derive(Deserialize)]
struct Relation {
    relation: String,
    template: String,
}

fn read_facts(path: &Path, spec: &TaskSpec, hint: &str) -> Result<(Vec<Fact>, usize), TaskError> {
    let text = read_text(path, hint)?;
    let mut sink = RowSink::new(spec.budget().malformed_rows);
    for (line, row) in lines(&text) {
        if row.trim().is_empty() {
            continue;
        }
        sink.push(
            serde_json::from_str::<Fact>(row).map_err(|e| TaskError::Malformed {
                path: path.to_owned(),
                line,
                message: format!("bad fact: {e}"),
            }),
        )?;
    }
    Ok((sink.rows, sink.skipped))
}

/// LAMA's manual template for a relation, converted to this project's template syntax:
/// `[X] was born in [Y] .` → `[CLS] {sub_label} was born in [P] . [SEP]`.
pub fn manual_template(lama_dir: &Path, relation: &str) -> Result<(String, PathBuf), TaskError> {
    let path = lama_dir.join("relations.jsonl");
    let text = read_text(&path, LAMA_HINT)?;
    for (line, row) in lines(&text) {
        if row.trim().is_empty() {
            continue;
        }
        let rel: Relation = serde_json::from_str(row).map_err(|e| TaskError::Malformed {
            path: path.clone(),
            line,
            message: format!("bad relation: {e}"),
        })?;
        if rel.relation == relation {
            let body = rel
                .template
                .replace("[X]", "{sub_label}")
                .replace("[Y]", "[P]");
            return Ok((format!("[CLS] {body} [SEP]"), path));
        }
    }
    Err(TaskError::Malformed {
        path,
        line: 0,
        message: format!("no relation `{relation}`"),
    })
}

/// Reads LAMA's common vocabulary (one token per line).
pub fn common_vocab(lama_dir: &Path) -> Result<(Vec<String>, PathBuf), TaskError> {
    let path = lama_dir.join("common_vocab_cased.txt");
    let text = read_text(&path, LAMA_HINT)?;
    let words = lines(&text)
        .map(|(_, l)| l.trim().to_string())
        .filter(|l| !l.is_empty())
        .collect();
    Ok((words, path))
}

fn fnv(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
    })
}

pub fn load(spec: &TaskSpec, paths: &DataPaths, seed: u64) -> Result<TaskData, TaskError> {
    let relation = spec
        .relation()
        .expect("only lama and relation_extraction reach this loader");
    let (vocab, vocab_path) = common_vocab(&paths.lama_dir)?;
    let (template, relations_path) = manual_template(&paths.lama_dir, relation)?;
    // Relation extraction reads the evidence sentence first, as in the paper's LAMA rows of
    // its relation-extraction table.
    let template = match spec.kind() {
        TaskKind::RelationExtraction => template.replacen("[CLS]", "[CLS] {context} [SEP]", 1),
        _ => template,
    };
    let in_vocab: BTreeSet<&str> = vocab.iter().map(String::as_str).collect();
    let mut lama_file = paths.lama_dir.join(format!("TREx/{relation}.jsonl"));
    if !lama_file.is_file() && spec.kind() == TaskKind::Lama {
        let pararel = paths
            .lama_dir
            .join(format!("pararel_trex_lms_vocab/{relation}.jsonl"));
        if pararel.is_file() {
            tracing::warn!(
                relation,
                "LAMA T-REx file missing; evaluating on ParaRel's subset of it"
            );
            lama_file = pararel;
        }
    }
    let (facts, mut skipped) = read_facts(&lama_file, spec, LAMA_HINT)?;
    let mut filtered = 0;
    let mut files = vec![vocab_path, relations_path, lama_file];
    let to_example = |f: &Fact, context: Option<String>| {
        let mut fields = vec![("sub_label".to_string(), f.sub_label.clone())];
        fields.extend(context.map(|c| ("context".to_string(), c)));
        Example {
            fields,
            label: f.obj_label.clone(),
        }
    };
    let (train, dev, test) = match spec.kind() {
        TaskKind::Lama => {
            let mut test: Vec<Example> = facts
                .iter()
                .filter(|f| {
                    in_vocab.contains(f.obj_label.as_str()) || {
                        filtered += 1;
                        false
                    }
                })
                .map(|f| to_example(f, None))
                .collect();
            if spec.ranking() == super::Ranking::Lama {
                filtered += super::remove_duplicate_facts(&mut test, "sub_label");
            }
            let seen: BTreeSet<(&str, &str)> = facts
                .iter()
                .map(|f| (f.sub_label.as_str(), f.obj_label.as_str()))
                .collect();
            let train_file = paths.lpaqa_dir.join(format!("TREx_train/{relation}.jsonl"));
            let (train_facts, skipped_train) = read_facts(
                &train_file,
                spec,
                "LPAQA training facts: jzbjyb/LPAQA TREx_train.tar.gz (or ../shared/data/lpaqa); set lpaqa_dir",
            )?;
            skipped += skipped_train;
            files.push(train_file);
            let mut pool: Vec<Example> = train_facts
                .iter()
                .filter(|f| in_vocab.contains(f.obj_label.as_str()))
                .filter(|f| !seen.contains(&(f.sub_label.as_str(), f.obj_label.as_str())))
                .map(|f| to_example(f, None))
                .collect();
            sample::fact_budget(spec, seed, "LAMA", &mut pool, None, test)?
        }
        _ => {
            let objects: Vec<&str> = {
                let set: BTreeSet<&str> = facts.iter().map(|f| f.obj_label.as_str()).collect();
                set.into_iter().collect()
            };
            let mut perturb_rng = rng(0, "perturb");
            let mut pools: BTreeMap<u64, Vec<Example>> = BTreeMap::new();
            for f in &facts {
                let Some(evidence) = f.evidences.first() else {
                    filtered += 1;
                    continue;
                };
                if !in_vocab.contains(f.obj_label.as_str()) {
                    filtered += 1;
                    continue;
                }
                let shown = if spec.perturbed() {
                    let others: Vec<&&str> =
                        objects.iter().filter(|o| **o != f.obj_label).collect();
                    others
                        .choose(&mut perturb_rng)
                        .map_or(f.obj_label.as_str(), |o| **o)
                } else {
                    f.obj_label.as_str()
                };
                let context = evidence.masked_sentence.replace("[MASK]", shown);
                let key = fnv(f.uuid.as_deref().unwrap_or(&f.sub_label)) % 5;
                pools
                    .entry(key)
                    .or_default()
                    .push(to_example(f, Some(context)));
            }
            let test = pools.remove(&0).unwrap_or_default();
            let mut dev_pool = pools.remove(&1).unwrap_or_default();
            let mut train_pool: Vec<Example> = pools.into_values().flatten().collect();
            sample::fact_budget(spec, seed, "RE", &mut train_pool, Some(&mut dev_pool), test)?
        }
    };
    Ok(TaskData {
        train,
        dev,
        test,
        classes: vec![],
        candidates: Some(Candidates::Words(vocab)),
        manual_template: Some(template),
        files,
        skipped_rows: skipped,
        filtered_examples: filtered,
        origin: None,
        splits: vec![],
    })
}
