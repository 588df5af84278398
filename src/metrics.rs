//! Prometheus metrics. The packet path never touches the registry: each
//! shard and I/O thread counts into plain local fields and publishes the
//! difference since its last publish every `metrics.interval`, so a metric
//! update costs nothing per packet. No label takes unbounded values: labels
//! are shard, interface, queue, rule, kind, table, action, and the top-K
//! offender gauge (at most `TOP_K` series at a time).

use crate::engine::Stats;
use crate::ruleset::Ruleset;
use metrics::{counter, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
use metrics_util::MetricKindMask;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// Offenders exported as `flowgate_top_offender_packets` series.
pub const TOP_K: usize = 10;

/// Histogram buckets, in seconds: 1 µs to 1 s.
const LATENCY_BUCKETS: [f64; 16] = [
    1e-6, 2.5e-6, 5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 5e-2,
    0.25, 1.0,
];

/// The Prometheus exporter could not start (address in use, a recorder
/// already installed).
#[derive(Debug, thiserror::Error)]
#[error("metrics listener on {listen}: {source}")]
pub struct MetricsError {
    /// The address the listener was to bind (`metrics.listen`).
    pub listen: SocketAddr,
    /// The exporter's error.
    #[source]
    pub source: metrics_exporter_prometheus::BuildError,
}

impl MetricsError {
    /// The listen address cannot be bound (checked before the exporter
    /// starts, so the error comes before anything is attached).
    pub fn bind(listen: SocketAddr, why: String) -> MetricsError {
        MetricsError {
            listen,
            source: metrics_exporter_prometheus::BuildError::FailedToCreateHTTPListener(why),
        }
    }
}

/// Starts the `/metrics` HTTP listener (its own thread) and installs the
/// global recorder.
pub fn install(listen: SocketAddr, interval: Duration) -> Result<(), MetricsError> {
    PrometheusBuilder::new()
        .with_http_listener(listen)
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &LATENCY_BUCKETS)
        .map_err(|source| MetricsError { listen, source })?
        // A top-K offender that left the top K stops being reported.
        .idle_timeout(
            MetricKindMask::GAUGE,
            Some(interval * 3 + Duration::from_secs(1)),
        )
        .install()
        .map_err(|source| MetricsError { listen, source })?;
    describe();
    Ok(())
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!(
        "flowgate_packets_total",
        "Packets decided by a shard (after the kernel blocklist)"
    );
    describe_counter!(
        "flowgate_bytes_total",
        Unit::Bytes,
        "Bytes decided by a shard"
    );
    describe_counter!(
        "flowgate_packets_allowed_total",
        "Packets allowed (forwarded)"
    );
    describe_counter!(
        "flowgate_signature_scan_errors_total",
        "Hyperscan scans that failed: HTTP request data that was not inspected"
    );
    describe_counter!(
        "flowgate_http_requests_total",
        "HTTP request heads read and scanned"
    );
    describe_counter!(
        "flowgate_inspection_skipped_total",
        "Inspections skipped because the same bytes were found clean before, by what (target, header_line, value): no verdict changes"
    );
    describe_counter!(
        "flowgate_http_body_bytes_total",
        Unit::Bytes,
        "HTTP request body bytes inspected (chunked coding removed)"
    );
    describe_counter!(
        "flowgate_http_lost_total",
        "HTTP flows that could no longer be followed, by reason (not_http and tunnel are not HTTP to begin with; the rest fall under signatures.unfollowable)"
    );
    describe_counter!(
        "flowgate_http_ooo_overflow_total",
        "Out-of-order segments not held (past the per-flow bounds or the shard's buffer budget)"
    );
    describe_counter!(
        "flowgate_http_evicted_busy_total",
        "HTTP flows evicted from a full table bucket in the middle of a request"
    );
    describe_counter!(
        "flowgate_packets_dropped_total",
        "Packets dropped in userspace, by the rule that decided (in detect mode: would drop)"
    );
    describe_counter!(
        "flowgate_bytes_dropped_total",
        Unit::Bytes,
        "Bytes dropped in userspace, by rule"
    );
    describe_counter!(
        "flowgate_alerts_total",
        "Alerts (block episodes started), by rule"
    );
    describe_counter!(
        "flowgate_malformed_packets_total",
        "Frames that failed to decode, by kind"
    );
    describe_counter!(
        "flowgate_table_evictions_total",
        "Entries evicted from a full state table"
    );
    describe_gauge!(
        "flowgate_table_entries",
        "Entries held in a shard's state table"
    );
    describe_gauge!(
        "flowgate_blocked_sources",
        "Sources a shard currently blocks"
    );
    describe_histogram!(
        "flowgate_shard_batch_seconds",
        Unit::Seconds,
        "Time a shard takes to decide one batch"
    );
    describe_histogram!(
        "flowgate_verdict_latency_seconds",
        Unit::Seconds,
        "From RX to verdict back at the I/O thread, per batch"
    );
    describe_gauge!(
        "flowgate_packet_latency_seconds",
        Unit::Seconds,
        "Per-packet latency from RX to the verdict applied (frame handed to TX or recycled), quantiles since start (HDR-style histogram, within 6.25 %)"
    );
    describe_counter!(
        "flowgate_packet_latency_packets_total",
        "Packets the per-packet latency quantiles cover"
    );
    describe_counter!(
        "flowgate_rx_packets_total",
        "Frames received on an AF_XDP socket"
    );
    describe_counter!(
        "flowgate_rx_bytes_total",
        Unit::Bytes,
        "Bytes received on an AF_XDP socket"
    );
    describe_counter!(
        "flowgate_tx_packets_total",
        "Frames transmitted (forwarded) on an AF_XDP socket"
    );
    describe_counter!(
        "flowgate_queue_full_total",
        "Batches a starved shard could not take (queue full or its frame share held); live.queue_full applied"
    );
    describe_counter!(
        "flowgate_alert_log_errors_total",
        "Alert-log faults survived: write_failed (e.g. disk full), reopened (deleted or replaced while open)"
    );
    describe_counter!(
        "flowgate_alert_lines_lost_total",
        "Alert-log lines not written because a write failed"
    );
    describe_counter!(
        "flowgate_queue_full_packets_total",
        "Packets of batches a starved shard could not take, by policy: bypass (forwarded uninspected) or drop"
    );
    describe_counter!(
        "flowgate_xsk_rx_dropped_total",
        "Frames the kernel dropped for an AF_XDP socket (RX ring or fill ring empty)"
    );
    describe_counter!(
        "flowgate_xdp_packets_total",
        "The XDP program's per-CPU counters, summed over CPUs, by action"
    );
    describe_counter!(
        "flowgate_kernel_block_errors_total",
        "Blocks the kernel blocklist refused (full); the shard still drops the source"
    );
    describe_gauge!(
        "flowgate_kernel_blocklist_entries",
        "Unexpired entries in the kernel blocklist"
    );
    describe_gauge!(
        "flowgate_reload_generation",
        "Configuration generation (0 at start, +1 per successful reload)"
    );
    describe_counter!("flowgate_reloads_total", "Reload attempts, by result");
    describe_counter!(
        "flowgate_operator_actions_total",
        "Control-socket requests (flowgate ctl), by verb and result"
    );
    describe_gauge!(
        "flowgate_top_offender_packets",
        "Packets decided against the top offenders (rank 1..10) since start"
    );
    describe_counter!(
        "flowgate_audit_dropped_total",
        "Audit records not written to SQLite (busy or full)"
    );
}

/// Publishes one shard's counters as deltas against the last publish.
pub struct ShardPublisher {
    shard: String,
    last: Stats,
    rules: Option<Arc<Ruleset>>,
}

impl ShardPublisher {
    /// A publisher for shard number `shard` (its `shard` label). Creates
    /// the shard's counter series at 0.
    pub fn new(shard: usize) -> ShardPublisher {
        // Series exist from the start, at 0, so rates and dashboards have
        // data before the first malformed frame or eviction.
        let sh = shard.to_string();
        for name in [
            "flowgate_packets_total",
            "flowgate_bytes_total",
            "flowgate_packets_allowed_total",
            "flowgate_signature_scan_errors_total",
            "flowgate_http_requests_total",
            "flowgate_http_body_bytes_total",
            "flowgate_http_ooo_overflow_total",
            "flowgate_http_evicted_busy_total",
        ] {
            counter!(name, "shard" => sh.clone()).absolute(0);
        }
        for (what, _) in crate::engine::SkippedClean::default().labelled() {
            counter!("flowgate_inspection_skipped_total", "shard" => sh.clone(), "what" => what)
                .absolute(0);
        }
        for lost in crate::stream::Lost::ALL {
            counter!("flowgate_http_lost_total", "shard" => sh.clone(), "reason" => lost.label())
                .absolute(0);
        }
        for m in crate::packet::Malformed::ALL {
            counter!("flowgate_malformed_packets_total", "shard" => sh.clone(), "kind" => m.name())
                .absolute(0);
        }
        for table in ["sources", "blocklist", "flows"] {
            counter!("flowgate_table_evictions_total", "shard" => sh.clone(), "table" => table)
                .absolute(0);
        }
        ShardPublisher {
            shard: shard.to_string(),
            last: Stats::default(),
            rules: None,
        }
    }

    /// Rule names for the `name` label (refreshed on reload).
    pub fn set_rules(&mut self, rules: Arc<Ruleset>) {
        self.rules = Some(rules);
    }

    /// Publishes `now`, the shard's cumulative counters, as increments over
    /// the last publish, and sets the shard's table gauges to the entries
    /// held now (`blocked`, `sources`, `flows`). Call every
    /// `metrics.interval`, not per packet.
    pub fn publish(&mut self, now: &Stats, blocked: usize, sources: usize, flows: usize) {
        let sh = self.shard.clone();
        let l = &self.last;
        let inc = |name: &'static str, cur: u64, old: u64| {
            if cur > old {
                counter!(name, "shard" => sh.clone()).increment(cur - old);
            }
        };
        inc("flowgate_packets_total", now.packets, l.packets);
        inc("flowgate_bytes_total", now.bytes, l.bytes);
        inc("flowgate_packets_allowed_total", now.allowed, l.allowed);
        inc(
            "flowgate_signature_scan_errors_total",
            now.signature_scan_errors,
            l.signature_scan_errors,
        );
        inc(
            "flowgate_http_requests_total",
            now.http_requests,
            l.http_requests,
        );
        let was = l.skipped_clean.labelled();
        for ((what, cur), (_, old)) in now.skipped_clean.labelled().into_iter().zip(was) {
            if cur > old {
                counter!("flowgate_inspection_skipped_total", "shard" => sh.clone(), "what" => what)
                    .increment(cur - old);
            }
        }
        inc(
            "flowgate_http_body_bytes_total",
            now.http_body_bytes,
            l.http_body_bytes,
        );
        inc(
            "flowgate_http_ooo_overflow_total",
            now.ooo_overflow,
            l.ooo_overflow,
        );
        inc(
            "flowgate_http_evicted_busy_total",
            now.http_evicted_busy,
            l.http_evicted_busy,
        );
        for (reason, &n) in &now.http_lost {
            let old = l.http_lost.get(reason).copied().unwrap_or(0);
            if n > old {
                counter!("flowgate_http_lost_total", "shard" => sh.clone(), "reason" => *reason)
                    .increment(n - old);
            }
        }
        for (kind, &n) in &now.malformed {
            let old = l.malformed.get(kind).copied().unwrap_or(0);
            if n > old {
                counter!("flowgate_malformed_packets_total", "shard" => sh.clone(), "kind" => *kind)
                    .increment(n - old);
            }
        }
        for (&rule, c) in &now.rules {
            let old = l.rules.get(&rule).cloned().unwrap_or_default();
            let name = self
                .rules
                .as_ref()
                .and_then(|r| r.book.get(rule))
                .map(|m| m.name.to_string())
                .unwrap_or_default();
            let labels = [
                ("shard", sh.clone()),
                ("rule", rule.to_string()),
                ("name", name),
            ];
            if c.packets > old.packets {
                counter!("flowgate_packets_dropped_total", &labels)
                    .increment(c.packets - old.packets);
                counter!("flowgate_bytes_dropped_total", &labels).increment(c.bytes - old.bytes);
            }
            if c.episodes > old.episodes {
                counter!("flowgate_alerts_total", &labels).increment(c.episodes - old.episodes);
            }
        }
        for (table, t, o) in [
            ("sources", &now.sources_table, &l.sources_table),
            ("blocklist", &now.blocklist_table, &l.blocklist_table),
            ("flows", &now.flows_table, &l.flows_table),
        ] {
            if t.evictions > o.evictions {
                counter!("flowgate_table_evictions_total", "shard" => sh.clone(), "table" => table)
                    .increment(t.evictions - o.evictions);
            }
        }
        gauge!("flowgate_table_entries", "shard" => sh.clone(), "table" => "sources")
            .set(sources as f64);
        gauge!("flowgate_table_entries", "shard" => sh.clone(), "table" => "blocklist")
            .set(blocked as f64);
        gauge!("flowgate_table_entries", "shard" => sh.clone(), "table" => "flows")
            .set(flows as f64);
        gauge!("flowgate_blocked_sources", "shard" => sh).set(blocked as f64);
        self.last = now.clone();
    }
}

/// Handle for one shard's batch-time histogram (looked up once: recording
/// through it does not touch the registry).
pub fn shard_batch(shard: usize) -> metrics::Histogram {
    histogram!("flowgate_shard_batch_seconds", "shard" => shard.to_string())
}

/// Exports the XDP program's counters (absolute values).
pub fn xdp_counters(c: &[u64; crate::xdp::COUNTERS]) {
    for (name, v) in crate::xdp::COUNTER_NAMES.iter().zip(c) {
        counter!("flowgate_xdp_packets_total", "action" => *name).absolute(*v);
    }
}

/// Top offenders by packets decided against them.
pub fn top_offenders(top: &[crate::output::Offender]) {
    for (i, o) in top.iter().take(TOP_K).enumerate() {
        gauge!("flowgate_top_offender_packets", "rank" => (i + 1).to_string(), "src" => o.src.clone())
            .set(o.packets as f64);
    }
}

/// Per (interface, queue) counts of one I/O thread, published as deltas.
#[derive(Default, Clone)]
pub struct PortCounts {
    /// Frames received on this interface and queue.
    pub rx_packets: u64,
    /// Bytes of those frames.
    pub rx_bytes: u64,
    /// Frames transmitted on it (forwarded from the peer port).
    pub tx_packets: u64,
    /// Frames the kernel dropped for this socket (RX ring full or no fill
    /// ring entry), from the socket's own statistics.
    pub xsk_rx_dropped: u64,
}

/// Publishes one I/O thread's [`PortCounts`] for one interface and queue
/// as deltas against the last publish.
pub struct PortPublisher {
    labels: [(&'static str, String); 2],
    last: PortCounts,
}

impl PortPublisher {
    /// A publisher labelled `interface` = `iface`, `queue` = `queue`.
    pub fn new(iface: &str, queue: u32) -> PortPublisher {
        let labels = [
            ("interface", iface.to_string()),
            ("queue", queue.to_string()),
        ];
        PortPublisher {
            labels,
            last: PortCounts::default(),
        }
    }

    /// Creates the counter series at 0, so rates exist before the first
    /// event. Called by the I/O thread when it starts: the ports are set
    /// up before the capability drop, the metrics recorder only after it,
    /// and a series created before the recorder is lost.
    pub fn start(&self) {
        for name in [
            "flowgate_rx_packets_total",
            "flowgate_rx_bytes_total",
            "flowgate_tx_packets_total",
            "flowgate_xsk_rx_dropped_total",
        ] {
            counter!(name, &self.labels).absolute(0);
        }
    }

    /// Publishes `now` (cumulative counts) as increments over the last
    /// publish.
    pub fn publish(&mut self, now: &PortCounts) {
        let l = &self.last;
        let put = |name: &'static str, cur: u64, old: u64| {
            if cur > old {
                counter!(name, &self.labels).increment(cur - old);
            }
        };
        put("flowgate_rx_packets_total", now.rx_packets, l.rx_packets);
        put("flowgate_rx_bytes_total", now.rx_bytes, l.rx_bytes);
        put("flowgate_tx_packets_total", now.tx_packets, l.tx_packets);
        put(
            "flowgate_xsk_rx_dropped_total",
            now.xsk_rx_dropped,
            l.xsk_rx_dropped,
        );
        self.last = now.clone();
    }
}

/// Handle for one queue's count of batches a full shard queue refused.
pub fn queue_full(queue: u32) -> metrics::Counter {
    let c = counter!("flowgate_queue_full_total", "queue" => queue.to_string());
    c.absolute(0);
    c
}

/// Handle for one queue's count of packets a starved shard could not take,
/// labelled with the policy applied to them (`bypass` or `drop`).
pub fn queue_full_packets(queue: u32, policy: &'static str) -> metrics::Counter {
    let c = counter!("flowgate_queue_full_packets_total", "queue" => queue.to_string(), "policy" => policy);
    c.absolute(0);
    c
}

/// Handle for one queue's verdict-latency histogram.
pub fn verdict_latency(queue: u32) -> metrics::Histogram {
    histogram!("flowgate_verdict_latency_seconds", "queue" => queue.to_string())
}

/// Handles for one queue's per-packet latency quantiles (RX to the verdict
/// applied and the frame handed to TX or recycled), in seconds, over the
/// run so far, and the count of packets they cover; see `live/latency.rs`.
pub fn packet_latency(
    queue: u32,
    quantiles: &[&'static str],
) -> (Vec<metrics::Gauge>, metrics::Counter) {
    let q = queue.to_string();
    let gauges = quantiles
        .iter()
        .map(|&l| gauge!("flowgate_packet_latency_seconds", "queue" => q.clone(), "quantile" => l))
        .collect();
    let count = counter!("flowgate_packet_latency_packets_total", "queue" => q);
    count.absolute(0);
    (gauges, count)
}

/// At start: generation 0, no reloads yet.
pub fn started() {
    counter!("flowgate_kernel_block_errors_total").absolute(0);
    gauge!("flowgate_reload_generation").set(0.0);
    for result in ["ok", "failed"] {
        counter!("flowgate_reloads_total", "result" => result).absolute(0);
    }
}

/// An operator action through the control socket, by verb (`block`,
/// `unblock`, `allow_add`, ..., `invalid` for a request that did not parse)
/// and result.
pub fn operator_action(verb: &'static str, ok: bool) {
    counter!("flowgate_operator_actions_total", "verb" => verb, "result" => if ok { "ok" } else { "error" })
        .increment(1);
}

/// Reload outcome.
pub fn reload(ok: bool, generation: u64) {
    counter!("flowgate_reloads_total", "result" => if ok { "ok" } else { "failed" }).increment(1);
    gauge!("flowgate_reload_generation").set(generation as f64);
}
