//! The ThreatConnect v2 API: the only module that knows the wire format.
//!
//! `request` builds signed-to-be requests (paths, queries, bodies), `sign`
//! computes the `TC` signature, `client` sends them over reqwest, and `outcome`
//! turns every answer into one closed [`Outcome`].

pub mod client;
pub mod outcome;
pub mod request;
pub mod sign;

pub use crate::config::TypeNames;
pub use client::{Client, Response};
pub use outcome::Outcome;
pub use request::{ApiRequest, Endpoints, Method, attribute_of_step};
pub use sign::Clock;
