//! lifecycle: what happens to an indicator around the queue. For now the
//! allowlist applied before the queue (values that must never become
//! ThreatConnect indicators: the built-in special-purpose ranges and
//! names, the config's values, networks, domains and patterns, MISP
//! warninglists); later snapshot reconciliation and expiry.
//!
//! Pure but for [`Allowlist::build`], which reads the warninglist files;
//! no logging: the caller logs the warnings `build` returns and counts
//! what [`Allowlist::check`] names.

mod allowlist;
mod build;
mod matchers;
mod warninglist;

pub use allowlist::{Allowlist, AllowlistConfig, Matched};

#[cfg(test)]
mod tests;
