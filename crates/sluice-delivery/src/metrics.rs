//! Metric names of the delivery engine; every one is labelled with `destination` (its id).

/// Events settled: `outcome` = delivered, filtered (with `reason`), dead_lettered.
pub const EVENTS: &str = "sluice_delivery_events_total";
/// Requests answered or failed: `result` = delivered, retry, rejected, partial, transport_error.
pub const REQUESTS: &str = "sluice_delivery_requests_total";
/// Events scheduled for another attempt.
pub const RETRIES: &str = "sluice_delivery_retries_total";
/// Seconds from receipt by Sluice to delivery.
pub const LATENCY: &str = "sluice_delivery_latency_seconds";
/// Events read and not yet finished.
pub const UNFINISHED: &str = "sluice_delivery_unfinished_events";
/// Age in seconds of the oldest unfinished event (0 when none).
pub const OLDEST_AGE: &str = "sluice_delivery_oldest_unfinished_seconds";
