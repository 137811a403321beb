//! tc-ingest: threat-indicator feeds into ThreatConnect, through a queue
//! that survives crashes. ARCHITECTURE.md is the full map (its code map is
//! checked against this tree by `layout`'s tests); in short, from the
//! bottom up (each room imports only rooms above it in this list):
//!
//! - [`names`], [`exit`], [`indicator`]: closed names, exit codes, the
//!   indicator types and a normalized indicator.
//! - [`feed`]: streaming readers, a file's bytes to raw rows (CSV/TSV,
//!   JSON, NDJSON, plain lists); bounded memory on any input.
//! - [`normalize`]: a raw value to ThreatConnect's exact form, or a reject
//!   with its rule. Pure.
//! - [`config`]: the TOML config, validated into typed sections.
//! - [`lifecycle`]: the allowlist applied before the queue (values that
//!   must never become indicators); later snapshot reconciliation and
//!   expiry.
//! - [`queue`]: the SQLite queue, the only room with SQL.
//! - [`api`]: ThreatConnect's wire format as a client: requests, signing,
//!   the client, what an answer is ([`api::Outcome`]).
//! - [`metrics`], [`status`], [`sim`] (the ThreatConnect simulator),
//!   [`cli`], [`logs`].
//! - [`intake`]: the watched directory into the queue.
//! - [`sources`]: pull sources (TAXII 2.1, HTTP(S), MISP feeds) fetched
//!   into the watched directory.
//! - [`deliver`]: the queue to ThreatConnect: workers, the batcher, one
//!   policy for every answer.
//! - [`why`], [`app`] (the daemon), [`demo`], [`bench`], [`commands`]
//!   (one function per subcommand; `main.rs` only calls it).

pub mod api;
pub mod app;
pub mod bench;
pub mod cli;
pub mod commands;
pub mod config;
pub mod deliver;
pub mod demo;
pub mod exit;
pub mod feed;
pub mod indicator;
pub mod intake;
#[cfg(test)]
mod layout;
pub mod lifecycle;
pub mod logs;
pub mod metrics;
pub mod names;
pub mod normalize;
pub mod queue;
pub mod sim;
pub mod sources;
pub mod status;
pub mod web;
pub mod why;
