//! The `[delivery]` section (workers, rate, retries, probes, mode) and the
//! `[batch]` section.

use std::str::FromStr;
use std::time::Duration;

use super::{BatchConfig, DeliveryConfig, DeliveryMode, RawBatch, RawDelivery};

/// ThreatConnect's most indicators in one batch job (tc-api.md section 5).
pub const MAX_BATCH_INDICATORS: usize = 25_000;

/// `key`'s value parsed as a closed name, `default` when absent.
fn named<T: FromStr + Copy>(errors: &mut Vec<String>, key: &str, v: Option<String>, default: T) -> T
where
    T::Err: std::fmt::Display,
{
    match v {
        None => default,
        Some(s) => s.parse().unwrap_or_else(|e| {
            errors.push(format!("{key}: {e}"));
            default
        }),
    }
}

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
        mode: named(errors, "delivery.mode", d.mode, DeliveryMode::Auto),
        attribute_check: named(
            errors,
            "delivery.attribute_check",
            d.attribute_check,
            super::AttributeCheck::Uncertain,
        ),
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

/// Validates `[batch]`, pushing its problems to `errors`.
pub(super) fn validate_batch(b: RawBatch, errors: &mut Vec<String>) -> BatchConfig {
    let batch = BatchConfig {
        min_indicators: b.min_indicators.unwrap_or(1000),
        max_indicators: b.max_indicators.unwrap_or(5000),
        max_bytes: b.max_bytes.unwrap_or(1_900_000),
        jobs_in_flight: b.jobs_in_flight.unwrap_or(4),
        poll_min: Duration::from_millis(b.poll_min_ms.unwrap_or(1000).max(10)),
        poll_max: Duration::from_millis(b.poll_max_ms.unwrap_or(20_000).max(10)),
        timeout: Duration::from_secs(b.timeout_secs.unwrap_or(3600).max(1)),
        attribute_write_type: named(
            errors,
            "batch.attribute_write_type",
            b.attribute_write_type,
            super::AttributeWriteType::Append,
        ),
        tag_write_type: named(
            errors,
            "batch.tag_write_type",
            b.tag_write_type,
            super::TagWriteType::Append,
        ),
        security_label_write_type: named(
            errors,
            "batch.security_label_write_type",
            b.security_label_write_type,
            super::SecurityLabelWriteType::Append,
        ),
    };
    if batch.max_indicators == 0 || batch.max_indicators > MAX_BATCH_INDICATORS {
        errors.push(format!(
            "batch.max_indicators: must be from 1 to {MAX_BATCH_INDICATORS} (ThreatConnect's limit)"
        ));
    }
    if batch.max_bytes < 1024 {
        errors.push("batch.max_bytes: must be at least 1024".into());
    }
    if batch.jobs_in_flight == 0 || batch.jobs_in_flight > 64 {
        errors.push("batch.jobs_in_flight: must be from 1 to 64".into());
    }
    if batch.poll_max < batch.poll_min {
        errors.push("batch.poll_max_ms: must not be less than batch.poll_min_ms".into());
    }
    batch
}

impl Default for BatchConfig {
    /// The defaults of an empty `[batch]` section.
    fn default() -> Self {
        validate_batch(RawBatch::default(), &mut Vec::new())
    }
}
