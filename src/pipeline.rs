//! The offline shard pipeline: the reader frames records and hands every
//! shard worker the same chunks of them; each worker decides the records
//! whose source it owns and keeps time with all of them.
//!
//! ```text
//! push() ─► Chunk (offsets into the mapped capture) ─► every worker ─► collector
//!                                                       │
//!                    shard ids: computed once per chunk, by its owner
//!                    (chunk n % shards) or whichever worker needs them first
//! ```
//!
//! Why this shape: the reader is the one thread that cannot be split (PCAP
//! records are only found one after the other), so it does as little as
//! possible: no copy (records are offsets into the mapped file), no packet
//! parsing and no hashing. Choosing each record's shard (parsing to its
//! source address and hashing it) is spread over the workers. Every worker
//! walks every record's timestamp, so each generates the same timer grid at
//! the same place in the packet sequence as the others, whatever the shard
//! count: that keeps results identical for `--shards 1` and `--shards N`.

use crate::alert::Event;
use crate::config::Config;
use crate::detect::victim::VictimMerger;
use crate::engine::{RawFrame, ShardEngine, Stats};
use crate::output::{Collector, ShardOutput};
use crate::packet::{self, LinkType, Ts};
use crate::ruleset::Ruleset;
use crate::shard::Sharder;
use crate::source::pcap::Mapping;
use crossbeam_channel::{bounded, Receiver, Sender};
use std::collections::VecDeque;
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;

/// A stretch of the capture, in order, shared by every shard worker.
pub struct Chunk {
    /// The position of this chunk in the capture (0, 1, ...): chunk `n`'s
    /// shard ids are computed by worker `n % shards` ahead of time.
    seq: u64,
    /// `pcap_cnt` of the first record.
    first_idx: u64,
    recs: Vec<Rec>,
    /// The mapped capture the records point into.
    map: Option<Mapping>,
    /// Copies of records that are not in a mapping (pipes, standard
    /// input, frames pushed by tests).
    owned: Vec<u8>,
    /// The shard of each record, computed once.
    shards: OnceLock<Vec<u16>>,
    /// Where the record list goes back to when the last worker is done
    /// with the chunk: the reader reuses it instead of allocating.
    recycle: Sender<Vec<Rec>>,
}

impl Drop for Chunk {
    fn drop(&mut self) {
        let mut recs = std::mem::take(&mut self.recs);
        recs.clear();
        let _ = self.recycle.try_send(recs);
    }
}

/// One record: where its bytes are and what the engine needs besides.
#[derive(Clone, Copy)]
struct Rec {
    ts: Ts,
    /// Offset in the mapping, or in `owned` when `!mapped`.
    off: usize,
    len: u32,
    wire_len: u32,
    link: LinkType,
    mapped: bool,
}

impl Chunk {
    /// The buffer `r`'s offset points into.
    fn base(&self, r: &Rec) -> &[u8] {
        match (&self.map, r.mapped) {
            (Some(m), true) => m,
            _ => &self.owned,
        }
    }

    fn data(&self, r: &Rec) -> &[u8] {
        let end = r.off + r.len as usize;
        self.base(r).get(r.off..end).unwrap_or(&[])
    }

    /// Hints that `r`'s link and network headers will be read soon.
    fn prefetch(&self, r: &Rec) {
        crate::prefetch::read(self.base(r), r.off);
        crate::prefetch::read(self.base(r), r.off + 63);
    }

    /// Each record's shard. Records without a source address to key on
    /// are spread by position: any shard decides them the same way.
    fn shard_ids(&self, sharder: &Sharder, shards: usize) -> &[u16] {
        self.shards.get_or_init(|| {
            self.recs
                .iter()
                .enumerate()
                .map(|(i, r)| {
                    let idx = self.first_idx + i as u64;
                    let s = match packet::source_of(r.link, self.data(r)) {
                        Some(ip) => sharder.shard_of(ip, shards),
                        None => (idx % shards as u64) as usize,
                    };
                    s as u16
                })
                .collect()
        })
    }
}

/// Records per chunk; also bounded by [`CHUNK_BYTES`] of copies.
const CHUNK_RECORDS: usize = 4096;

/// Copied bytes per chunk (unmapped input) before it is sent: large records
/// (up to `source::pcap::MAX_RECORD`) do not pile up in memory.
const CHUNK_BYTES: usize = 8 << 20;

/// Records ahead of the one being decided whose headers a worker asks
/// into cache.
const PREFETCH_RECORDS: usize = 8;

/// Chunks a worker looks ahead at to compute the shard ids it owns before
/// the others need them.
const LOOKAHEAD: usize = 4;

enum ToShard {
    Chunk(Arc<Chunk>),
    /// A new configuration and rule set (reload): applied between
    /// chunks, state kept.
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

/// The offline front end: the caller pushes frames in capture order and
/// every shard worker (a [`ShardEngine`] on its own thread) sees them in
/// chunks and decides its sources' frames; one collector thread receives
/// what the workers report. Frames are numbered 1, 2, ... in push order
/// (their `pcap_cnt`). [`finish`](Self::finish) returns the results; a
/// pipeline dropped without it leaves its threads to run out unjoined.
pub struct Pipeline<C: Collector> {
    shards: usize,
    to_shard: Vec<Sender<ToShard>>,
    filling: Chunk,
    /// Record lists back from finished chunks.
    pool: Receiver<Vec<Rec>>,
    pool_tx: Sender<Vec<Rec>>,
    workers: Vec<JoinHandle<(Stats, f64)>>,
    collector: Option<JoinHandle<C>>,
    next_idx: u64,
    next_seq: u64,
    last_ts: Ts,
}

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
        let (out_tx, out_rx) = bounded::<ShardOutput>(shards * depth);
        let mut to_shard = Vec::with_capacity(shards);
        let mut workers = Vec::with_capacity(shards);
        for id in 0..shards {
            let (tx, rx) = bounded::<ToShard>(depth);
            to_shard.push(tx);
            let w = Worker {
                id,
                shards,
                engine: ShardEngine::new(cfg.clone(), rules.clone())?,
                sharder: cfg.sharder(),
                out: out_tx.clone(),
                record_verdicts,
                verdicts: Vec::new(),
                next_tick: None,
            };
            workers.push(
                std::thread::Builder::new()
                    .name(format!("shard-{id}"))
                    .spawn(move || w.run(rx))
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
        // Enough lists for every chunk that can be queued or in work.
        let (pool_tx, pool) = bounded(shards * (depth + LOOKAHEAD + 2) + 2);
        Ok(Pipeline {
            shards,
            to_shard,
            filling: Chunk::new(0, 1, None, Vec::new(), pool_tx.clone()),
            pool,
            pool_tx,
            workers,
            collector: Some(collector),
            next_idx: 0,
            next_seq: 0,
            last_ts: 0,
        })
    }

    /// Frames pushed from now on that lie inside `map` are handed to the
    /// workers as offsets into it rather than copied.
    pub fn share(&mut self, map: Mapping) {
        self.send_filling();
        self.filling.map = Some(map);
    }

    /// Number of shard workers.
    pub fn shards(&self) -> usize {
        self.shards
    }

    /// Packets pushed so far.
    pub fn packets(&self) -> u64 {
        self.next_idx
    }

    /// Hands one frame to the workers. Frames get consecutive 1-based
    /// indices.
    #[inline]
    pub fn push(&mut self, ts: Ts, link: LinkType, data: &[u8], wire_len: u32) {
        self.next_idx += 1;
        self.last_ts = self.last_ts.max(ts);
        let c = &mut self.filling;
        let len = data.len() as u32;
        let in_map = c.map.as_ref().and_then(|m| {
            // Inside the mapping iff the address range is: then it is the
            // same bytes, at this offset.
            let off = (data.as_ptr() as usize).checked_sub(m.as_ptr() as usize)?;
            (off.checked_add(data.len())? <= m.len()).then_some(off)
        });
        let rec = match in_map {
            Some(off) => Rec {
                ts,
                off,
                len,
                wire_len,
                link,
                mapped: true,
            },
            None => {
                let off = c.owned.len();
                c.owned.extend_from_slice(data);
                Rec {
                    ts,
                    off,
                    len,
                    wire_len,
                    link,
                    mapped: false,
                }
            }
        };
        c.recs.push(rec);
        if c.recs.len() >= CHUNK_RECORDS || c.owned.len() >= CHUNK_BYTES {
            self.send_filling();
        }
    }

    /// Sends the chunk being filled (if it holds anything) to every worker.
    fn send_filling(&mut self) {
        if self.filling.recs.is_empty() {
            return;
        }
        self.next_seq += 1;
        let recs = self.pool.try_recv().unwrap_or_default();
        let next = Chunk::new(
            self.next_seq,
            self.next_idx + 1,
            self.filling.map.clone(),
            recs,
            self.pool_tx.clone(),
        );
        let full = Arc::new(std::mem::replace(&mut self.filling, next));
        for tx in &self.to_shard {
            // A closed queue means the worker died; finish() reports it.
            let _ = tx.send(ToShard::Chunk(full.clone()));
        }
    }

    /// Hands every shard a new configuration and rule set. Packets already
    /// pushed are decided with the old ones; later ones with the new ones.
    pub fn reload(&mut self, cfg: Arc<Config>, rules: Arc<Ruleset>) {
        self.send_filling();
        for tx in &self.to_shard {
            let _ = tx.send(ToShard::Reload(cfg.clone(), rules.clone()));
        }
    }

    /// Sends what is left, closes every open episode at the last packet
    /// time, waits for the workers and returns their summed counters and
    /// the collector.
    pub fn finish(self) -> Result<(Stats, Vec<Stats>, C), PipelineError> {
        let f = self.finish_timed()?;
        Ok((f.total, f.per_shard, f.collector))
    }

    /// As [`finish`](Self::finish), also reporting each worker's CPU time.
    pub fn finish_timed(mut self) -> Result<Finished<C>, PipelineError> {
        self.send_filling();
        for tx in &self.to_shard {
            let _ = tx.send(ToShard::Finish(self.last_ts));
        }
        self.to_shard.clear();
        let mut total = Stats::default();
        let mut per_shard = Vec::new();
        let mut shard_cpu = Vec::new();
        for (i, w) in self.workers.drain(..).enumerate() {
            let (s, cpu) = w.join().map_err(|_| PipelineError::ShardPanicked(i))?;
            total.add(&s);
            per_shard.push(s);
            shard_cpu.push(cpu);
        }
        // `finish` takes `self`: the collector is still there.
        let c = self
            .collector
            .take()
            .ok_or(PipelineError::CollectorPanicked)?
            .join()
            .map_err(|_| PipelineError::CollectorPanicked)?;
        Ok(Finished {
            total,
            per_shard,
            shard_cpu,
            collector: c,
        })
    }
}

/// What [`Pipeline::finish_timed`] returns.
pub struct Finished<C> {
    /// Counters summed over the shards.
    pub total: Stats,
    /// Each shard's counters.
    pub per_shard: Vec<Stats>,
    /// CPU seconds each shard worker thread used (user + system).
    pub shard_cpu: Vec<f64>,
    /// The collector, with everything the workers reported.
    pub collector: C,
}

/// CPU seconds the calling thread has used (user + system): how busy a
/// thread was, whatever else shares the machine.
pub fn thread_cpu_seconds() -> f64 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_THREAD_CPUTIME_ID)
        .map(|t| t.tv_sec() as f64 + t.tv_nsec() as f64 * 1e-9)
        .unwrap_or(0.0)
}

impl Chunk {
    fn new(
        seq: u64,
        first_idx: u64,
        map: Option<Mapping>,
        mut recs: Vec<Rec>,
        recycle: Sender<Vec<Rec>>,
    ) -> Chunk {
        recs.reserve(CHUNK_RECORDS);
        Chunk {
            seq,
            first_idx,
            recs,
            map,
            owned: Vec::new(),
            shards: OnceLock::new(),
            recycle,
        }
    }
}

/// The grid point at or before `ts`.
fn grid(ts: Ts) -> Ts {
    ts - ts % TICK_NS
}

/// One shard's thread.
struct Worker {
    id: usize,
    shards: usize,
    engine: ShardEngine,
    sharder: Sharder,
    out: Sender<ShardOutput>,
    record_verdicts: bool,
    verdicts: Vec<(u64, crate::engine::Verdict)>,
    /// The next timer-grid point; `None` before the first packet.
    next_tick: Option<Ts>,
}

impl Worker {
    fn run(mut self, rx: Receiver<ToShard>) -> (Stats, f64) {
        let mut queue: VecDeque<ToShard> = VecDeque::with_capacity(LOOKAHEAD);
        loop {
            if queue.is_empty() {
                match rx.recv() {
                    Ok(m) => queue.push_back(m),
                    Err(_) => break,
                }
            }
            while queue.len() < LOOKAHEAD {
                match rx.try_recv() {
                    Ok(m) => queue.push_back(m),
                    Err(_) => break,
                }
            }
            // The chunks this worker owns get their shard ids now, so
            // the other workers find them done when they get there.
            if self.shards > 1 {
                for m in &queue {
                    if let ToShard::Chunk(c) = m {
                        if c.seq % self.shards as u64 == self.id as u64 {
                            c.shard_ids(&self.sharder, self.shards);
                        }
                    }
                }
            }
            match queue.pop_front() {
                Some(ToShard::Chunk(c)) => self.chunk(&c),
                Some(ToShard::Reload(c, r)) => self.engine.reload(c, r),
                Some(ToShard::Finish(end)) => {
                    self.engine.finish(end);
                    let _ = self.out.send(ShardOutput {
                        events: self.engine.take_events(),
                        verdicts: std::mem::take(&mut self.verdicts),
                        victims: Some((self.id, Ts::MAX, self.engine.take_victims())),
                    });
                    break;
                }
                None => {}
            }
        }
        (self.engine.stats(), thread_cpu_seconds())
    }

    /// Decides this shard's records of `c`, keeping time with all of them.
    fn chunk(&mut self, c: &Chunk) {
        let ids = (self.shards > 1).then(|| c.shard_ids(&self.sharder, self.shards));
        let me = self.id as u16;
        for (i, r) in c.recs.iter().enumerate() {
            // The first read of a packet's headers waits for memory: ask
            // for a later record's while this one is decided.
            if let Some(n) = c.recs.get(i + PREFETCH_RECORDS) {
                c.prefetch(n);
            }
            match self.next_tick {
                Some(t) if r.ts >= t => self.tick(r.ts),
                Some(_) => {}
                None => self.next_tick = Some(grid(r.ts) + TICK_NS),
            }
            if ids.is_some_and(|ids| ids.get(i) != Some(&me)) {
                continue;
            }
            let f = RawFrame {
                idx: c.first_idx + i as u64,
                ts: r.ts,
                link: r.link,
                data: c.data(r),
                wire_len: r.wire_len,
            };
            let v = self.engine.process(&f);
            if self.record_verdicts {
                self.verdicts.push((f.idx, v));
            }
        }
        if self.engine.has_events() || !self.verdicts.is_empty() {
            let _ = self.out.send(ShardOutput {
                events: self.engine.take_events(),
                verdicts: std::mem::take(&mut self.verdicts),
                victims: None,
            });
        }
    }

    /// Packet time passed a grid point: every earlier record has been
    /// decided. Always reported, even empty: the victim merge waits for
    /// every shard.
    fn tick(&mut self, ts: Ts) {
        let at = grid(ts);
        self.engine.handle_timeout(at);
        let _ = self.out.send(ShardOutput {
            events: self.engine.take_events(),
            verdicts: std::mem::take(&mut self.verdicts),
            victims: Some((self.id, at, self.engine.take_victims())),
        });
        self.next_tick = Some(at + TICK_NS);
    }
}
