//! Prometheus metrics: a few labelled families, registered in the default registry next to
//! Pingora's own.

mod labels;

pub use labels::{
    AdmissionResult, OriginResult, PurgeResult, Refusal, ReloadResult, ScrubResult, SweepAction,
};

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use prometheus::{
    register_histogram, register_histogram_vec, register_int_counter, register_int_counter_vec,
    register_int_gauge, register_int_gauge_vec, Encoder, Histogram, HistogramVec, IntCounter,
    IntCounterVec, IntGauge, IntGaugeVec, TextEncoder,
};

use parking_lot::RwLock;

use crate::cache::stats::TierStats;
use crate::cache::Tier;
use crate::http::cache_status::Outcome;

const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// The edge's metric families.
pub struct Metrics {
    /// `edge_cache_requests_total{site,outcome}`, `edge_response_bytes_total{site,outcome}` and
    /// `edge_request_duration_seconds{site,outcome}`.
    requests: RequestFamilies,
    /// Each site's series of those families for each [`Outcome`], by its index in
    /// [`Outcome::ALL`], made on the site's first request: finding three series by their labels
    /// on every request (hashing them, a read lock each) showed in the profile of a small hit,
    /// one map lookup does not.
    sites: RwLock<HashMap<String, Arc<SiteSeries>>>,
    /// `edge_connections_accepted_total{worker}`: client connections each worker accepted.
    pub accepted: IntCounterVec,
    /// `edge_origin_requests_total{site,result}`: origin fetches by HTTP status class or error.
    origin_requests: IntCounterVec,
    /// `edge_origin_duration_seconds`: time to the origin's response header.
    pub origin_duration: Histogram,
    /// `edge_origin_retries_total`: requests sent to another server after a failed connect.
    pub origin_retries: IntCounter,
    /// `edge_config_reloads_total{result}`: SIGHUP reloads, applied (`ok`) or refused (`error`).
    pub config_reloads: IntCounterVec,
    /// `edge_config_generation`: 1 at start, one more per applied reload.
    pub config_generation: IntGauge,
    /// `edge_access_log_dropped_total`: lines dropped because the output could not keep up.
    pub access_log_dropped: IntCounter,
    /// `edge_cache_tier_bytes{tier}`.
    tier_bytes: IntGaugeVec,
    /// `edge_cache_tier_objects{tier}`.
    tier_objects: IntGaugeVec,
    /// `edge_cache_tier_evictions_total{tier}`.
    tier_evictions: IntCounterVec,
    /// `edge_cache_tier_rejections_total{tier}`: objects the admission policy declined.
    tier_rejections: IntCounterVec,
    /// `edge_disk_scrubbed_total{result}`: bodies the background scrub read (ok, damaged).
    disk_scrubbed: IntCounterVec,
    /// `edge_disk_admission_total{result}`: cacheable objects written to disk or kept out by
    /// `cache.disk.admission.min_uses` (admitted, refused).
    disk_admission: IntCounterVec,
    /// `edge_cache_tier_hits_total{tier}`: lookups a tier answered.
    tier_hits: IntCounterVec,
    /// `edge_cache_tier_errors_total{tier}`: failed reads and writes, each served from elsewhere.
    tier_errors: IntCounterVec,
    /// `edge_cache_invalidations_total`: objects removed by unsafe methods (RFC 9111 §4.4).
    pub invalidations: IntCounter,
    /// `edge_stale_unreachable_total`: stale copies served because the origin could not be
    /// reached.
    pub stale_unreachable: IntCounter,
    /// `edge_refusals_total{reason}`: requests answered by the edge under a rule's edge logic,
    /// by [`Refusal`].
    refusals: Vec<IntCounter>,
    /// `edge_rate_limited_total{site,rule}`: requests each rule's rate limit refused.
    rate_limited: IntCounterVec,
    /// `edge_purge_requests_total{result}`: purge calls by outcome.
    pub purge_requests: IntCounterVec,
    /// `edge_purge_applied_seq`: last purge-log sequence applied.
    pub purge_applied_seq: IntGauge,
    /// `edge_purge_bans`: ban rules in force (not yet swept).
    pub purge_bans: IntGauge,
    /// `edge_purge_swept_objects_total{action}`: objects the sweep removed or expired.
    pub purge_swept: IntCounterVec,
    /// `edge_purge_sweep_duration_seconds`: one pass over both tiers.
    pub purge_sweep_duration: Histogram,
}

/// The request families, labelled by site and outcome, and the responses by status code.
struct RequestFamilies {
    requests: IntCounterVec,
    bytes: IntCounterVec,
    duration: HistogramVec,
    /// `edge_responses_total{site,code}`.
    codes: IntCounterVec,
}

/// The status codes counted, one series each (an HTTP status has three digits).
const CODES: std::ops::RangeInclusive<u16> = 100..=599;

/// One site's series: per outcome, and per status code (made at the first response of each).
struct SiteSeries {
    outcomes: Vec<Series>,
    codes: Vec<std::sync::OnceLock<IntCounter>>,
}

impl RequestFamilies {
    /// `site`'s series.
    fn series(&self, site: &str) -> Arc<SiteSeries> {
        let outcomes = Outcome::ALL
            .iter()
            .map(|o| Series {
                requests: self.requests.with_label_values(&[site, o.label()]),
                bytes: self.bytes.with_label_values(&[site, o.label()]),
                duration: self.duration.with_label_values(&[site, o.label()]),
            })
            .collect();
        let codes = CODES.map(|_| std::sync::OnceLock::new()).collect();
        Arc::new(SiteSeries { outcomes, codes })
    }
}

/// The `site` label of requests no site answers (an unknown or invalid host).
pub const NO_SITE: &str = "-";

/// One cache outcome's series of the request families.
struct Series {
    requests: IntCounter,
    bytes: IntCounter,
    duration: Histogram,
}

impl Metrics {
    /// Registers the families. Fails only if they are registered twice in one process.
    pub fn register() -> prometheus::Result<Self> {
        let requests = RequestFamilies {
            requests: register_int_counter_vec!(
                "edge_cache_requests_total",
                "Requests by site and cache outcome (hit, miss, stale, revalidated, expired, bypass, pass, error).",
                &["site", "outcome"]
            )?,
            bytes: register_int_counter_vec!(
                "edge_response_bytes_total",
                "Response body bytes sent to clients, by site and cache outcome.",
                &["site", "outcome"]
            )?,
            duration: register_histogram_vec!(
                "edge_request_duration_seconds",
                "Time from request to the last byte sent, by site and cache outcome.",
                &["site", "outcome"],
                LATENCY_BUCKETS.to_vec()
            )?,
            codes: register_int_counter_vec!(
                "edge_responses_total",
                "Responses sent to clients, by site and HTTP status code.",
                &["site", "code"]
            )?,
        };
        let none = requests.series(NO_SITE);
        let metrics = Metrics {
            requests,
            sites: RwLock::new(HashMap::from([(NO_SITE.to_string(), none)])),
            accepted: register_int_counter_vec!(
                "edge_connections_accepted_total",
                "Client connections accepted, by worker (one per proxy thread; one in all with a work-stealing runtime).",
                &["worker"]
            )?,
            origin_requests: register_int_counter_vec!(
                "edge_origin_requests_total",
                "Requests sent to origins, by site and result (2xx, 3xx, 4xx, 5xx, error).",
                &["site", "result"]
            )?,
            origin_duration: register_histogram!(
                "edge_origin_duration_seconds",
                "Time from choosing an origin server to its response header.",
                LATENCY_BUCKETS.to_vec()
            )?,
            origin_retries: register_int_counter!(
                "edge_origin_retries_total",
                "Requests sent to another origin server after a failed connect."
            )?,
            config_reloads: register_int_counter_vec!(
                "edge_config_reloads_total",
                "Configuration reloads (SIGHUP) by result: ok (applied) or error (refused, the old one stays).",
                &["result"]
            )?,
            config_generation: register_int_gauge!(
                "edge_config_generation",
                "Generation of the configuration in force: 1 at start, one more per applied reload."
            )?,
            access_log_dropped: register_int_counter!(
                "edge_access_log_dropped_total",
                "Access-log lines dropped because the output could not keep up (8 MiB waiting)."
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
            disk_scrubbed: register_int_counter_vec!(
                "edge_disk_scrubbed_total",
                "Bodies the background scrub read again: whole (ok), or damaged and removed.",
                &["result"]
            )?,
            disk_admission: register_int_counter_vec!(
                "edge_disk_admission_total",
                "Cacheable objects written to the disk tier (admitted) or kept out until asked for cache.disk.admission.min_uses times (refused).",
                &["result"]
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
            refusals: {
                let family = register_int_counter_vec!(
                    "edge_refusals_total",
                    "Requests a rule's edge logic answered at the edge, by reason (denied, rate_limited, redirect).",
                    &["reason"]
                )?;
                Refusal::ALL
                    .iter()
                    .map(|r| family.with_label_values(&[r.label()]))
                    .collect()
            },
            rate_limited: register_int_counter_vec!(
                "edge_rate_limited_total",
                "Requests refused by a rule's rate limit, by site and rule (its index in the site's rules).",
                &["site", "rule"]
            )?,
            stale_unreachable: register_int_counter!(
                "edge_stale_unreachable_total",
                "Stale copies served because the origin could not be reached (cache.stale_if_unreachable)."
            )?,
            purge_requests: register_int_counter_vec!(
                "edge_purge_requests_total",
                "Purge calls on the admin listener, by result (applied, duplicate, invalid, unauthorized, gap, error).",
                &["result"]
            )?,
            purge_applied_seq: register_int_gauge!(
                "edge_purge_applied_seq",
                "Last purge-log sequence this node applied."
            )?,
            purge_bans: register_int_gauge!(
                "edge_purge_bans",
                "Purge ban rules in force: judged on every lookup until the sweep has applied them."
            )?,
            purge_swept: register_int_counter_vec!(
                "edge_purge_swept_objects_total",
                "Stored objects the purge sweep removed (hard) or expired (soft).",
                &["action"]
            )?,
            purge_sweep_duration: register_histogram!(
                "edge_purge_sweep_duration_seconds",
                "Time of one purge sweep over both tiers.",
                vec![0.001, 0.01, 0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0]
            )?,
        };
        metrics.export_zeros();
        Ok(metrics)
    }

    /// Makes every series of a closed label set exist at 0 from the start, so a rate or an
    /// alert over it is defined before the first event.
    fn export_zeros(&self) {
        for r in ReloadResult::ALL {
            self.config_reloads.with_label_values(&[r.label()]);
        }
        for r in PurgeResult::ALL {
            self.purge_requests.with_label_values(&[r.label()]);
        }
        for a in SweepAction::ALL {
            self.purge_swept.with_label_values(&[a.label()]);
        }
        for r in ScrubResult::ALL {
            self.disk_scrubbed.with_label_values(&[r.label()]);
        }
        for r in AdmissionResult::ALL {
            self.disk_admission.with_label_values(&[r.label()]);
        }
    }

    /// Exports the request and origin series of `sites` at 0, before their first request.
    pub fn prepare_sites<'a>(&self, sites: impl IntoIterator<Item = &'a str>) {
        for site in sites {
            self.series_of(site);
            for r in OriginResult::ALL {
                self.origin_requests.with_label_values(&[site, r.label()]);
            }
        }
    }

    fn series_of(&self, site: &str) -> Arc<SiteSeries> {
        if let Some(s) = self.sites.read().get(site) {
            return s.clone();
        }
        self.sites
            .write()
            .entry(site.to_string())
            .or_insert_with(|| self.requests.series(site))
            .clone()
    }

    /// Counts one request of `site` ([`NO_SITE`] for none) with cache outcome `outcome`, the
    /// HTTP `status` it was answered with (0: none was sent), the body bytes it sent and how
    /// long it took.
    pub fn request(
        &self,
        site: &str,
        outcome: Outcome,
        status: u16,
        bytes: u64,
        elapsed: Duration,
    ) {
        let at = Outcome::ALL.iter().position(|o| *o == outcome);
        let series = self.series_of(site);
        if let Some(s) = at.and_then(|i| series.outcomes.get(i)) {
            s.requests.inc();
            s.bytes.inc_by(bytes);
            s.duration.observe(elapsed.as_secs_f64());
        }
        if CODES.contains(&status) {
            let at = usize::from(status - CODES.start());
            if let Some(slot) = series.codes.get(at) {
                slot.get_or_init(|| {
                    self.requests
                        .codes
                        .with_label_values(&[site, &status.to_string()])
                })
                .inc();
            }
        }
    }

    /// Counts an origin fetch of `site` that ended in `result`.
    pub fn origin_request(&self, site: &str, result: OriginResult) {
        self.origin_requests
            .with_label_values(&[site, result.label()])
            .inc();
    }

    /// Counts a request refused by the rate limit of rule `rule` of `site`.
    pub fn rate_limited(&self, site: &str, rule: usize) {
        self.rate_limited
            .with_label_values(&[site, &rule.to_string()])
            .inc();
    }

    /// Counts a request the edge answered itself for `why`.
    pub fn refused(&self, why: Refusal) {
        let at = Refusal::ALL.iter().position(|r| *r == why);
        if let Some(c) = at.and_then(|i| self.refusals.get(i)) {
            c.inc();
        }
    }

    /// Copies a tier's counters into the families (done at scrape time, off the request path).
    pub fn observe_tier(&self, tier: Tier, stats: &TierStats) {
        let tier = tier.label();
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
            catch_up(&family.with_label_values(&[tier]), value);
        }
        if tier == Tier::Disk.label() {
            let scrub = &self.disk_scrubbed;
            let admission = &self.disk_admission;
            for (c, value) in [
                (
                    scrub.with_label_values(&[ScrubResult::Ok.label()]),
                    &stats.scrubbed,
                ),
                (
                    scrub.with_label_values(&[ScrubResult::Damaged.label()]),
                    &stats.scrub_damaged,
                ),
                (
                    admission.with_label_values(&[AdmissionResult::Admitted.label()]),
                    &stats.admitted,
                ),
                (
                    admission.with_label_values(&[AdmissionResult::Refused.label()]),
                    &stats.not_admitted,
                ),
            ] {
                catch_up(&c, value);
            }
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

/// Moves a counter up to the value a tier's atomic holds.
fn catch_up(counter: &prometheus::IntCounter, value: &std::sync::atomic::AtomicU64) {
    let now = value.load(Ordering::Relaxed);
    counter.inc_by(now.saturating_sub(counter.get()));
}
