//! The `[delivery]` section: workers, rate, retries and probes.

use std::time::Duration;

use super::{DeliveryConfig, RawDelivery};

/// Validates `[delivery]`, pushing its problems to `errors`.
pub(super) fn validate(d: RawDelivery, errors: &mut Vec<String>) -> DeliveryConfig {
    let delivery = DeliveryConfig {
        workers: d.workers.unwrap_or(8),
        rate_per_second: d.rate_per_second.unwrap_or(20),
        burst: d.burst.unwrap_or(5).max(1),
        max_attempts: d.max_attempts.unwrap_or(10),
        backoff_base: Duration::from_millis(d.backoff_base_ms.unwrap_or(1000)),
        backoff_max: Duration::from_secs(d.backoff_max_secs.unwrap_or(600)),
        shutdown_grace: Duration::from_secs(d.shutdown_grace_secs.unwrap_or(10)),
        probe_min: Duration::from_secs(d.probe_min_secs.unwrap_or(60).max(1)),
        probe_max: Duration::from_secs(d.probe_max_secs.unwrap_or(900).max(1)),
        circuit_open_max: Duration::from_secs(d.circuit_open_max_secs.unwrap_or(30).max(1)),
    };
    if delivery.workers == 0 || delivery.workers > 256 {
        errors.push("delivery.workers: must be from 1 to 256".into());
    }
    if delivery.max_attempts == 0 {
        errors.push("delivery.max_attempts: must be at least 1".into());
    }
    if delivery.probe_max < delivery.probe_min {
        errors
            .push("delivery.probe_max_secs: must not be less than delivery.probe_min_secs".into());
    }
    delivery
}
