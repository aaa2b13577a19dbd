//! Prometheus metrics, owned by one registry per application (no global recorder).

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::state::AppState;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    pub method: String,
    pub route: String,
    pub status: u16,
}

pub struct Metrics {
    registry: Registry,
    pub http_requests: Family<HttpLabels, Counter>,
    pub http_duration: Histogram,
    pub ws_connections: Gauge,
    pub ws_slow_disconnects: Counter,
    pub messages_sent: Counter,
    pub send_latency: Histogram,
    pub events_delivered: Counter,
    pub bus_events_received: Counter,
    pub bus_events_needed: Counter,
    pub sequencer_held: Counter,
    pub sequencer_given_up: Counter,
    pub sequencer_late: Counter,
    /// Large-group fan-out on a worker (see natter-core's `fan_out`).
    pub fanout_jobs: Counter,
    pub fanout_repeats: Counter,
    pub fanout_recipients: Counter,
    pub fanout_events: Counter,
    /// A gateway's sends to chat nodes in `SendMany` batches (see natter-rpc's client).
    pub send_batches: Counter,
    pub sends_batched: Counter,
    pub send_batches_failed: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        let http_requests = Family::<HttpLabels, Counter>::default();
        let http_duration = Histogram::new(exponential_buckets(0.000_5, 2.0, 16));
        let ws_connections = Gauge::default();
        let ws_slow_disconnects = Counter::default();
        let messages_sent = Counter::default();
        let send_latency = Histogram::new(exponential_buckets(0.000_1, 2.0, 18));
        let events_delivered = Counter::default();
        let bus_events_received = Counter::default();
        let bus_events_needed = Counter::default();
        let sequencer_held = Counter::default();
        let sequencer_given_up = Counter::default();
        let sequencer_late = Counter::default();
        let (fanout_jobs, fanout_repeats) = (Counter::default(), Counter::default());
        let (fanout_recipients, fanout_events) = (Counter::default(), Counter::default());
        let (send_batches, sends_batched, send_batches_failed) =
            (Counter::default(), Counter::default(), Counter::default());
        registry.register("natter_http_requests", "HTTP requests by method, route and status", http_requests.clone());
        registry.register("natter_http_request_duration_seconds", "HTTP request latency", http_duration.clone());
        registry.register("natter_ws_connections", "Open WebSocket connections", ws_connections.clone());
        registry.register(
            "natter_ws_slow_disconnects",
            "WebSockets closed because the client did not keep up",
            ws_slow_disconnects.clone(),
        );
        registry.register(
            "natter_messages_sent",
            "Messages stored by a send (not counting idempotent resends)",
            messages_sent.clone(),
        );
        registry.register(
            "natter_send_latency_seconds",
            "Time from a send request to its acknowledgement",
            send_latency.clone(),
        );
        registry.register("natter_events_delivered", "Frames queued to local WebSockets", events_delivered.clone());
        registry.register(
            "natter_bus_events_received",
            "Bus events this node's gateway received (its own subject and the one to every node)",
            bus_events_received.clone(),
        );
        registry.register(
            "natter_bus_events_needed",
            "Bus events received that had at least one recipient socket on this node",
            bus_events_needed.clone(),
        );
        registry.register(
            "natter_sequencer_held",
            "Log entries held back until their predecessor arrived (it was published by another process)",
            sequencer_held.clone(),
        );
        registry.register(
            "natter_sequencer_gaps_given_up",
            "Gaps before a held entry that did not fill within the wait (held entries went out anyway)",
            sequencer_given_up.clone(),
        );
        registry.register(
            "natter_sequencer_late",
            "Log entries that arrived after a later entry of their conversation went out (out of seq order)",
            sequencer_late.clone(),
        );
        registry.register(
            "natter_fanout_jobs",
            "Fan-out jobs this worker ran to their end (published, or found published by an earlier run)",
            fanout_jobs.clone(),
        );
        registry.register(
            "natter_fanout_repeats",
            "Fan-out jobs whose entry an earlier run had published (a redelivery): nothing published",
            fanout_repeats.clone(),
        );
        registry.register(
            "natter_fanout_recipients",
            "Recipients fan-out jobs looked up in the route table",
            fanout_recipients.clone(),
        );
        registry.register(
            "natter_fanout_events",
            "Events fan-out jobs published (one per gateway per entry)",
            fanout_events.clone(),
        );
        registry.register(
            "natter_chat_send_batches",
            "SendMany calls this gateway's chat client made that were answered",
            send_batches.clone(),
        );
        registry.register(
            "natter_chat_sends_batched",
            "Sends that went in answered SendMany calls",
            sends_batched.clone(),
        );
        registry.register(
            "natter_chat_send_batches_failed",
            "SendMany calls that failed as a whole (their sends then went one by one)",
            send_batches_failed.clone(),
        );
        Self {
            registry,
            http_requests,
            http_duration,
            ws_connections,
            ws_slow_disconnects,
            messages_sent,
            send_latency,
            events_delivered,
            bus_events_received,
            bus_events_needed,
            sequencer_held,
            sequencer_given_up,
            sequencer_late,
            fanout_jobs,
            fanout_repeats,
            fanout_recipients,
            fanout_events,
            send_batches,
            sends_batched,
            send_batches_failed,
        }
    }
}

impl natter_core::fan_out::FanOutMetrics for Metrics {
    fn job_done(&self, recipients: usize, events: usize) {
        self.fanout_jobs.inc();
        self.fanout_recipients.inc_by(recipients as u64);
        self.fanout_events.inc_by(events as u64);
    }

    fn job_repeated(&self) {
        self.fanout_jobs.inc();
        self.fanout_repeats.inc();
    }
}

impl natter_core::api::SendBatchMetrics for Metrics {
    fn batch_sent(&self, sends: usize) {
        self.send_batches.inc();
        self.sends_batched.inc_by(sends as u64);
    }

    fn batch_failed(&self, _sends: usize) {
        self.send_batches_failed.inc();
    }
}

impl Metrics {
    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if let Err(error) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::error!(%error, "could not encode metrics");
        }
        out
    }
}

/// Counts every request by its route template (not the raw path) and its method, where anything
/// but a standard method is `other`: both labels come from the client, and a label per made-up
/// value would let anyone grow the exposition without bound.
pub async fn track_http(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = method_label(request.method()).to_owned();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let response = next.run(request).await;
    let labels = HttpLabels { method, route, status: response.status().as_u16() };
    state.metrics.http_requests.get_or_create(&labels).inc();
    state.metrics.http_duration.observe(started.elapsed().as_secs_f64());
    response
}

/// The method's name when it is one of RFC 9110's (plus `PATCH`), else `other`.
pub fn method_label(method: &Method) -> &'static str {
    static STANDARD: [Method; 9] = [
        Method::GET,
        Method::HEAD,
        Method::POST,
        Method::PUT,
        Method::DELETE,
        Method::CONNECT,
        Method::OPTIONS,
        Method::TRACE,
        Method::PATCH,
    ];
    STANDARD.iter().find(|standard| *standard == method).map_or("other", Method::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_methods_share_one_label() {
        assert_eq!(method_label(&Method::GET), "GET");
        assert_eq!(method_label(&Method::PATCH), "PATCH");
        for made_up in ["XXXX", "get", "PROPFIND"] {
            let method = Method::from_bytes(made_up.as_bytes()).expect("a valid method token");
            assert_eq!(method_label(&method), "other", "{made_up}");
        }
    }
}
