//! The offline shard pipeline: one reader thread picks each packet's shard
//! from its source address and hands packets over in batches on bounded
//! queues; one worker thread per shard runs a `ShardEngine`; a collector
//! thread writes what the workers report.
//!
//! ```text
//! push() ─► batch[shard] ─► (bounded queue) ─► worker: ShardEngine ─► collector
//!    ▲                                            │
//!    └──────────── recycled batches ◄─────────────┘
//! ```

use crate::alert::Event;
use crate::config::Config;
use crate::detect::victim::VictimMerger;
use crate::engine::{RawFrame, ShardEngine, Stats};
use crate::output::{Collector, ShardOutput};
use crate::packet::{self, LinkType, Ts};
use crate::ruleset::Ruleset;
use crate::shard::Sharder;
use crossbeam_channel::{bounded, Receiver, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;

/// Packets for one shard, stored back to back in one buffer so a batch
/// costs no allocation once the pool is warm.
#[derive(Default)]
pub struct Batch {
    data: Vec<u8>,
    frames: Vec<FrameMeta>,
}

#[derive(Clone, Copy)]
struct FrameMeta {
    idx: u64,
    ts: Ts,
    link: LinkType,
    off: u32,
    len: u32,
    wire_len: u32,
}

impl Batch {
    fn clear(&mut self) {
        self.data.clear();
        self.frames.clear();
    }

    fn frames(&self) -> impl Iterator<Item = RawFrame<'_>> {
        self.frames.iter().map(|m| RawFrame {
            idx: m.idx,
            ts: m.ts,
            link: m.link,
            data: self
                .data
                .get(m.off as usize..(m.off + m.len) as usize)
                .unwrap_or(&[]),
            wire_len: m.wire_len,
        })
    }
}

enum ToShard {
    Batch(Batch),
    /// Packet time reached this point of the timer grid: every packet
    /// before it has been sent (`ShardEngine::handle_timeout`).
    Tick(Ts),
    /// A new configuration and rule set (reload): applied between
    /// batches, state kept.
    Reload(Arc<Config>, Arc<Ruleset>),
    /// Input ended at this packet time: close open episodes and stop.
    Finish(Ts),
}

/// Why the offline pipeline could not start or finish.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// The OS refused to start a shard or collector thread.
    #[error("cannot start shard threads: {0}")]
    Spawn(#[source] std::io::Error),
    /// A shard could not get Hyperscan scratch for the signatures.
    #[error("cannot start shard threads: {0}")]
    Scratch(#[from] crate::signature::ScratchError),
    /// Shard worker number `.0` panicked: its counters and unreported
    /// events are lost.
    #[error("shard {0} worker panicked")]
    ShardPanicked(usize),
    /// The collector thread panicked: the outputs are incomplete.
    #[error("collector thread panicked")]
    CollectorPanicked,
}

/// The offline front end: the caller pushes frames in capture order,
/// each goes to its source's shard worker (a [`ShardEngine`] on its own
/// thread) in batches, and one collector thread receives what the workers
/// report. Frames are numbered 1, 2, ... in push order (their `pcap_cnt`).
/// [`finish`](Self::finish) returns the results; a pipeline dropped
/// without it leaves its threads to run out unjoined.
pub struct Pipeline<C: Collector> {
    shards: usize,
    batch_size: usize,
    to_shard: Vec<Sender<ToShard>>,
    filling: Vec<Batch>,
    pool: Receiver<Batch>,
    workers: Vec<JoinHandle<Stats>>,
    collector: Option<JoinHandle<C>>,
    next_idx: u64,
    last_ts: Ts,
    sharder: Sharder,
    /// The next timer-grid point; `None` before the first packet.
    next_tick: Option<Ts>,
}

/// A batch is sent once it holds this many bytes, whatever its frame
/// count: large records (up to `source::pcap::MAX_RECORD`) neither pile up
/// in memory nor overflow the batch's 32-bit offsets.
const BATCH_BYTES: usize = 8 << 20;

/// Spacing of the timer grid offline, in packet time. Every shard is handed
/// the same grid points at the same place in the packet sequence, so timers
/// fire identically for any shard count.
pub const TICK_NS: Ts = crate::packet::NANOS_PER_SEC;

impl<C: Collector> Pipeline<C> {
    /// Starts `cfg.shards()` shard workers and the collector thread running
    /// `collector`. With `record_verdicts` workers also report every
    /// frame's verdict (for `--verdicts` and `--write-allowed`), not only
    /// events.
    pub fn start(
        cfg: Arc<Config>,
        rules: Arc<Ruleset>,
        collector: C,
        record_verdicts: bool,
    ) -> Result<Pipeline<C>, PipelineError> {
        let shards = cfg.shards();
        let depth = cfg.engine.queue_batches;
        let (pool_tx, pool_rx) = bounded::<Batch>(shards * (depth + 2));
        let (out_tx, out_rx) = bounded::<ShardOutput>(shards * depth);
        let mut to_shard = Vec::with_capacity(shards);
        let mut workers = Vec::with_capacity(shards);
        for id in 0..shards {
            let (tx, rx) = bounded::<ToShard>(depth);
            to_shard.push(tx);
            let engine = ShardEngine::new(cfg.clone(), rules.clone())?;
            let (pool_tx, out_tx) = (pool_tx.clone(), out_tx.clone());
            workers.push(
                std::thread::Builder::new()
                    .name(format!("shard-{id}"))
                    .spawn(move || run_shard(id, engine, rx, pool_tx, out_tx, record_verdicts))
                    .map_err(PipelineError::Spawn)?,
            );
        }
        drop(out_tx);
        let mut victims = VictimMerger::new(cfg.detect.victim.clone(), shards, rules.clone());
        let collector = std::thread::Builder::new()
            .name("collector".into())
            .spawn(move || {
                let mut c = collector;
                for mut out in out_rx {
                    // Per-destination counts: merged here, across shards,
                    // once every shard has reported an epoch.
                    if let Some((shard, upto, epochs)) = out.victims.take() {
                        let alerts = victims.add(shard, upto, epochs);
                        if !alerts.is_empty() {
                            c.collect(ShardOutput {
                                events: alerts.into_iter().map(Event::Alert).collect(),
                                verdicts: Vec::new(),
                                victims: None,
                            });
                        }
                    }
                    c.collect(out);
                }
                c
            })
            .map_err(PipelineError::Spawn)?;
        Ok(Pipeline {
            shards,
            batch_size: cfg.engine.batch_size,
            to_shard,
            filling: (0..shards).map(|_| Batch::default()).collect(),
            pool: pool_rx,
            workers,
            collector: Some(collector),
            next_idx: 0,
            last_ts: 0,
            sharder: cfg.sharder(),
            next_tick: None,
        })
    }

    /// Number of shard workers.
    pub fn shards(&self) -> usize {
        self.shards
    }

    /// Packets pushed so far.
    pub fn packets(&self) -> u64 {
        self.next_idx
    }

    /// Hands one frame to its shard. Frames get consecutive 1-based indices.
    #[inline]
    pub fn push(&mut self, ts: Ts, link: LinkType, data: &[u8], wire_len: u32) {
        match self.next_tick {
            Some(t) if ts >= t => self.tick(ts),
            Some(_) => {}
            None => self.next_tick = Some(grid(ts) + TICK_NS),
        }
        self.next_idx += 1;
        self.last_ts = self.last_ts.max(ts);
        let shard = match packet::source_of(link, data) {
            Some(ip) => self.sharder.shard_of(ip, self.shards),
            // No source to key on: any shard decides the same; spread them.
            None => (self.next_idx % self.shards as u64) as usize,
        };
        let b = &mut self.filling[shard];
        let off = b.data.len() as u32;
        b.data.extend_from_slice(data);
        b.frames.push(FrameMeta {
            idx: self.next_idx,
            ts,
            link,
            off,
            len: data.len() as u32,
            wire_len,
        });
        if b.frames.len() >= self.batch_size || b.data.len() >= BATCH_BYTES {
            self.flush(shard);
        }
    }

    /// Packet time passed a grid point: whatever is batched goes first,
    /// then every shard is told the time.
    fn tick(&mut self, ts: Ts) {
        let at = grid(ts);
        for s in 0..self.shards {
            if !self.filling[s].frames.is_empty() {
                self.flush(s);
            }
            let _ = self.to_shard[s].send(ToShard::Tick(at));
        }
        self.next_tick = Some(at + TICK_NS);
    }

    fn flush(&mut self, shard: usize) {
        let fresh = self.pool.try_recv().unwrap_or_default();
        let full = std::mem::replace(&mut self.filling[shard], fresh);
        // A closed queue means the worker died; finish() reports it.
        let _ = self.to_shard[shard].send(ToShard::Batch(full));
    }

    /// Hands every shard a new configuration and rule set. Packets already
    /// queued are decided with the old ones; later ones with the new ones.
    pub fn reload(&mut self, cfg: Arc<Config>, rules: Arc<Ruleset>) {
        for s in 0..self.shards {
            if !self.filling[s].frames.is_empty() {
                self.flush(s);
            }
            let _ = self.to_shard[s].send(ToShard::Reload(cfg.clone(), rules.clone()));
        }
    }

    /// Flushes, closes every open episode at the last packet time, waits
    /// for the workers and returns their summed counters and the collector.
    pub fn finish(mut self) -> Result<(Stats, Vec<Stats>, C), PipelineError> {
        for s in 0..self.shards {
            if !self.filling[s].frames.is_empty() {
                self.flush(s);
            }
            let _ = self.to_shard[s].send(ToShard::Finish(self.last_ts));
        }
        self.to_shard.clear();
        let mut total = Stats::default();
        let mut per_shard = Vec::new();
        for (i, w) in self.workers.drain(..).enumerate() {
            let s = w.join().map_err(|_| PipelineError::ShardPanicked(i))?;
            total.add(&s);
            per_shard.push(s);
        }
        // `finish` takes `self`: the collector is still there.
        let c = self
            .collector
            .take()
            .ok_or(PipelineError::CollectorPanicked)?
            .join()
            .map_err(|_| PipelineError::CollectorPanicked)?;
        Ok((total, per_shard, c))
    }
}

/// The grid point at or before `ts`.
fn grid(ts: Ts) -> Ts {
    ts - ts % TICK_NS
}

fn run_shard(
    id: usize,
    mut engine: ShardEngine,
    rx: Receiver<ToShard>,
    pool: Sender<Batch>,
    out: Sender<ShardOutput>,
    record_verdicts: bool,
) -> Stats {
    let mut verdicts = Vec::new();
    for msg in rx {
        match msg {
            ToShard::Batch(mut b) => {
                for f in b.frames() {
                    let v = engine.process(&f);
                    if record_verdicts {
                        verdicts.push((f.idx, v));
                    }
                }
                if engine.has_events() || !verdicts.is_empty() {
                    let _ = out.send(ShardOutput {
                        events: engine.take_events(),
                        verdicts: std::mem::take(&mut verdicts),
                        victims: None,
                    });
                }
                b.clear();
                // A batch that carried a huge record is not kept around.
                if b.data.capacity() <= 2 * BATCH_BYTES {
                    let _ = pool.try_send(b);
                }
            }
            ToShard::Tick(now) => {
                engine.handle_timeout(now);
                // Always sent, even empty: the merge waits for every shard.
                let _ = out.send(ShardOutput {
                    events: engine.take_events(),
                    verdicts: Vec::new(),
                    victims: Some((id, now, engine.take_victims())),
                });
            }
            ToShard::Reload(c, r) => engine.reload(c, r),
            ToShard::Finish(end) => {
                engine.finish(end);
                let _ = out.send(ShardOutput {
                    events: engine.take_events(),
                    verdicts: Vec::new(),
                    victims: Some((id, Ts::MAX, engine.take_victims())),
                });
                break;
            }
        }
    }
    engine.stats()
}
