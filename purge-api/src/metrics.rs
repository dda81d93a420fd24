//! purge-api's Prometheus families.

use prometheus::{
    register_histogram, register_histogram_vec, register_int_counter_vec, register_int_gauge,
    register_int_gauge_vec, Encoder, Histogram, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec,
    TextEncoder,
};

/// The metric families.
pub struct Metrics {
    /// `purge_api_requests_total{code}`: API calls by status code.
    pub requests: IntCounterVec,
    /// `purge_api_log_head`: newest sequence in the log.
    pub head: IntGauge,
    /// `purge_api_log_compacted_through`: entries up to here are compacted away.
    pub compacted: IntGauge,
    /// `purge_api_node_applied_seq{node}`.
    pub node_applied: IntGaugeVec,
    /// `purge_api_node_lag{node}`: purges the node has not applied yet.
    pub node_lag: IntGaugeVec,
    /// `purge_api_node_up{node}`: 1 if the last exchange worked.
    pub node_up: IntGaugeVec,
    /// `purge_api_node_leases_held`: nodes this process delivers to (all of them on an
    /// embedded log; those it holds the lease of on PostgreSQL).
    pub leases: IntGauge,
    /// `purge_api_deliveries_total{result}`: deliveries to nodes (ok, error, gap).
    pub deliveries: IntCounterVec,
    /// `purge_api_delivery_duration_seconds`: one purge to one node, request to answer.
    pub delivery_duration: Histogram,
    /// `purge_api_shield_wait_seconds{released_by}`: how long purges were held back from the
    /// edges, until the shields applied them (`shields`) or `shield_wait` ran out (`timeout`).
    pub shield_wait: HistogramVec,
}

impl Metrics {
    /// Registers the families in the default registry.
    pub fn register() -> prometheus::Result<Metrics> {
        Ok(Metrics {
            requests: register_int_counter_vec!(
                "purge_api_requests_total",
                "API calls by HTTP status code.",
                &["code"]
            )?,
            head: register_int_gauge!("purge_api_log_head", "Newest sequence in the purge log.")?,
            compacted: register_int_gauge!(
                "purge_api_log_compacted_through",
                "Purge log entries up to this sequence are compacted away."
            )?,
            node_applied: register_int_gauge_vec!(
                "purge_api_node_applied_seq",
                "Last purge sequence a node applied.",
                &["node"]
            )?,
            node_lag: register_int_gauge_vec!(
                "purge_api_node_lag",
                "Purges a node has not applied yet.",
                &["node"]
            )?,
            node_up: register_int_gauge_vec!(
                "purge_api_node_up",
                "1 if the last exchange with a node worked, else 0.",
                &["node"]
            )?,
            leases: register_int_gauge!(
                "purge_api_node_leases_held",
                "Nodes this process delivers to: all on an embedded log, those it holds the lease of on PostgreSQL."
            )?,
            deliveries: register_int_counter_vec!(
                "purge_api_deliveries_total",
                "Purge deliveries to nodes, by result (ok, gap, error).",
                &["result"]
            )?,
            delivery_duration: register_histogram!(
                "purge_api_delivery_duration_seconds",
                "Time for one node to apply one purge, request to answer.",
                vec![0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0]
            )?,
            shield_wait: {
                let h = register_histogram_vec!(
                    "purge_api_shield_wait_seconds",
                    "How long purges were held back from the edges: until every shield applied them (released_by=shields) or nodes.shield_wait ran out (timeout).",
                    &["released_by"],
                    vec![0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0, 60.0]
                )?;
                for by in crate::shields::ReleasedBy::ALL {
                    h.with_label_values(&[by.label()]);
                }
                h
            },
        })
    }

    /// Forgets a node that left.
    pub fn remove_node(&self, url: &str) {
        for f in [&self.node_applied, &self.node_lag, &self.node_up] {
            let _ = f.remove_label_values(&[url]);
        }
    }

    /// The text exposition.
    pub fn render() -> Vec<u8> {
        let mut out = Vec::new();
        let _ = TextEncoder::new().encode(&prometheus::gather(), &mut out);
        out
    }
}
