//! A source's directory under `watch.dir`: what a fetch brings is written
//! under a hidden temporary name (intake ignores those), synced, renamed
//! into place, and the directory synced, before the source's state moves.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use tempfile::NamedTempFile;

use super::fetch::{FetchClass, FetchError};

fn disk(what: &str, path: &Path, e: &std::io::Error) -> FetchError {
    FetchError::new(FetchClass::Disk, format!("{what} {}: {e}", path.display()))
}

/// `watch.dir/<name>/`.
#[derive(Debug)]
pub struct Spool {
    dir: PathBuf,
    /// Keeps names of one second apart.
    seq: AtomicU32,
}

impl Spool {
    /// # Errors
    /// The directory cannot be created.
    pub fn new(watch_dir: &Path, name: &str) -> Result<Self, FetchError> {
        let dir = watch_dir.join(name);
        std::fs::create_dir_all(&dir).map_err(|e| disk("creating", &dir, &e))?;
        Ok(Self {
            dir,
            seq: AtomicU32::new(0),
        })
    }

    /// Removes the temporaries of fetches that died with the process.
    pub fn clean(&self) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        for e in entries.flatten() {
            let name = e.file_name();
            let name = name.to_string_lossy();
            if name.starts_with(".fetch-") && name.ends_with(".tmp") {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }

    /// A hidden temporary file in the directory.
    ///
    /// # Errors
    /// It cannot be created.
    pub fn temp(&self) -> Result<NamedTempFile, FetchError> {
        tempfile::Builder::new()
            .prefix(".fetch-")
            .suffix(".tmp")
            .tempfile_in(&self.dir)
            .map_err(|e| disk("creating a temporary file in", &self.dir, &e))
    }

    /// Syncs `temp`, renames it to a new name ending in `suffix`
    /// (`page-0001.json`, `drop.txt`) and syncs the directory: once this
    /// returns the file survives a crash. Runs the syncs off the runtime.
    ///
    /// # Errors
    /// A sync or the rename failed.
    pub async fn persist(&self, temp: NamedTempFile, suffix: &str) -> Result<PathBuf, FetchError> {
        let now = time::OffsetDateTime::now_utc();
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        let name = format!(
            "{:04}{:02}{:02}T{:02}{:02}{:02}.{:06}Z-{seq:04}-{suffix}",
            now.year(),
            u8::from(now.month()),
            now.day(),
            now.hour(),
            now.minute(),
            now.second(),
            now.microsecond()
        );
        let dir = self.dir.clone();
        tokio::task::spawn_blocking(move || {
            temp.as_file()
                .sync_all()
                .map_err(|e| disk("syncing", temp.path(), &e))?;
            let path = dir.join(&name);
            temp.persist_noclobber(&path)
                .map_err(|e| disk("renaming into", &path, &e.error))?;
            File::open(&dir)
                .and_then(|d| d.sync_all())
                .map_err(|e| disk("syncing", &dir, &e))?;
            Ok(path)
        })
        .await
        .map_err(|e| FetchError::new(FetchClass::Disk, format!("writing a fetched file: {e}")))?
    }

    /// Writes `bytes` as a new file (see [`Spool::persist`]).
    ///
    /// # Errors
    /// As [`Spool::persist`].
    pub async fn write(&self, bytes: &[u8], suffix: &str) -> Result<PathBuf, FetchError> {
        let mut temp = self.temp()?;
        std::io::Write::write_all(&mut temp, bytes)
            .map_err(|e| disk("writing", temp.path(), &e))?;
        self.persist(temp, suffix).await
    }
}

/// A file name's last part made safe: the URL's last path segment, or
/// `fallback` (`drop.txt`, `feed.csv.gz`).
pub fn safe_suffix(segment: Option<&str>, fallback: &str) -> String {
    let s: String = segment
        .unwrap_or_default()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
        .take(80)
        .collect();
    let s = s.trim_start_matches('.');
    if s.is_empty() {
        fallback.to_string()
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn files_appear_whole_under_new_names_and_temporaries_are_hidden() {
        let d = tempfile::tempdir().unwrap();
        let spool = Spool::new(d.path(), "feed").unwrap();
        let t = spool.temp().unwrap();
        let temp_name = t.path().file_name().unwrap().to_string_lossy().to_string();
        assert!(temp_name.starts_with('.') && temp_name.ends_with(".tmp"));
        drop(t);
        let a = spool.write(b"one", "list.txt").await.unwrap();
        let b = spool.write(b"two", "list.txt").await.unwrap();
        assert_ne!(a, b);
        assert!(a.to_string_lossy().ends_with("-list.txt"));
        assert_eq!(std::fs::read(&b).unwrap(), b"two");
        let names: Vec<_> = std::fs::read_dir(d.path().join("feed")).unwrap().collect();
        assert_eq!(names.len(), 2, "no temporary left behind");
    }

    #[test]
    fn suffixes_keep_only_safe_characters() {
        assert_eq!(safe_suffix(Some("drop.txt"), "x"), "drop.txt");
        assert_eq!(safe_suffix(Some("../../etc/passwd"), "x"), "etcpasswd");
        assert_eq!(safe_suffix(Some(""), "feed"), "feed");
        assert_eq!(safe_suffix(Some("..."), "feed"), "feed");
    }
}
