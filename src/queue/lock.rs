//! The daemon lock: one daemon per queue, its pid in the lock file.

use std::fs::File;
use std::io::{Read, Seek, Write as _};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

/// The daemon's exclusive claim on a queue; released on drop.
#[derive(Debug)]
pub struct DaemonLock {
    _file: File,
    path: PathBuf,
}

impl DaemonLock {
    /// Takes the lock next to the queue file (`queue.db.lock`), writing our
    /// pid into it.
    ///
    /// # Errors
    /// When another daemon holds it (its pid in the message), or on I/O errors.
    pub fn acquire(queue_path: &Path) -> anyhow::Result<Self> {
        Self::take(lock_path(queue_path), |who, lock| {
            format!(
                "the queue {} is in use by {who}: only one daemon may own a queue (lock file {lock})",
                queue_path.display()
            )
        })
    }

    /// On a shared queue, the lock of this host's watched directory (next
    /// to its `processing` directory): several daemons share the queue,
    /// but one reads a directory.
    ///
    /// # Errors
    /// As [`DaemonLock::acquire`].
    pub fn acquire_dir(processing_dir: &Path) -> anyhow::Result<Self> {
        Self::take(lock_path(processing_dir), |who, lock| {
            format!(
                "the directory {} is in use by {who}: one daemon reads a watched directory \
                 (lock file {lock})",
                processing_dir.display()
            )
        })
    }

    fn take(path: PathBuf, refusal: impl Fn(&str, &str) -> String) -> anyhow::Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .with_context(|| format!("opening lock file {}", path.display()))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut pid = String::new();
                let _ = file.read_to_string(&mut pid);
                let who = match pid.trim() {
                    "" => "another process".to_string(),
                    p => format!("another tc-ingest daemon (pid {p})"),
                };
                bail!(refusal(&who, &path.display().to_string()));
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(e).with_context(|| format!("locking {}", path.display()));
            }
        }
        file.set_len(0)?;
        file.rewind()?;
        write!(file, "{}", std::process::id())?;
        file.sync_all()?;
        Ok(Self { _file: file, path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Who holds a queue's daemon lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockHolder {
    /// A daemon runs on this queue (its pid, when it wrote one).
    Daemon(Option<u32>),
    /// No daemon runs on it.
    Nobody,
}

impl DaemonLock {
    /// Whether a daemon holds the queue's lock, asked without taking it
    /// for longer than the question (a shared lock on the lock file, never
    /// on the database file). This is the truth `status` reports: a
    /// heartbeat in the database outlives a stopped daemon.
    ///
    /// # Errors
    /// I/O errors other than the lock file not existing.
    pub fn holder(queue_path: &Path) -> anyhow::Result<LockHolder> {
        let path = lock_path(queue_path);
        let mut file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(LockHolder::Nobody),
            Err(e) => return Err(e).with_context(|| format!("opening {}", path.display())),
        };
        match file.try_lock_shared() {
            Ok(()) => Ok(LockHolder::Nobody),
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut pid = String::new();
                let _ = file.read_to_string(&mut pid);
                Ok(LockHolder::Daemon(pid.trim().parse().ok()))
            }
            Err(std::fs::TryLockError::Error(e)) => {
                Err(e).with_context(|| format!("locking {}", path.display()))
            }
        }
    }
}

fn lock_path(queue_path: &Path) -> PathBuf {
    let mut s = queue_path.as_os_str().to_owned();
    s.push(".lock");
    PathBuf::from(s)
}
