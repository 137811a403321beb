//! The watched directory on disk: which names are taken, walking it, moving
//! files between its folders, errors reports and retention. No queue logic
//! beyond streaming a file's rejects into its report.

use std::collections::HashSet;
use std::fs::{File, Metadata};
use std::io::Write;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::Context;
use notify::EventKind;

use crate::config::WatchConfig;
use crate::queue::Queue;

/// Names never taken: hidden files and files still being written.
pub fn is_ignored(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    name.starts_with('.')
        || [
            ".tmp",
            ".part",
            ".partial",
            ".swp",
            ".crdownload",
            ".errors.ndjson",
        ]
        .iter()
        .any(|s| lower.ends_with(s))
        || name.ends_with('~')
}

/// Creates the watch, processing, done and failed directories.
///
/// # Errors
/// When one cannot be created.
pub fn create_dirs(w: &WatchConfig) -> anyhow::Result<()> {
    for d in [&w.dir, &w.processing_dir, &w.done_dir, &w.failed_dir] {
        std::fs::create_dir_all(d)
            .with_context(|| format!("creating directory {}", d.display()))?;
    }
    Ok(())
}

/// Records the paths an event says are complete: renamed in. A close after
/// writing is not enough: a writer appending with `>>` closes the file
/// after every line, so such a file waits for `watch.settle_ms` of quiet.
pub(super) fn note_complete(ev: notify::Event, hints: &mut HashSet<PathBuf>) {
    use notify::event::{ModifyKind, RenameMode};
    if matches!(
        ev.kind,
        EventKind::Modify(ModifyKind::Name(RenameMode::To | RenameMode::Both))
    ) {
        hints.extend(ev.paths);
    }
}

/// Regular files under `dir` (not following symlinks), and things that are
/// not regular files (symlinks, FIFOs, devices, sockets) with why.
pub(super) fn walk(
    dir: &Path,
    files: &mut Vec<(PathBuf, Metadata)>,
    odd: &mut Vec<(PathBuf, &'static str)>,
) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.filter_map(Result::ok) {
        let name = entry.file_name().to_string_lossy().into_owned();
        if is_ignored(&name) {
            continue;
        }
        let path = entry.path();
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        let ft = meta.file_type();
        if ft.is_dir() {
            walk(&path, files, odd);
        } else if ft.is_file() {
            files.push((path, meta));
        } else if ft.is_symlink() {
            odd.push((path, "symlinks are not followed"));
        } else if ft.is_fifo() {
            odd.push((path, "FIFOs are not read"));
        } else if ft.is_block_device() || ft.is_char_device() {
            odd.push((path, "devices are not read"));
        } else if ft.is_socket() {
            odd.push((path, "sockets are not read"));
        }
    }
    files.sort_by(|a, b| a.0.cmp(&b.0));
}

/// A flat file name for a path relative to `watch.dir` (`a/b.csv` → `a_b.csv`).
pub(super) fn file_name(rel: &Path) -> String {
    rel.to_string_lossy().replace('/', "_")
}

/// Moves `from` into `dir` as `name`, with a UTC time prefix when `stamp`,
/// adding `.1`, `.2`, ... if the name is taken. Renames are atomic within a
/// filesystem; across filesystems the file is copied, synced, then removed.
pub(super) fn move_unique(
    from: &Path,
    dir: &Path,
    name: &str,
    stamp: bool,
) -> std::io::Result<PathBuf> {
    let base = if stamp {
        let now = time::OffsetDateTime::now_utc();
        format!(
            "{:04}{:02}{:02}T{:02}{:02}{:02}Z-{name}",
            now.year(),
            now.month() as u8,
            now.day(),
            now.hour(),
            now.minute(),
            now.second()
        )
    } else {
        name.to_string()
    };
    let mut target = dir.join(&base);
    let mut n = 1;
    while std::fs::symlink_metadata(&target).is_ok() {
        target = dir.join(format!("{base}.{n}"));
        n += 1;
    }
    match std::fs::rename(from, &target) {
        Ok(()) => Ok(target),
        Err(e) if e.raw_os_error() == Some(libc::EXDEV) => {
            std::fs::copy(from, &target)?;
            File::open(&target)?.sync_all()?;
            std::fs::remove_file(from)?;
            Ok(target)
        }
        Err(e) => Err(e),
    }
}

/// Writes `<file>.errors.ndjson`: one line per reject (streamed from the
/// queue), then the break if the file broke.
pub(super) async fn write_errors(
    queue: &Queue,
    file_id: Option<i64>,
    moved: &Path,
    brk: Option<(Option<u64>, &str)>,
) {
    let mut path = moved.as_os_str().to_owned();
    path.push(".errors.ndjson");
    let path = PathBuf::from(path);
    let result = async {
        let mut f = std::io::BufWriter::new(File::create(&path)?);
        if let Some(id) = file_id {
            queue
                .for_each_reject(id, u64::MAX, |r| {
                    serde_json::to_writer(&mut f, &r)?;
                    f.write_all(b"\n")
                })
                .await?;
        }
        if let Some((line, reason)) = brk {
            serde_json::to_writer(
                &mut f,
                &serde_json::json!({"line": line, "error": reason, "rule": crate::normalize::RejectRule::FileUnreadable}),
            )?;
            f.write_all(b"\n")?;
        }
        f.flush()?;
        anyhow::Ok(())
    }
    .await;
    if let Err(e) = result {
        tracing::warn!(file = %path.display(), error = %format!("{e:#}"), "cannot write the errors report");
    }
}

/// Deletes files in `done/` older than the retention.
pub(super) fn prune_done(dir: &Path, retention: Duration) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.filter_map(Result::ok) {
        let old = e
            .metadata()
            .ok()
            .and_then(|m| m.modified().ok())
            .and_then(|m| SystemTime::now().duration_since(m).ok())
            .is_some_and(|age| age > retention);
        if old && e.file_type().is_ok_and(|t| t.is_file()) {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_and_hidden_names_are_ignored() {
        for name in [
            ".x.csv",
            "a.tmp",
            "a.PART",
            "a.partial",
            ".a.swp",
            "a.swp",
            "a.csv~",
            "a.crdownload",
            "a.csv.errors.ndjson",
        ] {
            assert!(is_ignored(name), "{name}");
        }
        for name in ["a.csv", "feed.json.gz", "list.txt", "tmp.csv"] {
            assert!(!is_ignored(name), "{name}");
        }
    }

    #[test]
    fn done_files_past_retention_are_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let old = dir.path().join("old.csv");
        let new = dir.path().join("new.csv");
        std::fs::write(&old, "x").unwrap();
        std::fs::write(&new, "x").unwrap();
        let f = std::fs::File::options().write(true).open(&old).unwrap();
        f.set_modified(SystemTime::now() - Duration::from_secs(7200))
            .unwrap();
        prune_done(dir.path(), Duration::from_secs(3600));
        assert!(!old.exists());
        assert!(new.exists());
    }

    #[test]
    fn moves_never_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a");
        std::fs::create_dir(dir.path().join("to")).unwrap();
        for i in 0..3 {
            std::fs::write(&a, format!("{i}")).unwrap();
            move_unique(&a, &dir.path().join("to"), "f.csv", false).unwrap();
        }
        let mut names: Vec<String> = std::fs::read_dir(dir.path().join("to"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, vec!["f.csv", "f.csv.1", "f.csv.2"]);
    }
}
