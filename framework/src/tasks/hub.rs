//! A Hugging Face dataset repository as a table task's source: its split files, found in the
//! local Hugging Face cache (`$HF_HOME/hub`, default `~/.cache/huggingface/hub`, the cache
//! the model loader reads) or downloaded into it through `hf-hub` when online.
//!
//! The cache layout is the hub client's: `datasets--owner--name/refs/<revision>` holds a
//! commit hash, `snapshots/<commit>/` the files. A split's files are those whose name is the
//! split (`test.parquet`), starts with it (`data/train-00000-of-00002.parquet`) or sit in a
//! directory named after it (the hub's Parquet conversion, `<config>/train/0000.parquet`);
//! with `config`, only files under a directory of that name. Parquet files are preferred
//! over other formats of the same split; shards are read in name order.

use std::path::{Path, PathBuf};

use super::{SplitNames, TableFormat, TaskError};

/// The files of each split of a hub dataset, and where they came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubSplits {
    pub train: Vec<PathBuf>,
    pub dev: Option<Vec<PathBuf>>,
    pub test: Vec<PathBuf>,
    /// `owner/name@<commit> (Hugging Face cache)` or `(hub download)`, for provenance.
    pub origin: String,
}

/// Resolves a dataset's split files: from the cache, else by download unless
/// `HF_HUB_OFFLINE=1`.
pub fn resolve(
    id: &str,
    config: Option<&str>,
    revision: &str,
    splits: &SplitNames,
) -> Result<HubSplits, TaskError> {
    let cache = hf_hub::Cache::from_env();
    let repo_dir = cache
        .path()
        .join(format!("datasets--{}", id.replace('/', "--")));
    if let Some(found) = from_snapshot(
        &repo_dir,
        id,
        config,
        revision,
        splits,
        "Hugging Face cache",
    )? {
        return Ok(found);
    }
    let offline = std::env::var("HF_HUB_OFFLINE").is_ok_and(|v| v == "1");
    let where_to_put = format!(
        "put the dataset in the Hugging Face cache (on a machine with network: `huggingface-cli download --repo-type dataset {id}{}`, with HF_HOME pointing at the same cache), or download its files and name them with task.train / task.test",
        if revision == "main" {
            String::new()
        } else {
            format!(" --revision {revision}")
        }
    );
    if offline {
        return Err(TaskError::Hub(format!(
            "dataset `{id}` (revision `{revision}`) is not in the Hugging Face cache at `{}` and HF_HUB_OFFLINE=1 forbids downloading it: {where_to_put}",
            repo_dir.display()
        )));
    }
    download(id, config, revision, splits).map_err(|source| TaskError::HubDownload {
        message: format!(
            "dataset `{id}` (revision `{revision}`) is not in the Hugging Face cache at `{}`, and downloading it failed; {where_to_put}",
            repo_dir.display()
        ),
        source,
    })?;
    from_snapshot(&repo_dir, id, config, revision, splits, "hub download")?.ok_or_else(|| {
        TaskError::Hub(format!(
            "dataset `{id}`: downloaded, but its files are not where the cache should hold them (`{}`)",
            repo_dir.display()
        ))
    })
}

/// The commit a revision names in a cached repository (`refs/<revision>`, or the revision
/// itself when it is a commit with a snapshot).
fn cached_commit(repo_dir: &Path, revision: &str) -> Option<String> {
    if let Ok(hash) = std::fs::read_to_string(repo_dir.join("refs").join(revision)) {
        return Some(hash.trim().to_string());
    }
    repo_dir
        .join("snapshots")
        .join(revision)
        .is_dir()
        .then(|| revision.to_string())
}

/// Split files of a cached snapshot; `None` when the revision is not cached.
fn from_snapshot(
    repo_dir: &Path,
    id: &str,
    config: Option<&str>,
    revision: &str,
    splits: &SplitNames,
    how: &str,
) -> Result<Option<HubSplits>, TaskError> {
    let Some(commit) = cached_commit(repo_dir, revision) else {
        return Ok(None);
    };
    let snapshot = repo_dir.join("snapshots").join(&commit);
    let mut files = vec![];
    list_files(&snapshot, &snapshot, &mut files);
    files.sort();
    let pick = |split: &str| -> Result<Vec<PathBuf>, TaskError> {
        let chosen = split_files(&files, config, split);
        if chosen.is_empty() {
            return Err(TaskError::Hub(format!(
                "dataset `{id}` at `{}`: no file of split `{split}`{} (its files: {}); name the splits with task.splits",
                snapshot.display(),
                config
                    .map(|c| format!(" in config `{c}`"))
                    .unwrap_or_default(),
                if files.is_empty() {
                    "none".to_string()
                } else {
                    files.join(", ")
                }
            )));
        }
        Ok(chosen.into_iter().map(|f| snapshot.join(f)).collect())
    };
    Ok(Some(HubSplits {
        train: pick(&splits.train)?,
        dev: splits.dev.as_deref().map(pick).transpose()?,
        test: pick(&splits.test)?,
        origin: format!("{id}@{commit} ({how})"),
    }))
}

/// Relative paths (with `/`) of every table file under `dir`.
fn list_files(root: &Path, dir: &Path, out: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            list_files(root, &path, out);
        } else if TableFormat::from_extension(&path).is_some()
            && let Ok(rel) = path.strip_prefix(root)
        {
            out.push(rel.to_string_lossy().replace('\\', "/"));
        }
    }
}

/// The files (relative paths, sorted) that hold `split`, Parquet first: see the module doc.
pub fn split_files(files: &[String], config: Option<&str>, split: &str) -> Vec<String> {
    let matches = |f: &&String| {
        let parts: Vec<&str> = f.split('/').collect();
        let (dirs, name) = parts.split_at(parts.len() - 1);
        let stem = name[0].split('.').next().unwrap_or("");
        let in_config = config.is_none_or(|c| dirs.contains(&c));
        let named = stem == split
            || stem.starts_with(&format!("{split}-"))
            || stem.starts_with(&format!("{split}_"))
            || dirs.last() == Some(&split);
        in_config && named
    };
    let candidates: Vec<&String> = files.iter().filter(matches).collect();
    let parquet: Vec<String> = candidates
        .iter()
        .filter(|f| f.ends_with(".parquet"))
        .map(|f| f.to_string())
        .collect();
    if !parquet.is_empty() {
        return parquet;
    }
    candidates.into_iter().cloned().collect()
}

/// Why a dataset's files could not be downloaded (the cause of [`TaskError::HubDownload`]).
#[derive(Debug, thiserror::Error)]
pub enum DownloadError {
    #[error("cannot start the hub client")]
    Client(#[source] hf_hub::api::sync::ApiError),
    #[error("cannot list the dataset's files")]
    Info(#[source] hf_hub::api::sync::ApiError),
    #[error("{file}")]
    File {
        file: String,
        #[source]
        source: hf_hub::api::sync::ApiError,
    },
}

/// Downloads the split files of a dataset revision into the cache.
fn download(
    id: &str,
    config: Option<&str>,
    revision: &str,
    splits: &SplitNames,
) -> Result<(), DownloadError> {
    let api = hf_hub::api::sync::ApiBuilder::from_env()
        .with_progress(false)
        .build()
        .map_err(DownloadError::Client)?;
    let repo = api.repo(hf_hub::Repo::with_revision(
        id.to_string(),
        hf_hub::RepoType::Dataset,
        revision.to_string(),
    ));
    let info = repo.info().map_err(DownloadError::Info)?;
    let files: Vec<String> = info.siblings.into_iter().map(|s| s.rfilename).collect();
    let names = [Some(&splits.train), splits.dev.as_ref(), Some(&splits.test)];
    for split in names.into_iter().flatten() {
        for file in split_files(&files, config, split) {
            repo.get(&file)
                .map_err(|source| DownloadError::File { file, source })?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn finds_shards_conversions_and_plain_files() {
        let f = files(&[
            "README.md.csv",
            "data/train-00000-of-00002.parquet",
            "data/train-00001-of-00002.parquet",
            "data/validation-00000-of-00001.parquet",
            "plain_text/test/0000.parquet",
            "test.csv",
        ]);
        assert_eq!(
            split_files(&f, None, "train"),
            [
                "data/train-00000-of-00002.parquet",
                "data/train-00001-of-00002.parquet"
            ]
        );
        assert_eq!(
            split_files(&f, None, "test"),
            ["plain_text/test/0000.parquet"]
        );
        assert_eq!(split_files(&f, Some("data"), "test"), Vec::<String>::new());
        assert_eq!(split_files(&f, None, "validation").len(), 1);
        assert!(split_files(&f, None, "dev").is_empty());
        assert_eq!(
            split_files(&files(&["test.csv"]), None, "test"),
            ["test.csv"]
        );
    }
}
