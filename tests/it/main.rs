//! Integration tests in one binary (faster to build and link than one per file).

mod allowlist;
mod bulk;
mod client;
mod compat;
mod crash;
mod credentials;
mod deliver;
mod e2e;
mod expiry;
mod feeds;
mod formats;
mod guarantees;
mod helpers;
mod hostile;
mod lifecycle;
mod observe;
mod operate;
mod pauses;
mod presets;
mod proxy;
mod queue;
mod sim;
mod sources;
mod taxii;
mod tls;
mod watch;
