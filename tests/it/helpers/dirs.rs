//! The state directory's folders as a test looks at them.

use std::path::{Path, PathBuf};

use tc_ingest::queue::FileState;

/// The names in `dir`, sorted (none when it does not exist).
pub fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Where `file` landed under the state directory `root`: `done/` (as
/// itself or stamped `...Z-file`) or `failed/`.
pub fn landed(root: &Path, file: &str) -> Option<(FileState, PathBuf)> {
    for (state, dir) in [(FileState::Done, "done"), (FileState::Failed, "failed")] {
        let dir = root.join(dir);
        if let Some(n) = names(&dir)
            .into_iter()
            .find(|n| n == file || n.ends_with(&format!("Z-{file}")))
        {
            return Some((state, dir.join(n)));
        }
    }
    None
}

/// Whether `file` ended in `state` under the state directory `root`.
pub fn ended(root: &Path, file: &str, state: FileState) -> bool {
    landed(root, file).is_some_and(|(s, _)| s == state)
}
