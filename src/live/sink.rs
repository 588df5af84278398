//! Where live decisions leave the process: the alert log (and SQLite), the
//! kernel blocklist, and the gauges that are not per shard (XDP counters,
//! top offenders, kernel blocklist size).

use crate::alert::Event;
use crate::output::{Collector, OutputError, Recorder, ShardOutput};
use crate::xdp::Blocklist;
use crossbeam_channel::{Receiver, RecvTimeoutError};
use std::path::PathBuf;
use std::time::{Duration, Instant};

pub enum ToSink {
    Events(Vec<Event>),
    /// A shard's per-destination counts, merged here across shards.
    Victims(crate::output::VictimReport),
    /// SIGHUP: reopen the alert log (logrotate moved it).
    Reopen,
    /// A reload's `[detect.victim]`: thresholds for the next epochs, and
    /// the SYN guards' hold and cap for their next extension.
    Victim(crate::detect::victim::VictimConfig),
    /// A kernel-map change or look from the control socket, answered.
    Kernel(
        super::control::KernelOp,
        crossbeam_channel::Sender<Result<serde_json::Value, String>>,
    ),
}

pub struct Sink {
    pub recorder: Recorder,
    pub blocklist: Option<Blocklist>,
    /// The kernel allowlist maps (operator changes, reloads).
    pub allowlist: Option<crate::xdp::Allowlist>,
    /// Recent operator unblocks: older alerts in flight do not re-block.
    pub cleared: super::control::Cleared,
    pub pin_dir: PathBuf,
    pub rx: Receiver<ToSink>,
    pub publish_every: Duration,
    pub metrics: bool,
    pub shared: std::sync::Arc<super::Shared>,
    /// Adds the shards' per-destination counts and decides victim floods.
    pub victims: crate::detect::victim::VictimMerger,
    /// The victims' SYN guards in XDP (prevent mode with
    /// `detect.victim.syn_guard`).
    pub guards: Option<super::guard::Guards>,
    /// Block starts and ends for the bgp thread (`bgp.enabled`).
    pub bgp: Option<crate::bgp::BgpSender>,
}

/// What the sink did, for the exit summary.
#[derive(Default, Debug)]
pub struct SinkReport {
    /// Alert events written to the alert log.
    pub alerts: u64,
    /// Blocks inserted into the kernel blocklist.
    pub kernel_blocks: u64,
    /// Blocks the kernel blocklist refused (full); the shard still drops.
    pub kernel_block_errors: u64,
    /// The first alert-log write error of the run.
    pub write_error: Option<OutputError>,
    /// Alert-log faults survived: failed writes, lines lost, reopens.
    pub alert_faults: crate::output::AlertLogFaults,
}

impl Sink {
    pub fn run(mut self) -> SinkReport {
        let mut rep = SinkReport::default();
        let mut last = Instant::now();
        let mut last_guard = Instant::now();
        let wait = self.publish_every.min(Duration::from_secs(1));
        loop {
            match self.rx.recv_timeout(wait) {
                Ok(ToSink::Events(events)) => {
                    for ev in &events {
                        match ev {
                            Event::Alert(a) => {
                                if let (true, Some(until)) = (a.blocked, a.block_until) {
                                    if !self.cleared.covers(a.src, a.ts) {
                                        self.block(a.src, until, &mut rep);
                                        crate::bgp::hook::started(
                                            &self.bgp, a.src, until, a.rule.id,
                                        );
                                    }
                                }
                            }
                            // A reloaded allowlist ended it; operator
                            // actions clear the kernel themselves.
                            Event::BlockEnd(e) => {
                                if e.reason == crate::alert::EndReason::Allowlisted
                                    && e.by.is_none()
                                {
                                    if let Some(bl) = self.blocklist.as_mut() {
                                        let _ = bl.unblock(e.src);
                                    }
                                }
                                crate::bgp::hook::ended(&self.bgp, e);
                            }
                        }
                    }
                    self.recorder.collect(ShardOutput {
                        events,
                        verdicts: Vec::new(),
                        victims: None,
                    });
                    // Operators tail the log: write through per delivery
                    // (to the file the path names now).
                    self.recorder.check_alert_path();
                    if let Err(e) = self.recorder.flush_alerts() {
                        rep.write_error.get_or_insert(e);
                    }
                }
                Ok(ToSink::Victims((shard, upto, epochs))) => {
                    let alerts = self.victims.add(shard, upto, epochs);
                    for a in &alerts {
                        if a.rule.id == crate::rules::VICTIM_SYN_FLOOD
                            || a.rule.id == crate::rules::VICTIM_HALF_OPEN
                        {
                            if let Some(g) = self.guards.as_mut() {
                                g.start(a.dst);
                            }
                            crate::bgp::hook::victim(&self.bgp, a.dst);
                        }
                        // Not a shard's alert: counted here, labelled so.
                        metrics::counter!("flowgate_alerts_total", "shard" => "all",
                            "rule" => a.rule.id.to_string(), "name" => a.rule.name.to_string())
                        .increment(1);
                    }
                    if !alerts.is_empty() {
                        self.recorder.collect(ShardOutput {
                            events: alerts.into_iter().map(Event::Alert).collect(),
                            verdicts: Vec::new(),
                            victims: None,
                        });
                        self.recorder.check_alert_path();
                        if let Err(e) = self.recorder.flush_alerts() {
                            rep.write_error.get_or_insert(e);
                        }
                    }
                }
                Ok(ToSink::Kernel(op, reply)) => {
                    // An operator's block is announced like a detector's
                    // (under rule 9100099, so `bgp.rules` can exclude it);
                    // its end comes back as a BlockEnd event.
                    let manual = match &op {
                        super::control::KernelOp::Block { src, until } => Some((*src, *until)),
                        _ => None,
                    };
                    let r = super::control::kernel(
                        self.blocklist.as_mut(),
                        self.allowlist.as_mut(),
                        &mut self.cleared,
                        op,
                    );
                    if let (Ok(_), Some((src, until))) = (&r, manual) {
                        crate::bgp::hook::started(
                            &self.bgp,
                            src,
                            until,
                            crate::rules::OPERATOR_BLOCK,
                        );
                    }
                    let _ = reply.send(r);
                }
                Ok(ToSink::Victim(v)) => {
                    if let Some(g) = self.guards.as_mut() {
                        g.set_config(v.clone());
                    }
                    self.victims.set_config(v);
                }
                Ok(ToSink::Reopen) => match self.recorder.reopen_alerts() {
                    Ok(()) => tracing::info!("alert log reopened"),
                    Err(e) => tracing::error!("reopening the alert log: {e}"),
                },
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            if last_guard.elapsed() >= Duration::from_secs(1) {
                last_guard = Instant::now();
                if let Some(g) = self.guards.as_mut() {
                    g.tick();
                }
            }
            if last.elapsed() >= self.publish_every {
                last = Instant::now();
                // A deleted log is noticed even while no alert comes.
                self.recorder.check_alert_path();
                if self.metrics {
                    self.publish();
                }
            }
        }
        rep.alerts = self.recorder.alerts_written;
        if let Err(e) = self.recorder.flush() {
            rep.write_error.get_or_insert(e);
        }
        if self.metrics {
            self.publish();
        }
        rep.alert_faults = self.recorder.alert_faults.clone();
        rep
    }

    /// Mirrors a shard's block into the kernel so the driver drops the
    /// source's later packets. The shard keeps dropping it too (its own
    /// mirror) for the frames already in flight.
    fn block(&mut self, src: std::net::IpAddr, until: crate::packet::Ts, rep: &mut SinkReport) {
        let Some(bl) = self.blocklist.as_mut() else {
            return;
        };
        // Live packet time is the wall clock at RX; the kernel compares
        // against CLOCK_MONOTONIC, so hand it the time left.
        let left = Duration::from_nanos(until.saturating_sub(super::wall_ns()));
        if left.is_zero() {
            return;
        }
        match bl.block(src, left) {
            Ok(()) => rep.kernel_blocks += 1,
            Err(e) => {
                rep.kernel_block_errors += 1;
                metrics::counter!("flowgate_kernel_block_errors_total").increment(1);
                if rep.kernel_block_errors == 1 {
                    tracing::error!("kernel blocklist: {e} (the shard still drops the source)");
                }
            }
        }
    }

    fn publish(&mut self) {
        if let Some(bl) = self.blocklist.as_mut() {
            bl.sweep();
        }
        // Re-set each round: idle gauges expire from the exporter.
        let generation = self
            .shared
            .generation
            .load(std::sync::atomic::Ordering::Relaxed);
        metrics::gauge!("flowgate_reload_generation").set(generation as f64);
        if let Ok(c) = crate::xdp::counters(&self.pin_dir) {
            crate::metrics::xdp_counters(&c);
        }
        if let Some(bl) = &self.blocklist {
            let (_, live) = bl.len();
            metrics::gauge!("flowgate_kernel_blocklist_entries").set(live as f64);
        }
        crate::metrics::top_offenders(&self.recorder.top_offenders(crate::metrics::TOP_K));
        let f = &self.recorder.alert_faults;
        metrics::counter!("flowgate_alert_log_errors_total", "kind" => "write_failed")
            .absolute(f.write_errors);
        metrics::counter!("flowgate_alert_log_errors_total", "kind" => "reopened")
            .absolute(f.reopened);
        metrics::counter!("flowgate_alert_lines_lost_total").absolute(f.lines_lost);
        if let Some(a) = &self.recorder.audit {
            use std::sync::atomic::Ordering::Relaxed;
            let st = &a.stats;
            metrics::counter!("flowgate_audit_dropped_total", "why" => "queue_full")
                .absolute(st.dropped.load(Relaxed));
            metrics::counter!("flowgate_audit_dropped_total", "why" => "write_failed")
                .absolute(st.failed.load(Relaxed));
        }
    }
}
