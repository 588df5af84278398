//! A live shard worker: the same `ShardEngine` as `analyze`, fed frame
//! descriptors that point into the UMEM of the I/O thread that received
//! them. The worker reads the frame in place (no copy), writes the verdict
//! into the descriptor's slot and hands the batch back to its I/O thread.
//!
//! Fault injection, for tests only: `FLOWGATE_FAULT_SHARD_SLEEP=SHARD:MICROS`
//! in the environment makes shard SHARD sleep MICROS after every batch, to
//! starve it (`tests/faults.rs` shows the queue-full policy with it). Unset
//! in production; a value that does not parse is ignored with a warning.

use super::Shared;
use crate::alert::Event;
use crate::config::Config;
use crate::engine::{RawFrame, ShardEngine, Verdict};
use crate::metrics::ShardPublisher;
use crate::packet::{LinkType, Ts};
use crate::ruleset::Ruleset;
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};
use xsk_rs::FrameDesc;

/// Frames of one RX round for one shard, each an owned `Frame` in a slot
/// (see `frames.rs`).
pub type Batch = super::frames::Batch<FrameDesc>;

pub enum ToShard {
    Batch(Batch),
    Reload(Arc<Config>, Arc<Ruleset>),
    /// Close open episodes at this time and stop.
    Finish(Ts),
    /// An operator command (control socket), answered on the sender.
    Control(
        super::control::ShardCmd,
        crossbeam_channel::Sender<super::control::ShardReply>,
    ),
}

pub struct Worker {
    pub id: usize,
    pub engine: ShardEngine,
    pub rx: Receiver<ToShard>,
    /// Back to each I/O thread, by `Batch::io`.
    pub back: Vec<Sender<Batch>>,
    /// Each I/O thread's wake-up, by `Batch::io`.
    pub wakers: Vec<Arc<super::io::Waker>>,
    pub events: Sender<Vec<Event>>,
    pub shared: Arc<Shared>,
    pub publish_every: Duration,
    /// Rule names for metric labels.
    pub rules: Arc<Ruleset>,
    /// Per-destination counts go to the sink, which merges the shards'.
    pub sink: Sender<super::sink::ToSink>,
}

/// The per-batch sleep `FLOWGATE_FAULT_SHARD_SLEEP` asks of shard `id`.
fn injected_sleep(id: usize) -> Option<Duration> {
    let v = std::env::var("FLOWGATE_FAULT_SHARD_SLEEP").ok()?;
    let parsed = v.split_once(':').and_then(|(sh, us)| {
        Some((
            sh.trim().parse::<usize>().ok()?,
            us.trim().parse::<u64>().ok()?,
        ))
    });
    match parsed {
        Some((sh, us)) if sh == id => {
            tracing::warn!(
                "fault injection: shard {id} sleeps {us} us per batch (FLOWGATE_FAULT_SHARD_SLEEP)"
            );
            Some(Duration::from_micros(us))
        }
        Some(_) => None,
        None => {
            if id == 0 {
                tracing::warn!("FLOWGATE_FAULT_SHARD_SLEEP={v:?} ignored: expected SHARD:MICROS");
            }
            None
        }
    }
}

impl Worker {
    pub fn run(mut self) {
        let starve = injected_sleep(self.id);
        let mut publisher = ShardPublisher::new(self.id);
        publisher.set_rules(self.rules.clone());
        let batch_time = crate::metrics::shard_batch(self.id);
        let mut idx = 0u64;
        let mut last_publish = Instant::now();
        let mut victims_upto: Ts = 0;
        loop {
            let msg = match self.rx.recv_timeout(self.publish_every) {
                Ok(m) => Some(m),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => break,
            };
            match msg {
                Some(ToShard::Batch(mut b)) => {
                    let started = Instant::now();
                    let umem = &self.shared.umems[b.io];
                    for s in b.slots_mut() {
                        idx += 1;
                        // SAFETY: the frame came off this UMEM's RX ring and
                        // the slot's `Frame` is its only owner: the I/O
                        // thread puts it on a TX or fill ring only after
                        // this batch comes back, so nothing else reads or
                        // writes the frame meanwhile.
                        let data = unsafe { umem.data(s.frame.desc()) };
                        let data = data.contents();
                        let v = self.engine.process(&RawFrame {
                            idx,
                            ts: s.ts,
                            link: LinkType::Ethernet,
                            data,
                            wire_len: data.len() as u32,
                        });
                        s.allow = v == Verdict::Allow;
                    }
                    if let Some(d) = starve {
                        std::thread::sleep(d);
                    }
                    batch_time.record(started.elapsed().as_secs_f64());
                    let io = b.io;
                    // The I/O thread drains its return queue every loop and
                    // never waits on us, so this cannot deadlock.
                    if self.back[io].send(b).is_err() {
                        break;
                    }
                    // The I/O thread may be parked in poll(2).
                    if let Some(w) = self.wakers.get(io) {
                        w.wake();
                    }
                }
                Some(ToShard::Reload(cfg, rules)) => {
                    publisher.set_rules(rules.clone());
                    self.engine.reload(cfg, rules);
                }
                Some(ToShard::Control(cmd, reply)) => {
                    let _ = reply.send(super::control::apply(&mut self.engine, cmd));
                }
                Some(ToShard::Finish(end)) => {
                    self.engine.finish(end);
                    let _ = self.events.send(self.engine.take_events());
                    let last = (self.id, Ts::MAX, self.engine.take_victims());
                    let _ = self.sink.send(super::sink::ToSink::Victims(last));
                    break;
                }
                None => {}
            }
            // Timers run on the wall clock (live packet time): a block ends
            // at its expiry even if its source stays silent. The receive
            // timeout above bounds the delay by `metrics.interval`.
            let now = super::wall_ns();
            if now >= self.engine.poll_timeout() {
                self.engine.handle_timeout(now);
            }
            // Each second of wall time, hand over the per-destination counts
            // (never waiting: a full sink queue loses one report, counted).
            let epoch = now - now % crate::detect::victim::EPOCH_NS;
            if epoch > victims_upto {
                victims_upto = epoch;
                let report = (self.id, epoch, self.engine.take_victims());
                if self
                    .sink
                    .try_send(super::sink::ToSink::Victims(report))
                    .is_err()
                {
                    tracing::debug!("shard {}: victim counts dropped (sink busy)", self.id);
                }
            }
            // Never wait on the alert writer: if it is behind (slow disk),
            // events stay in the engine until there is room.
            if self.engine.has_events() && !self.events.is_full() {
                let _ = self.events.try_send(self.engine.take_events());
            }
            if last_publish.elapsed() >= self.publish_every {
                last_publish = Instant::now();
                publisher.publish(
                    &self.engine.stats(),
                    self.engine.blocked_sources(),
                    self.engine.tracked_sources(),
                    self.engine.tracked_flows(),
                );
            }
        }
        publisher.publish(
            &self.engine.stats(),
            self.engine.blocked_sources(),
            self.engine.tracked_sources(),
            self.engine.tracked_flows(),
        );
        let mut total = self.shared.totals.lock().unwrap_or_else(|e| e.into_inner());
        total.add(&self.engine.stats());
    }
}
