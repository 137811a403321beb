//! The `[watch]` section: the incoming directory, its siblings, and limits.

use std::path::Path;
use std::time::Duration;

use super::{RawWatch, WatchConfig, duration, resolve};

/// Validates `[watch]`, pushing its problems to `errors`. The directories
/// default to `incoming` under `state`, and siblings of `watch.dir`.
pub(super) fn validate(
    w: RawWatch,
    base: &Path,
    state: &Path,
    errors: &mut Vec<String>,
) -> WatchConfig {
    let dir = w
        .dir
        .map(|p| resolve(base, p))
        .unwrap_or_else(|| state.join("incoming"));
    let sibling = dir
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| state.to_path_buf());
    let beside = |p: Option<std::path::PathBuf>, name: &str| {
        p.map(|p| resolve(base, p))
            .unwrap_or_else(|| sibling.join(name))
    };
    let processing_dir = beside(w.processing_dir, "processing");
    let done_dir = beside(w.done_dir, "done");
    let failed_dir = beside(w.failed_dir, "failed");
    for (key, p) in [
        ("watch.processing_dir", &processing_dir),
        ("watch.done_dir", &done_dir),
        ("watch.failed_dir", &failed_dir),
    ] {
        if p.starts_with(&dir) {
            errors.push(format!(
                "{key}: {} must not be inside watch.dir",
                p.display()
            ));
        }
    }
    let watch = WatchConfig {
        settle: Duration::from_millis(w.settle_ms.unwrap_or(2000)),
        rescan: Duration::from_secs(w.rescan_secs.unwrap_or(30).max(1)),
        done_retention: duration(errors, "watch.done_retention", &w.done_retention, "7d"),
        skip_duplicate_files: w.skip_duplicate_files.unwrap_or(true),
        max_line_bytes: w.max_line_bytes.unwrap_or(1 << 20),
        max_decompressed_bytes: w.max_decompressed_bytes.unwrap_or(8 << 30),
        max_stalled_reads: w.max_stalled_reads.unwrap_or(3),
        dir,
        processing_dir,
        done_dir,
        failed_dir,
    };
    if watch.max_stalled_reads == 0 {
        errors.push("watch.max_stalled_reads: must be at least 1".into());
    }
    if watch.max_line_bytes < 64 {
        errors.push("watch.max_line_bytes: must be at least 64".into());
    }
    watch
}
