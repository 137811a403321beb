//! Where the reader of a file is, kept where a killed process leaves it.
//!
//! A 16-byte file beside the file being read (`processing/.NAME.at`),
//! mapped shared: each row is one store into the page cache, no system
//! call, and what was stored survives the process (SIGKILL, abort, the OOM
//! killer; not a host crash, which loses the page cache: then the mark is
//! older or missing, and the guard only knows less). The next start reads
//! it to learn the row the daemon died at: that read commits every row
//! before it first, so a row that kills the daemon is pinned exactly.

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};

/// The row being read: its position and its line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mark {
    pub position: u64,
    pub line: u64,
}

/// The mark's file for `processing` (a file in `processing/`).
fn path_of(processing: &Path) -> PathBuf {
    let name = processing
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    processing.with_file_name(format!(".{name}.at"))
}

/// The mapped mark a reader writes to.
pub(super) struct ReadMark {
    map: memmap2::MmapMut,
}

impl ReadMark {
    /// Creates (or reuses) the mark beside `processing`. `None` when it
    /// cannot be made: reading goes on without it.
    pub(super) fn create(processing: &Path) -> Option<Self> {
        let path = path_of(processing);
        let made = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .and_then(|f| {
                f.set_len(16)?;
                // SAFETY: the file is ours (a hidden name in processing/,
                // which only the daemon writes) and stays 16 bytes long
                // while mapped; a change by someone else would only change
                // the numbers read, never memory safety of the stores.
                unsafe { memmap2::MmapMut::map_mut(&f) }
            });
        match made {
            Ok(map) => Some(Self { map }),
            Err(e) => {
                tracing::warn!(file = %path.display(), error = %e, "cannot keep the read mark: a crash at one row is pinned less exactly");
                None
            }
        }
    }

    /// The reader is at `mark`.
    pub(super) fn set(&mut self, mark: Mark) {
        self.map[..8].copy_from_slice(&mark.position.to_le_bytes());
        self.map[8..16].copy_from_slice(&mark.line.to_le_bytes());
    }
}

/// The mark a dead reader left beside `processing`, if any.
pub(super) fn read(processing: &Path) -> Option<Mark> {
    let bytes = std::fs::read(path_of(processing)).ok()?;
    let word = |i: usize| Some(u64::from_le_bytes(bytes.get(i..i + 8)?.try_into().ok()?));
    let mark = Mark {
        position: word(0)?,
        line: word(8)?,
    };
    (mark.position > 0).then_some(mark)
}

/// Removes the mark beside `processing` (the file finished, or moved).
pub(super) fn remove(processing: &Path) {
    let _ = std::fs::remove_file(path_of(processing));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mark_set_is_read_back_by_another_reader_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("feed.csv");
        assert_eq!(read(&file), None);
        let mut m = ReadMark::create(&file).unwrap();
        m.set(Mark {
            position: 41,
            line: 43,
        });
        // Read through the file, not the mapping: what a new process sees.
        assert_eq!(
            read(&file),
            Some(Mark {
                position: 41,
                line: 43
            })
        );
        drop(m);
        remove(&file);
        assert_eq!(read(&file), None);
        assert!(std::fs::read_dir(dir.path()).unwrap().next().is_none());
    }
}
