//! lifecycle: what happens to an indicator around the queue. The
//! allowlist applied before the queue (values that must never become
//! ThreatConnect indicators: the built-in special-purpose ranges and
//! names, the config's values, networks, domains and patterns, MISP
//! warninglists), and the daemon's sweeps (expiry, `max_age`, feed
//! health). Snapshot reconciliation happens in the queue, in the
//! transaction that finishes a snapshot's file.
//!
//! The allowlist is pure but for [`Allowlist::build`], which reads the
//! warninglist files, and never logs: the caller logs the warnings
//! `build` returns and counts what [`Allowlist::check`] names.

mod allowlist;
mod build;
mod matchers;
mod sweep;
mod warninglist;

pub use allowlist::{Allowlist, AllowlistConfig, Matched};
pub use sweep::{Sweeper, named, retiring, retiring_by};

#[cfg(test)]
mod tests;
