//! The ThreatConnect API (v2, v3 and batch): the only module that knows the
//! wire format.
//!
//! `request` builds signed-to-be requests (paths, queries, bodies), `sign`
//! computes the `TC` signature, `batch` the batch API's bodies and answers, `client` sends them over reqwest, and `outcome`
//! turns every answer into one closed [`Outcome`].

pub mod batch;
pub mod client;
pub mod outcome;
pub mod request;
pub mod retire;
pub mod sign;

pub use crate::config::TypeNames;
pub use client::{Client, Response};
pub use outcome::Outcome;
pub use request::{ApiRequest, Endpoints, Method, attribute_of_step};
pub use retire::V3Target;
pub use sign::Clock;
