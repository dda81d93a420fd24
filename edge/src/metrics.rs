//! Prometheus metrics: a few labelled families, registered in the default registry next to
//! Pingora's own.

use std::sync::atomic::Ordering;

use prometheus::{
    register_histogram, register_histogram_vec, register_int_counter, register_int_counter_vec,
    register_int_gauge_vec, Encoder, Histogram, HistogramVec, IntCounter, IntCounterVec,
    IntGaugeVec, TextEncoder,
};

use crate::cache::stats::TierStats;

const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// The edge's metric families.
pub struct Metrics {
    /// `edge_cache_requests_total{status}`: requests by cache outcome.
    pub requests: IntCounterVec,
    /// `edge_response_bytes_total{status}`: body bytes sent to clients, by cache outcome.
    pub bytes: IntCounterVec,
    /// `edge_request_duration_seconds{status}`.
    pub duration: HistogramVec,
    /// `edge_origin_requests_total{result}`: origin fetches by HTTP status class or error.
    pub origin_requests: IntCounterVec,
    /// `edge_origin_duration_seconds`: time to the origin's response header.
    pub origin_duration: Histogram,
    /// `edge_cache_tier_bytes{tier}`.
    tier_bytes: IntGaugeVec,
    /// `edge_cache_tier_objects{tier}`.
    tier_objects: IntGaugeVec,
    /// `edge_cache_tier_evictions_total{tier}`.
    tier_evictions: IntCounterVec,
    /// `edge_cache_tier_rejections_total{tier}`: objects the admission policy declined.
    tier_rejections: IntCounterVec,
    /// `edge_cache_tier_hits_total{tier}`: lookups a tier answered.
    tier_hits: IntCounterVec,
    /// `edge_cache_tier_errors_total{tier}`: failed reads and writes, each served from elsewhere.
    tier_errors: IntCounterVec,
    /// `edge_cache_invalidations_total`: objects removed by unsafe methods (RFC 9111 §4.4).
    pub invalidations: IntCounter,
}

impl Metrics {
    /// Registers the families. Fails only if they are registered twice in one process.
    pub fn register() -> prometheus::Result<Self> {
        Ok(Metrics {
            requests: register_int_counter_vec!(
                "edge_cache_requests_total",
                "Requests by cache outcome (hit, miss, stale, revalidated, expired, bypass, pass, error).",
                &["status"]
            )?,
            bytes: register_int_counter_vec!(
                "edge_response_bytes_total",
                "Response body bytes sent to clients, by cache outcome.",
                &["status"]
            )?,
            duration: register_histogram_vec!(
                "edge_request_duration_seconds",
                "Time from request to the last byte sent, by cache outcome.",
                &["status"],
                LATENCY_BUCKETS.to_vec()
            )?,
            origin_requests: register_int_counter_vec!(
                "edge_origin_requests_total",
                "Requests sent to origins, by result (2xx, 3xx, 4xx, 5xx, error).",
                &["result"]
            )?,
            origin_duration: register_histogram!(
                "edge_origin_duration_seconds",
                "Time from choosing an origin server to its response header.",
                LATENCY_BUCKETS.to_vec()
            )?,
            tier_bytes: register_int_gauge_vec!(
                "edge_cache_tier_bytes",
                "Bytes held by a cache tier.",
                &["tier"]
            )?,
            tier_objects: register_int_gauge_vec!(
                "edge_cache_tier_objects",
                "Objects held by a cache tier.",
                &["tier"]
            )?,
            tier_evictions: register_int_counter_vec!(
                "edge_cache_tier_evictions_total",
                "Objects a cache tier dropped to make room.",
                &["tier"]
            )?,
            tier_rejections: register_int_counter_vec!(
                "edge_cache_tier_rejections_total",
                "Objects a cache tier declined: its admission policy, or too large.",
                &["tier"]
            )?,
            tier_hits: register_int_counter_vec!(
                "edge_cache_tier_hits_total",
                "Lookups a cache tier answered.",
                &["tier"]
            )?,
            tier_errors: register_int_counter_vec!(
                "edge_cache_tier_errors_total",
                "Failed cache tier reads and writes (I/O errors, corrupt files); each was served from elsewhere.",
                &["tier"]
            )?,
            invalidations: register_int_counter!(
                "edge_cache_invalidations_total",
                "Stored objects removed because an unsafe method succeeded on their URL."
            )?,
        })
    }

    /// Copies a tier's counters into the families (done at scrape time, off the request path).
    pub fn observe_tier(&self, tier: &str, stats: &TierStats) {
        self.tier_bytes
            .with_label_values(&[tier])
            .set(stats.bytes.load(Ordering::Relaxed) as i64);
        self.tier_objects
            .with_label_values(&[tier])
            .set(stats.objects.load(Ordering::Relaxed) as i64);
        for (family, value) in [
            (&self.tier_evictions, &stats.evictions),
            (&self.tier_rejections, &stats.rejections),
            (&self.tier_hits, &stats.hits),
            (&self.tier_errors, &stats.errors),
        ] {
            let c = family.with_label_values(&[tier]);
            let now = value.load(Ordering::Relaxed);
            c.inc_by(now.saturating_sub(c.get()));
        }
    }

    /// The Prometheus text exposition of every registered family.
    pub fn render() -> Vec<u8> {
        let mut out = Vec::with_capacity(16 << 10);
        // Encoding into a Vec cannot fail on I/O; a malformed family is skipped by prometheus.
        let _ = TextEncoder::new().encode(&prometheus::gather(), &mut out);
        out
    }
}
