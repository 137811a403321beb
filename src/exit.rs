//! Exit codes: one set for every subcommand (the README lists them).

/// Everything done.
pub const OK: u8 = 0;
/// Done in part: `run --once` left work undelivered (buried, held, paused,
/// pending) or a file failed; `ping` cannot see `api.owner`.
pub const PARTIAL: u8 = 1;
/// An invalid configuration or argument, an error before any work began, a
/// failed `ping`, or a file `enqueue` or `normalize` cannot read.
pub const ERROR: u8 = 2;
/// A daemon task failed (database gone, disk full): systemd restarts it.
pub const TASK_FAILED: u8 = 3;
/// A second SIGTERM/SIGINT: exited at once.
pub const SECOND_SIGNAL: u8 = 130;
