//! The watched directory on disk: which names are taken, walking it, moving
//! files between its folders, errors reports and retention. No queue logic
//! beyond streaming a file's rejects into its report.

use std::collections::HashSet;
use std::fs::{File, Metadata};
use std::io::Write;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

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

/// Whether an event can mean a new or finished file: created, closed after
/// writing, renamed in, or a rescan asked for by the watcher. Opening,
/// reading or closing unwritten (the daemon's own scans raise those on the
/// directory) and writes still going on (the settle tick follows those) are
/// not. Records the paths renamed in as complete: a close after writing is
/// not enough, since a writer appending with `>>` closes the file after
/// every line, so such a file waits for `watch.settle_ms` of quiet.
pub(super) fn note_event(ev: notify::Event, hints: &mut HashSet<PathBuf>) -> bool {
    use notify::event::{AccessKind, AccessMode, ModifyKind, RenameMode};
    if ev.need_rescan() {
        return true;
    }
    match ev.kind {
        EventKind::Modify(ModifyKind::Name(RenameMode::To | RenameMode::Both)) => {
            hints.extend(ev.paths);
            true
        }
        EventKind::Create(_)
        | EventKind::Modify(ModifyKind::Name(RenameMode::Any))
        | EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        _ => false,
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

/// `name` with `-n` before its feed extension (`x.txt.gz` → `x-1.txt.gz`,
/// `f.csv` → `f-1.csv`): a copy keeps the extension its format is read by.
fn numbered(name: &str, n: u32) -> String {
    let lower = name.to_ascii_lowercase();
    let (rest, gz) = match lower.strip_suffix(".gz") {
        Some(r) => (&name[..r.len()], &name[r.len()..]),
        None => (name, ""),
    };
    match rest.rfind('.').filter(|&i| i > 0) {
        Some(i) => format!("{}-{n}{}{gz}", &rest[..i], &rest[i..]),
        None if gz.is_empty() => format!("{name}-{n}"),
        None => format!("{rest}-{n}{gz}"),
    }
}

/// Moves `from` into `dir` as `name`, with a UTC time prefix when `stamp`,
/// adding `-1`, `-2`, ... before the extension if the name is taken. Renames are atomic within a
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
        target = dir.join(numbered(&base, n));
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

/// One line of `<file>.errors.ndjson`, rejected rows and the break alike:
/// `line` (null when the file could not be read at all), `input` (the
/// row's text; null for the break), `rule` (a reject rule name;
/// `file-unreadable` for the break) and `reason`.
#[derive(serde::Serialize)]
struct ErrorLine<'a> {
    line: Option<u64>,
    input: Option<&'a str>,
    rule: crate::normalize::RejectRule,
    reason: &'a str,
}

/// Writes `<file>.errors.ndjson`: one line per reject (streamed from the
/// queue), then the break if the file broke; every line an [`ErrorLine`].
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
                    let line = ErrorLine {
                        line: Some(r.line),
                        input: Some(&r.input),
                        rule: r.rule,
                        reason: &r.reason,
                    };
                    serde_json::to_writer(&mut f, &line)?;
                    f.write_all(b"\n")
                })
                .await?;
        }
        if let Some((line, reason)) = brk {
            let line = ErrorLine {
                line,
                input: None,
                rule: crate::normalize::RejectRule::FileUnreadable,
                reason,
            };
            serde_json::to_writer(&mut f, &line)?;
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

/// Deletes files (and errors reports) in `dirs` (`done/`, `failed/`) that
/// finished longer than `retention` ago. When a file finished is what the
/// queue recorded (`finished`: moved path → Unix ms); a file the queue has
/// no move for (refused unread, or moved by an older release) goes by when
/// it was renamed into the directory: its inode change time. Never by
/// mtime, which a producer's file keeps from before it was dropped.
pub(super) fn prune_finished(
    dirs: &[&Path],
    retention: Duration,
    finished: &std::collections::HashMap<PathBuf, i64>,
) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let cutoff = crate::queue::now_ms() - crate::queue::ms(retention);
    let mut removed = 0;
    for dir in dirs {
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        for e in entries.filter_map(Result::ok) {
            let path = e.path();
            let Ok(meta) = std::fs::symlink_metadata(&path) else {
                continue;
            };
            if !meta.is_file() {
                continue;
            }
            let name = path.to_string_lossy();
            let owner = name
                .strip_suffix(".errors.ndjson")
                .map(PathBuf::from)
                .unwrap_or_else(|| path.clone());
            let at = finished
                .get(&owner)
                .copied()
                .unwrap_or(meta.ctime() * 1000 + meta.ctime_nsec() / 1_000_000);
            if at < cutoff && std::fs::remove_file(&path).is_ok() {
                removed += 1;
            }
        }
    }
    removed
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
    fn retention_goes_by_when_a_file_finished_not_its_mtime() {
        let dir = tempfile::tempdir().unwrap();
        let (done, failed) = (dir.path().join("done"), dir.path().join("failed"));
        std::fs::create_dir_all(&done).unwrap();
        std::fs::create_dir_all(&failed).unwrap();
        let fresh = done.join("fresh.csv");
        let finished_long_ago = failed.join("old.txt.gz");
        let report = failed.join("old.txt.gz.errors.ndjson");
        let unknown = done.join("unknown.csv");
        for p in [&fresh, &finished_long_ago, &report, &unknown] {
            std::fs::write(p, "x").unwrap();
        }
        // An old mtime (the producer's) means nothing.
        let f = std::fs::File::options().write(true).open(&fresh).unwrap();
        f.set_modified(std::time::SystemTime::now() - Duration::from_secs(30 * 86_400))
            .unwrap();
        let now = crate::queue::now_ms();
        let finished = std::collections::HashMap::from([
            (fresh.clone(), now),
            (finished_long_ago.clone(), now - 7_200_000),
        ]);
        let removed = prune_finished(&[&done, &failed], Duration::from_secs(3600), &finished);
        assert_eq!(removed, 2);
        assert!(fresh.exists());
        assert!(unknown.exists(), "renamed in just now");
        assert!(!finished_long_ago.exists());
        assert!(!report.exists());
    }

    #[test]
    fn numbered_copies_keep_their_extension() {
        assert_eq!(numbered("x.txt.gz", 1), "x-1.txt.gz");
        assert_eq!(numbered("f.csv", 2), "f-2.csv");
        assert_eq!(numbered("list", 1), "list-1");
        assert_eq!(numbered("a.b.json", 3), "a.b-3.json");
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
        assert_eq!(names, vec!["f-1.csv", "f-2.csv", "f.csv"]);
    }
}
