//! Who holds each UMEM frame of one I/O thread, kept without any I/O.
//!
//! Every frame is in exactly one place at any time:
//!
//! ```text
//!   free ──fill──► fill ring ──RX──► batch being filled ─────────────► shard
//!    ▲  ▲             (kernel)          (one per shard)       │          │
//!    │  │                                          queue full │  verdict │
//!    │  └───────────────── DROP (or queue full, policy drop) ◄┴──────────┤
//!    │                                                        │          ▼
//!    └──completion── TX ring ◄──transmit── pending TX (other port) ◄── ALLOW
//!                    (kernel)                  ▲   (or queue full, bypass)
//! ```
//!
//! A shard that cannot take a batch (its queue is full, or it already holds
//! its share of the frames) never holds up RX: the batch is forwarded
//! uninspected or dropped on the spot, per `live.queue_full`, and counted.
//!
//! The I/O thread (`io.rs`) moves descriptors on and off the rings and
//! tells the [`Ledger`] at every hand-over; the ledger touches no ring and
//! reads no clock, so every transition runs in unit tests without a NIC or
//! root. Frames userspace holds are owned [`Frame`] values, so one can be in
//! one place only; frames the kernel holds are counted per port and ring,
//! since only the kernel knows which they are until it hands them back.

use crate::config::QueueFullPolicy;
use crate::packet::Ts;
use std::time::{Duration, Instant};

/// Ports of a queue pair: 0 ingress, 1 egress.
const PORTS: usize = 2;
/// After stop, how long to wait for frames an XDP program on another CPU
/// redirected just before the socket left the map.
const STOP_GRACE: Duration = Duration::from_millis(20);
/// After stop, how long to wait for batches a shard never returns (it died).
const GIVE_UP: Duration = Duration::from_secs(5);
/// After the drain, how long to keep transmitting what was allowed.
const FLUSH: Duration = Duration::from_millis(200);

/// A UMEM frame userspace owns, by its descriptor.
///
/// Neither `Copy` nor `Clone`: whoever holds the `Frame` is the only one
/// that may touch the frame's memory. Only the [`Ledger`] mints one (where
/// the kernel hands a descriptor back) and gives one up (where it goes on a
/// ring).
pub struct Frame<D>(D);

impl<D> Frame<D> {
    /// The descriptor, to read the frame's memory through.
    pub fn desc(&self) -> &D {
        &self.0
    }
}

/// One received frame on its way through a shard.
pub struct Slot<D> {
    pub frame: Frame<D>,
    /// Port it arrived on; it leaves by the other one.
    port: u8,
    /// The shard's verdict: `true` forwards, `false` drops.
    pub allow: bool,
    /// Receive time of the frame's RX round (wall clock ns): its packet
    /// time. A batch held back while its shard is busy gathers frames of
    /// several rounds, so this is per frame, not per batch.
    pub ts: Ts,
}

/// Frames of one RX round for one shard, all from one I/O thread.
///
/// The slots can be read and given verdicts but not added or removed, so a
/// batch comes back with the frames it left with.
pub struct Batch<D> {
    /// The I/O thread it goes back to.
    pub io: usize,
    /// The shard it is for.
    shard: usize,
    /// Receive time of the batch's first frame (wall clock ns); each
    /// frame's own is [`Slot::ts`].
    pub ts: Ts,
    /// Receive time of the batch's first frame, for the verdict latency
    /// (an upper bound for the batch's later frames).
    pub rx_at: Instant,
    slots: Vec<Slot<D>>,
}

impl<D> Batch<D> {
    /// The frames, to set their verdicts.
    pub fn slots_mut(&mut self) -> &mut [Slot<D>] {
        &mut self.slots
    }

    /// Frames in the batch.
    pub fn len(&self) -> usize {
        self.slots.len()
    }
}

/// Why a shard queue did not take a batch; the batch comes back with it.
pub enum Refused<D> {
    /// The queue is full: the queue-full policy applies.
    Full(Batch<D>),
    /// The shard is gone.
    Closed(Batch<D>),
}

/// The shard (by index) whose queue is closed.
#[derive(Debug, PartialEq, Eq)]
pub struct ShardGone(pub usize);

/// What [`Ledger::dispatch`] did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Dispatch {
    /// Batches the shards took.
    pub sent: usize,
    /// Batches kept filling because their shard had one waiting already
    /// (see [`Ledger::dispatch_when`]).
    pub held: usize,
    /// Batches a shard could not take (queue full, or its frame share
    /// used up); the queue-full policy applied to their frames.
    pub refused: usize,
    /// Frames of refused batches forwarded uninspected (policy bypass).
    pub bypassed: usize,
    /// Frames of refused batches dropped (policy drop).
    pub dropped: usize,
}

/// What the I/O thread does after a round, see [`Ledger::poll_stop`].
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// Keep going.
    Run,
    /// Flush TX while [`Ledger::flushing`], then end. `unreturned` batches
    /// are still at (or queued for) shards and are given up on.
    Stop { unreturned: usize },
}

/// The frames of one I/O thread: where each one is, and what to do next.
pub struct Ledger<D> {
    io: usize,
    batch_size: usize,
    /// Frames given at the start; the sum of all places below.
    total: usize,
    /// On no ring and in no shard.
    free: Vec<Frame<D>>,
    /// Allowed, waiting for room on this port's TX ring.
    pending_tx: [Vec<Frame<D>>; PORTS],
    /// Given to this port's fill ring, not yet back through its RX ring.
    on_fill: [usize; PORTS],
    /// Given to this port's TX ring, not yet back through its completion ring.
    on_tx: [usize; PORTS],
    /// Batches (and their frames) a shard took and has not returned.
    in_flight: usize,
    in_flight_frames: usize,
    /// Frames each shard holds (taken, not returned).
    at_shard: Vec<usize>,
    /// Most frames one shard may hold: half the UMEM shared by the shards,
    /// so a starved shard cannot empty the fill rings of the others.
    shard_share: usize,
    /// What a batch a shard cannot take becomes.
    policy: QueueFullPolicy,
    /// This round's batch per shard.
    filling: Vec<Option<Batch<D>>>,
    /// Batches of a shard whose queue is closed (it died): kept so every
    /// frame stays accounted for while the I/O thread stops.
    stuck: Vec<(usize, Batch<D>)>,
    /// Returned batches, empty, for reuse.
    pool: Vec<Batch<D>>,
    /// Descriptors offered to a ring (the rings take `&[D]`).
    scratch: Vec<D>,
    stop_seen: Option<Instant>,
    flush_until: Option<Instant>,
    /// Times the kernel or a shard returned more frames than it held.
    anomalies: u64,
}

impl<D: Copy> Ledger<D> {
    /// A ledger owning `descs`, all free, for I/O thread `io` feeding
    /// `shards` shards with batches of about `batch_size` frames; a batch
    /// a shard cannot take is handled per `policy`.
    pub fn new(
        io: usize,
        shards: usize,
        batch_size: usize,
        policy: QueueFullPolicy,
        descs: Vec<D>,
    ) -> Ledger<D> {
        let total = descs.len();
        Ledger {
            io,
            batch_size,
            total,
            free: descs.into_iter().map(Frame).collect(),
            pending_tx: [Vec::new(), Vec::new()],
            on_fill: [0; PORTS],
            on_tx: [0; PORTS],
            in_flight: 0,
            in_flight_frames: 0,
            at_shard: vec![0; shards],
            shard_share: (total / 2 / shards.max(1)).max(1),
            policy,
            filling: (0..shards).map(|_| None).collect(),
            stuck: Vec::new(),
            pool: Vec::new(),
            scratch: Vec::new(),
            stop_seen: None,
            flush_until: None,
            anomalies: 0,
        }
    }

    /// Frames given at the start.
    pub fn total(&self) -> usize {
        self.total
    }

    /// Frames on no ring and in no shard.
    pub fn free(&self) -> usize {
        self.free.len()
    }

    /// Frames received but not yet handed to a shard (a batch held back
    /// while its shard is busy).
    pub fn holding(&self) -> usize {
        self.filling.iter().flatten().map(|b| b.slots.len()).sum()
    }

    /// Allowed frames waiting for room on `port`'s TX ring.
    pub fn pending_tx(&self, port: usize) -> usize {
        self.pending_tx[port].len()
    }

    /// Frames on `port`'s TX ring, not yet completed.
    pub fn on_tx(&self, port: usize) -> usize {
        self.on_tx[port]
    }

    /// Something will come back without new traffic: a verdict or a
    /// completion. (The I/O thread no longer asks: a verdict wakes it
    /// through its eventfd, and it checks `on_tx` for completions.)
    #[cfg(test)]
    pub fn waiting(&self) -> bool {
        self.in_flight > 0 || self.on_tx.iter().any(|&n| n > 0)
    }

    /// Offers up to `room` free frames to `port`'s fill ring. `produce`
    /// puts descriptors on the ring and returns how many, from the front,
    /// it took; the rest stay free. Returns that count.
    pub fn fill(&mut self, port: usize, room: usize, produce: impl FnOnce(&[D]) -> usize) -> usize {
        let n = room.min(self.free.len());
        // Newest free frames first (their memory is most likely cached).
        let at = self.free.len() - n;
        let put = self.offer(Place::Free, at, n, produce);
        self.on_fill[port] += put;
        put
    }

    /// Offers up to `room` frames waiting for `port`'s TX ring, oldest
    /// first. `produce` puts descriptors on the ring and returns how many,
    /// from the front, it took; the rest keep waiting. Returns that count.
    pub fn transmit(
        &mut self,
        port: usize,
        room: usize,
        produce: impl FnOnce(&[D]) -> usize,
    ) -> usize {
        let n = room.min(self.pending_tx[port].len());
        let sent = self.offer(Place::PendingTx(port), 0, n, produce);
        self.on_tx[port] += sent;
        sent
    }

    /// Offers `list[at..at + n]` to a ring; the frames it takes leave the
    /// ledger (dropping a `Frame` is giving it to the kernel).
    fn offer(
        &mut self,
        place: Place,
        at: usize,
        n: usize,
        produce: impl FnOnce(&[D]) -> usize,
    ) -> usize {
        if n == 0 {
            return 0;
        }
        let list = match place {
            Place::Free => &mut self.free,
            Place::PendingTx(port) => &mut self.pending_tx[port],
        };
        self.scratch.clear();
        self.scratch.extend(list[at..at + n].iter().map(|f| f.0));
        let mut took = produce(&self.scratch);
        if took > n {
            // A ring cannot take more than it was offered.
            self.anomalies += 1;
            took = n;
        }
        list.drain(at..at + took);
        took
    }

    /// `port`'s completion ring returned `descs`: transmitted, free again.
    pub fn completed(&mut self, port: usize, descs: &[D]) {
        self.anomalies += take_back(&mut self.on_tx[port], descs.len());
        self.free.extend(descs.iter().map(|&d| Frame(d)));
    }

    /// `port`'s RX ring returned `desc`, bound for shard `shard` (below the
    /// shard count). It joins the batch filling for that shard; `ts` and
    /// `rx_at` are the round's receive times.
    pub fn rx(&mut self, port: usize, desc: D, shard: usize, ts: Ts, rx_at: Instant) {
        self.anomalies += take_back(&mut self.on_fill[port], 1);
        let b = self.filling[shard].get_or_insert_with(|| {
            let mut b = self.pool.pop().unwrap_or_else(|| Batch {
                io: self.io,
                shard,
                ts,
                rx_at,
                slots: Vec::with_capacity(self.batch_size),
            });
            b.shard = shard;
            b.ts = ts;
            b.rx_at = rx_at;
            b
        });
        b.slots.push(Slot {
            frame: Frame(desc),
            port: port as u8,
            allow: false,
            ts,
        });
    }

    /// `port`'s RX ring returned `descs`, to leave by the other port
    /// uninspected (`live.inspect = false`).
    pub fn forward(&mut self, port: usize, descs: &[D]) {
        self.anomalies += take_back(&mut self.on_fill[port], descs.len());
        self.pending_tx[1 - port].extend(descs.iter().map(|&d| Frame(d)));
    }

    /// [`dispatch_when`](Self::dispatch_when) with no shard busy: every
    /// filling batch is offered now.
    #[cfg(test)]
    pub fn dispatch(
        &mut self,
        send: impl FnMut(usize, Batch<D>) -> Result<(), Refused<D>>,
    ) -> Result<Dispatch, ShardGone> {
        self.dispatch_when(send, |_| false)
    }

    /// Hands the filling batches to their shards through `send`, in RX
    /// order per shard (a shard gets one batch per round at most).
    ///
    /// Adaptive batching: a batch below `batch_size` whose shard is
    /// `busy` (it has a batch waiting in its queue already) is not sent
    /// but kept filling, and goes when its shard's queue has emptied or
    /// it is full. An idle shard gets every round's frames at once (no
    /// latency added); a busy one gets fewer, larger batches instead of a
    /// queue of small ones, so a shard that falls behind for a moment
    /// catches up with less per-batch work and its queue does not fill
    /// with a few frames per slot. Nothing is held once stopping.
    ///
    /// A batch
    /// a shard cannot take — `send` says its queue is full, or the shard
    /// already holds its share of the frames — is never kept waiting: the
    /// queue-full policy forwards its frames uninspected (to the other
    /// port's TX) or frees them (dropped), and RX goes on. Bypassed frames
    /// may leave before earlier frames of the same shard still being
    /// inspected. Errs (keeping every frame accounted for) when a shard is
    /// gone.
    pub fn dispatch_when(
        &mut self,
        mut send: impl FnMut(usize, Batch<D>) -> Result<(), Refused<D>>,
        busy: impl Fn(usize) -> bool,
    ) -> Result<Dispatch, ShardGone> {
        let mut out = Dispatch::default();
        let mut gone = None;
        for sh in 0..self.filling.len() {
            let Some(b) = self.filling[sh].take() else {
                continue;
            };
            if gone.is_some() {
                self.stuck.push((sh, b));
                continue;
            }
            let frames = b.slots.len();
            if frames < self.batch_size && self.stop_seen.is_none() && busy(sh) {
                self.filling[sh] = Some(b);
                out.held += 1;
                continue;
            }
            if self.at_shard[sh] + frames > self.shard_share && self.at_shard[sh] > 0 {
                // As good as a full queue: the shard is not keeping up.
                self.overflow(b, &mut out);
                continue;
            }
            match send(sh, b) {
                Ok(()) => {
                    self.in_flight += 1;
                    self.in_flight_frames += frames;
                    self.at_shard[sh] += frames;
                    out.sent += 1;
                }
                Err(Refused::Full(b)) => self.overflow(b, &mut out),
                Err(Refused::Closed(b)) => {
                    gone = Some(sh);
                    self.stuck.push((sh, b));
                }
            }
        }
        match gone {
            Some(sh) => Err(ShardGone(sh)),
            None => Ok(out),
        }
    }

    /// Applies the queue-full policy to a batch no shard will see.
    fn overflow(&mut self, mut batch: Batch<D>, out: &mut Dispatch) {
        out.refused += 1;
        let n = batch.slots.len();
        for s in batch.slots.drain(..) {
            match self.policy {
                QueueFullPolicy::Bypass => self.pending_tx[1 - usize::from(s.port)].push(s.frame),
                QueueFullPolicy::Drop => self.free.push(s.frame),
            }
        }
        match self.policy {
            QueueFullPolicy::Bypass => out.bypassed += n,
            QueueFullPolicy::Drop => out.dropped += n,
        }
        self.pool.push(batch);
    }

    /// A shard returned `batch` with its verdicts: allowed frames wait for
    /// the other port's TX ring, dropped ones are free again.
    pub fn verdict(&mut self, mut batch: Batch<D>) {
        self.anomalies += take_back(&mut self.in_flight, 1);
        self.anomalies += take_back(&mut self.in_flight_frames, batch.slots.len());
        if let Some(held) = self.at_shard.get_mut(batch.shard) {
            self.anomalies += take_back(held, batch.slots.len());
        }
        for s in batch.slots.drain(..) {
            if s.allow {
                self.pending_tx[1 - usize::from(s.port)].push(s.frame);
            } else {
                self.free.push(s.frame);
            }
        }
        self.pool.push(batch);
    }

    /// After a round that received `received` frames: whether to stop.
    /// `stopping` is the stop request; the sockets are out of the XSKMAP by
    /// then, so RX only drains what the kernel queued before. Stop once
    /// everything came back and nothing arrived for a short while (frames
    /// another CPU redirected just before arrive a moment later), or after
    /// a long while regardless (a shard that never answers has died).
    pub fn poll_stop(&mut self, stopping: bool, received: usize, now: Instant) -> Step {
        if stopping && self.stop_seen.is_none() {
            self.stop_seen = Some(now);
        }
        let Some(since) = self.stop_seen else {
            return Step::Run;
        };
        let waited = now.saturating_duration_since(since);
        let drained = self.in_flight == 0
            && self.stuck.is_empty()
            && self.filling.iter().all(Option::is_none)
            && received == 0;
        if waited > STOP_GRACE && drained || waited > GIVE_UP {
            self.flush_until = Some(now + FLUSH);
            let unreturned = self.in_flight + self.stuck.len();
            return Step::Stop { unreturned };
        }
        Step::Run
    }

    /// After [`Step::Stop`]: allowed frames are still waiting or on a TX
    /// ring, and the flush time is not up.
    pub fn flushing(&self, now: Instant) -> bool {
        let busy =
            self.pending_tx.iter().any(|p| !p.is_empty()) || self.on_tx.iter().any(|&n| n > 0);
        busy && self.flush_until.is_some_and(|t| now < t)
    }

    /// Every frame given at the start is in exactly one place, and nothing
    /// came back that was not out.
    pub fn check(&self) -> Result<(), LedgerError> {
        if self.anomalies > 0 {
            return Err(LedgerError::ReturnedTooMany(self.anomalies));
        }
        let waiting: usize = self.filling.iter().flatten().map(|b| b.slots.len()).sum();
        let stuck: usize = self.stuck.iter().map(|(_, b)| b.slots.len()).sum();
        let pending: usize = self.pending_tx.iter().map(Vec::len).sum();
        let kernel: usize = self.on_fill.iter().chain(&self.on_tx).sum();
        let per_shard: usize = self.at_shard.iter().sum();
        if per_shard != self.in_flight_frames {
            return Err(LedgerError::Unbalanced {
                held: per_shard,
                total: self.in_flight_frames,
                detail: format!("frames held per shard {:?}", self.at_shard),
            });
        }
        let held = self.free.len() + waiting + stuck + self.in_flight_frames + pending + kernel;
        if held != self.total {
            return Err(LedgerError::Unbalanced {
                held,
                total: self.total,
                detail: format!(
                    "{} free, {waiting} filling, {stuck} stuck, {} at shards, {pending} pending TX, \
                     fill rings {:?}, TX rings {:?}",
                    self.free.len(),
                    self.in_flight_frames,
                    self.on_fill,
                    self.on_tx
                ),
            });
        }
        Ok(())
    }
}

/// A broken frame-ownership invariant (a bug, logged: never expected).
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    /// A ring or shard handed back more frames than it was given.
    #[error("{0} time(s) the kernel or a shard returned more frames than it held")]
    ReturnedTooMany(u64),
    /// Frames are missing or counted twice.
    #[error("{held} frames accounted for, {total} given: {detail}")]
    Unbalanced {
        /// Frames found in some place.
        held: usize,
        /// Frames the ledger started with.
        total: usize,
        /// Where they are.
        detail: String,
    },
}

/// A list of frames a ring can be offered.
#[derive(Clone, Copy)]
enum Place {
    Free,
    PendingTx(usize),
}

/// Takes `n` off a count of frames held elsewhere; returns 1 (an anomaly)
/// if more came back than were out.
fn take_back(count: &mut usize, n: usize) -> u64 {
    match count.checked_sub(n) {
        Some(left) => {
            *count = left;
            0
        }
        None => {
            *count = 0;
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::VecDeque;

    /// A descriptor without a UMEM: the frame's address.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
    struct Addr(u64);

    fn ledger(frames: u64, shards: usize) -> Ledger<Addr> {
        policy_ledger(frames, shards, QueueFullPolicy::Bypass)
    }

    fn policy_ledger(frames: u64, shards: usize, policy: QueueFullPolicy) -> Ledger<Addr> {
        Ledger::new(0, shards, 4, policy, (0..frames).map(Addr).collect())
    }

    /// Descriptors a ring took, from an offer it takes whole.
    fn take_all(into: &mut Vec<Addr>) -> impl FnMut(&[Addr]) -> usize + '_ {
        |d| {
            into.extend_from_slice(d);
            d.len()
        }
    }

    /// A shard queue that takes everything, recording (shard, batch).
    fn accept(
        into: &mut Vec<(usize, Batch<Addr>)>,
    ) -> impl FnMut(usize, Batch<Addr>) -> Result<(), Refused<Addr>> + '_ {
        |sh, b| {
            into.push((sh, b));
            Ok(())
        }
    }

    fn addrs(b: &Batch<Addr>) -> Vec<u64> {
        b.slots.iter().map(|s| s.frame.desc().0).collect()
    }

    #[test]
    fn fill_gives_free_frames_to_the_ring() {
        let mut l = ledger(8, 1);
        let mut ring = Vec::new();
        assert_eq!(l.fill(0, 3, take_all(&mut ring)), 3);
        assert_eq!(ring, [Addr(5), Addr(6), Addr(7)]);
        assert_eq!((l.free(), l.on_fill), (5, [3, 0]));
        // No room, or nothing free: the ring is not even asked.
        assert_eq!(l.fill(1, 0, |_| panic!("offered nothing")), 0);
        assert_eq!(l.fill(1, 100, take_all(&mut ring)), 5);
        assert_eq!(l.fill(1, 100, |_| panic!("offered nothing")), 0);
        assert_eq!((l.free(), l.on_fill), (0, [3, 5]));
        l.check().unwrap();
    }

    #[test]
    fn a_ring_taking_fewer_leaves_the_rest_owned() {
        let mut l = ledger(6, 1);
        let mut ring = Vec::new();
        let took = l.fill(0, 4, |d| {
            ring.extend_from_slice(&d[..1]);
            1
        });
        assert_eq!((took, ring.as_slice()), (1, &[Addr(2)][..]));
        // The three not taken are still free, and are offered again.
        let mut next = Vec::new();
        l.fill(0, 10, take_all(&mut next));
        next.sort();
        assert_eq!(next, [Addr(0), Addr(1), Addr(3), Addr(4), Addr(5)]);
        // A ring claiming more than offered is an error, not extra frames.
        let mut l = ledger(2, 1);
        assert_eq!(l.fill(0, 1, |_| 5), 1);
        assert!(l.check().is_err());
    }

    #[test]
    fn a_busy_shard_gets_one_larger_batch_later() {
        // 64 frames: each shard's share (16) is not what limits here.
        let mut l = ledger(64, 2);
        let t = Instant::now();
        l.fill(0, 16, |d| d.len());
        let mut sent = Vec::new();
        // Round 1: shard 0 busy, shard 1 idle. Shard 1's frame goes now,
        // shard 0's waits.
        l.rx(0, Addr(15), 0, 10, t);
        l.rx(0, Addr(14), 1, 10, t);
        let d = l.dispatch_when(accept(&mut sent), |sh| sh == 0).unwrap();
        assert_eq!((d.sent, d.held, l.holding()), (1, 1, 1));
        assert_eq!(sent[0].0, 1);
        // Round 2, still busy: the same batch grows, keeping each frame's
        // own receive time.
        l.rx(0, Addr(13), 0, 20, t);
        let d = l.dispatch_when(accept(&mut sent), |sh| sh == 0).unwrap();
        assert_eq!((d.sent, d.held, l.holding()), (0, 1, 2));
        // Round 3: two more make it a full batch (size 4): sent though busy.
        l.rx(0, Addr(12), 0, 30, t);
        l.rx(0, Addr(11), 0, 30, t);
        let d = l.dispatch_when(accept(&mut sent), |_| true).unwrap();
        assert_eq!((d.sent, d.held, l.holding()), (1, 0, 0));
        let (sh, b) = &sent[1];
        assert_eq!((*sh, b.ts, addrs(b)), (0, 10, vec![15, 13, 12, 11]));
        let ts: Vec<Ts> = b.slots.iter().map(|s| s.ts).collect();
        assert_eq!(ts, [10, 20, 30, 30]);
        // Held frames are accounted for, and stopping sends them at once.
        l.rx(0, Addr(10), 0, 40, t);
        assert_eq!(
            l.dispatch_when(accept(&mut sent), |_| true).unwrap().held,
            1
        );
        l.check().unwrap();
        assert_eq!(l.poll_stop(true, 0, t), Step::Run);
        let d = l.dispatch_when(accept(&mut sent), |_| true).unwrap();
        assert_eq!((d.sent, d.held, l.holding()), (1, 0, 0));
        l.check().unwrap();
    }

    #[test]
    fn rx_goes_to_one_batch_per_shard_per_round() {
        let mut l = ledger(8, 3);
        let t = Instant::now();
        l.fill(0, 4, |d| d.len());
        l.fill(1, 4, |d| d.len());
        l.rx(0, Addr(7), 2, 10, t);
        l.rx(1, Addr(3), 0, 10, t);
        l.rx(0, Addr(6), 2, 10, t);
        l.check().unwrap();
        let mut sent = Vec::new();
        let d = l.dispatch(accept(&mut sent)).unwrap();
        assert_eq!((d.sent, d.refused), (2, 0));
        assert_eq!(sent.len(), 2);
        assert_eq!((sent[0].0, addrs(&sent[0].1)), (0, vec![3]));
        assert_eq!((sent[1].0, addrs(&sent[1].1)), (2, vec![7, 6]));
        assert_eq!((sent[1].1.io, sent[1].1.ts, sent[1].1.rx_at), (0, 10, t));
        assert_eq!((l.on_fill, l.in_flight, l.in_flight_frames), ([2, 3], 2, 3));
        assert!(l.waiting());
        l.check().unwrap();
        // Nothing new: nothing to send.
        assert_eq!(
            l.dispatch(|_, _| panic!("nothing to send")),
            Ok(Dispatch::default())
        );
    }

    #[test]
    fn allowed_frames_leave_by_the_other_port_dropped_ones_are_free() {
        let mut l = ledger(4, 1);
        let t = Instant::now();
        l.fill(0, 4, |d| d.len());
        for a in 0..3 {
            l.rx(0, Addr(a), 0, 0, t);
        }
        let mut sent = Vec::new();
        l.dispatch(accept(&mut sent)).unwrap();
        let (_, mut b) = sent.pop().unwrap();
        b.slots_mut()[0].allow = true;
        b.slots_mut()[2].allow = true;
        l.verdict(b);
        assert_eq!((l.free(), l.pending_tx(0), l.pending_tx(1)), (1, 0, 2));
        assert!(!l.waiting());
        l.check().unwrap();

        // TX takes the oldest first; completion frees them.
        let mut ring = Vec::new();
        assert_eq!(l.transmit(1, 1, take_all(&mut ring)), 1);
        assert_eq!(l.transmit(1, 5, take_all(&mut ring)), 1);
        assert_eq!(ring, [Addr(0), Addr(2)]);
        assert_eq!((l.pending_tx(1), l.on_tx(1)), (0, 2));
        assert!(l.waiting());
        l.completed(1, &ring);
        assert_eq!((l.free(), l.on_tx(1)), (3, 0));
        assert!(!l.waiting());
        l.check().unwrap();
    }

    #[test]
    fn the_kernel_returning_more_than_it_held_is_an_error() {
        let mut l = ledger(4, 1);
        l.completed(0, &[Addr(9)]);
        assert_eq!(l.anomalies, 1);
        assert!(l
            .check()
            .unwrap_err()
            .to_string()
            .contains("more frames than it held"));
        let mut l = ledger(4, 1);
        l.forward(1, &[Addr(0)]);
        assert!(l.check().is_err());
    }

    #[test]
    fn uninspected_frames_go_straight_to_the_other_port() {
        let mut l = ledger(4, 0);
        l.fill(0, 2, |d| d.len());
        l.fill(1, 2, |d| d.len());
        l.forward(0, &[Addr(3), Addr(2)]);
        l.forward(1, &[Addr(1)]);
        assert_eq!((l.pending_tx(0), l.pending_tx(1)), (1, 2));
        let mut ring = Vec::new();
        l.transmit(1, 8, take_all(&mut ring));
        assert_eq!(ring, [Addr(3), Addr(2)]);
        l.check().unwrap();
    }

    /// Shard 0's queue is full, shard 1 takes its batches: returns the
    /// ledger after two rounds, with what shard 1 got.
    fn starve_shard_0(policy: QueueFullPolicy) -> (Ledger<Addr>, Vec<(usize, Batch<Addr>)>) {
        let mut l = policy_ledger(16, 2, policy);
        let t = Instant::now();
        l.fill(0, 8, |d| d.len());
        l.fill(1, 8, |d| d.len());
        let mut sent = Vec::new();
        let full0 = |sent: &mut Vec<(usize, Batch<Addr>)>, sh, b| {
            if sh == 0 {
                return Err(Refused::Full(b));
            }
            sent.push((sh, b));
            Ok(())
        };
        // Round 1: two frames for shard 0 (one per port), one for shard 1.
        l.rx(0, Addr(15), 0, 1, t);
        l.rx(1, Addr(7), 0, 1, t);
        l.rx(0, Addr(14), 1, 1, t);
        let d = l.dispatch(|sh, b| full0(&mut sent, sh, b)).unwrap();
        assert_eq!((d.sent, d.refused, d.bypassed + d.dropped), (1, 1, 2));
        l.check().unwrap();
        // Round 2: RX goes on; shard 0 still full.
        l.rx(0, Addr(13), 0, 2, t);
        l.rx(0, Addr(12), 1, 2, t);
        let d = l.dispatch(|sh, b| full0(&mut sent, sh, b)).unwrap();
        assert_eq!((d.sent, d.refused, d.bypassed + d.dropped), (1, 1, 1));
        l.check().unwrap();
        // Shard 1 got its batches in RX order.
        let got: Vec<_> = sent.iter().map(|(sh, b)| (*sh, addrs(b))).collect();
        assert_eq!(got, [(1, vec![14]), (1, vec![12])]);
        assert_eq!(l.stuck.len(), 0);
        (l, sent)
    }

    #[test]
    fn a_full_shard_queue_bypasses_without_pausing_rx() {
        let (l, _) = starve_shard_0(QueueFullPolicy::Bypass);
        // Uninspected, out by the other port, in RX order per port.
        let to = |p: usize| -> Vec<u64> { l.pending_tx[p].iter().map(|f| f.0 .0).collect() };
        assert_eq!((to(0), to(1)), (vec![7], vec![15, 13]));
        assert_eq!(l.free(), 0);
    }

    #[test]
    fn a_full_shard_queue_drops_without_pausing_rx() {
        let (l, _) = starve_shard_0(QueueFullPolicy::Drop);
        assert_eq!(l.pending_tx(0) + l.pending_tx(1), 0);
        let mut free: Vec<u64> = l.free.iter().map(|f| f.0 .0).collect();
        free.sort();
        assert_eq!(free, [7, 13, 15]);
    }

    #[test]
    fn a_shard_holding_its_share_of_frames_is_treated_as_full() {
        // 16 frames, 2 shards: each may hold 4.
        let mut l = policy_ledger(16, 2, QueueFullPolicy::Drop);
        let t = Instant::now();
        l.fill(0, 16, |d| d.len());
        let mut sent = Vec::new();
        for a in 0..3 {
            l.rx(0, Addr(a), 0, 1, t);
        }
        assert_eq!(l.dispatch(accept(&mut sent)).unwrap().sent, 1);
        // One more fits; two more would pass the share: not offered.
        l.rx(0, Addr(3), 0, 2, t);
        assert_eq!(l.dispatch(accept(&mut sent)).unwrap().sent, 1);
        l.rx(0, Addr(4), 0, 3, t);
        l.rx(0, Addr(5), 0, 3, t);
        let d = l.dispatch(|_, _| panic!("over its share")).unwrap();
        assert_eq!((d.refused, d.dropped), (1, 2));
        l.check().unwrap();
        // Back under its share once a batch returns.
        let (_, b) = sent.remove(0);
        l.verdict(b);
        l.rx(0, Addr(6), 0, 4, t);
        assert_eq!(l.dispatch(accept(&mut sent)).unwrap().sent, 1);
        // A batch larger than the share goes to an empty shard.
        let mut l = policy_ledger(16, 2, QueueFullPolicy::Drop);
        l.fill(0, 16, |d| d.len());
        for a in 0..6 {
            l.rx(0, Addr(a), 1, 1, t);
        }
        assert_eq!(l.dispatch(accept(&mut sent)).unwrap().sent, 1);
        l.check().unwrap();
    }

    #[test]
    fn a_closed_shard_ends_dispatch_with_every_frame_kept() {
        let mut l = ledger(4, 2);
        let t = Instant::now();
        l.fill(0, 4, |d| d.len());
        l.rx(0, Addr(0), 0, 0, t);
        l.rx(0, Addr(1), 1, 0, t);
        let d = l.dispatch(|sh, b| {
            Err(if sh == 0 {
                Refused::Closed(b)
            } else {
                Refused::Full(b)
            })
        });
        assert_eq!(d, Err(ShardGone(0)));
        assert_eq!(l.stuck.len(), 2);
        l.check().unwrap();
    }

    #[test]
    fn batches_are_reused() {
        let mut l = ledger(4, 1);
        let t = Instant::now();
        l.fill(0, 4, |d| d.len());
        l.rx(0, Addr(0), 0, 1, t);
        let mut sent = Vec::new();
        l.dispatch(accept(&mut sent)).unwrap();
        let (_, mut b) = sent.pop().unwrap();
        b.slots_mut()[0].allow = true;
        let buf = b.slots.as_ptr();
        l.verdict(b);
        let later = t + Duration::from_millis(1);
        l.rx(0, Addr(1), 0, 2, later);
        l.dispatch(accept(&mut sent)).unwrap();
        let (_, b) = sent.pop().unwrap();
        assert_eq!((b.ts, b.rx_at, b.slots.as_ptr()), (2, later, buf));
        assert_eq!(addrs(&b), [1]);
    }

    #[test]
    fn stop_waits_for_stragglers_then_flushes() {
        let mut l = ledger(4, 1);
        let t = Instant::now();
        let ms = |n| t + Duration::from_millis(n);
        assert_eq!(l.poll_stop(false, 0, t), Step::Run);
        l.fill(0, 4, |d| d.len());
        l.rx(0, Addr(0), 0, 0, t);
        let mut sent = Vec::new();
        l.dispatch(accept(&mut sent)).unwrap();
        assert_eq!(l.poll_stop(true, 1, ms(0)), Step::Run);
        // A batch is out: no stop, however long, short of the give-up time.
        assert_eq!(l.poll_stop(true, 0, ms(1000)), Step::Run);
        let (_, mut b) = sent.pop().unwrap();
        b.slots_mut()[0].allow = true;
        l.verdict(b);
        // Drained, but frames still arrived this round.
        assert_eq!(l.poll_stop(true, 1, ms(1001)), Step::Run);
        // Drained and quiet, after the grace time: stop, and flush for a while.
        assert_eq!(l.poll_stop(true, 0, ms(1002)), Step::Stop { unreturned: 0 });
        assert!(l.flushing(ms(1002)));
        assert!(!l.flushing(ms(1202)));
        let mut ring = Vec::new();
        l.transmit(1, 4, take_all(&mut ring));
        assert!(l.flushing(ms(1003)));
        l.completed(1, &ring);
        assert!(!l.flushing(ms(1003)));
        l.check().unwrap();

        // Quiet from the start: stop after the grace time only.
        let mut l = ledger(4, 1);
        assert_eq!(l.poll_stop(true, 0, t), Step::Run);
        assert_eq!(l.poll_stop(true, 0, ms(20)), Step::Run);
        assert_eq!(l.poll_stop(true, 0, ms(21)), Step::Stop { unreturned: 0 });
        assert!(!l.flushing(ms(21)));
    }

    #[test]
    fn a_shard_that_never_answers_is_given_up_on() {
        let mut l = ledger(4, 2);
        let t = Instant::now();
        l.fill(0, 4, |d| d.len());
        l.rx(0, Addr(0), 0, 0, t);
        l.rx(0, Addr(1), 1, 0, t);
        let mut sent = Vec::new();
        // Shard 0 takes its batch and dies; shard 1's queue stays full.
        l.dispatch(|sh, b| match sh {
            0 => {
                sent.push(b);
                Ok(())
            }
            _ => Err(Refused::Full(b)),
        })
        .unwrap();
        assert_eq!(l.poll_stop(true, 0, t), Step::Run);
        assert_eq!(l.poll_stop(true, 0, t + Duration::from_secs(5)), Step::Run);
        let end = t + Duration::from_millis(5001);
        assert_eq!(l.poll_stop(true, 0, end), Step::Stop { unreturned: 1 });
        // The frames are still accounted for: at the shard, or bypassed.
        l.check().unwrap();
    }

    /// The kernel side of one queue pair, and the shards, as queues of
    /// descriptors; the ledger driven against it as `io.rs` drives it.
    struct Rig {
        ledger: Ledger<Addr>,
        frames: u64,
        inspect: bool,
        fill: [VecDeque<Addr>; PORTS],
        rx: [VecDeque<Addr>; PORTS],
        tx: [VecDeque<Addr>; PORTS],
        cq: [VecDeque<Addr>; PORTS],
        shards: Vec<VecDeque<Batch<Addr>>>,
        /// Per shard: `ts` of the last batch it got (RX rounds count up).
        last_ts: Vec<Ts>,
        round: Ts,
        t0: Instant,
        policy: QueueFullPolicy,
        /// Frames the ledger said it bypassed / dropped, and the frames of
        /// the batches refused, as seen from the model shards' side.
        bypassed: usize,
        dropped: usize,
        refused_frames: usize,
    }

    const RING: usize = 8;
    const SHARDS: usize = 3;

    #[derive(Debug, Clone)]
    enum Op {
        /// The NIC writes up to `n` frames from the fill ring to the RX ring.
        Arrive { port: usize, n: usize },
        /// The driver consumes up to `max` RX descriptors (one round).
        Receive { port: usize, max: usize, salt: u64 },
        /// Batches to shards; the i-th offer is refused (queue full) if
        /// bit i of `refuse` is set, whatever the shard refused before.
        /// A shard whose bit is set in `busy` and that holds a batch
        /// counts as busy (its queue not empty): its batch may be held.
        Dispatch { refuse: u16, busy: u8 },
        /// A shard returns its oldest batch; bit i of `allow` is slot i's verdict.
        Verdict { shard: usize, allow: u64 },
        /// Up to `room` pending frames offered to TX; the ring takes `take`.
        Transmit {
            port: usize,
            room: usize,
            take: usize,
        },
        /// The NIC sends up to `n` frames: TX ring → completion ring.
        Send { port: usize, n: usize },
        /// The driver consumes up to `max` completions.
        Complete { port: usize, max: usize },
        /// Up to `room` free frames offered to a fill ring; it takes `take`.
        Fill {
            port: usize,
            room: usize,
            take: usize,
        },
    }

    fn op() -> impl Strategy<Value = Op> {
        let port = 0..PORTS;
        prop_oneof![
            (port.clone(), 0..6usize).prop_map(|(port, n)| Op::Arrive { port, n }),
            (port.clone(), 0..6usize, any::<u64>()).prop_map(|(port, max, salt)| Op::Receive {
                port,
                max,
                salt
            }),
            (any::<u16>(), any::<u8>()).prop_map(|(refuse, busy)| Op::Dispatch { refuse, busy }),
            (0..SHARDS, any::<u64>()).prop_map(|(shard, allow)| Op::Verdict { shard, allow }),
            (port.clone(), 0..10usize, 0..10usize).prop_map(|(port, room, take)| Op::Transmit {
                port,
                room,
                take
            }),
            (port.clone(), 0..6usize).prop_map(|(port, n)| Op::Send { port, n }),
            (port.clone(), 0..6usize).prop_map(|(port, max)| Op::Complete { port, max }),
            (port, 0..10usize, 0..10usize).prop_map(|(port, room, take)| Op::Fill {
                port,
                room,
                take
            }),
        ]
    }

    /// Moves up to `n` from the front of `from` to the back of `to`.
    fn shift(from: &mut VecDeque<Addr>, to: &mut VecDeque<Addr>, n: usize) {
        let n = n.min(from.len());
        to.extend(from.drain(..n));
    }

    impl Rig {
        fn new(frames: u64, inspect: bool, policy: QueueFullPolicy) -> Rig {
            let shards = if inspect { SHARDS } else { 0 };
            Rig {
                ledger: Ledger::new(0, shards, 4, policy, (0..frames).map(Addr).collect()),
                policy,
                bypassed: 0,
                dropped: 0,
                refused_frames: 0,
                frames,
                inspect,
                fill: Default::default(),
                rx: Default::default(),
                tx: Default::default(),
                cq: Default::default(),
                shards: (0..shards).map(|_| VecDeque::new()).collect(),
                last_ts: vec![0; shards],
                round: 0,
                t0: Instant::now(),
            }
        }

        fn apply(&mut self, op: &Op) -> Result<(), TestCaseError> {
            match *op {
                Op::Arrive { port, n } => {
                    let n = n.min(RING - self.rx[port].len());
                    shift(&mut self.fill[port], &mut self.rx[port], n);
                }
                Op::Receive { port, max, salt } => {
                    self.receive(port, max, salt);
                }
                Op::Dispatch { refuse, busy } => self.dispatch(refuse, busy)?,
                Op::Verdict { shard, allow } => {
                    if let Some(q) = self.shards.get_mut(shard) {
                        if let Some(mut b) = q.pop_front() {
                            for (i, s) in b.slots_mut().iter_mut().enumerate() {
                                s.allow = allow >> (i % 64) & 1 == 1;
                            }
                            self.ledger.verdict(b);
                        }
                    }
                }
                Op::Transmit { port, room, take } => {
                    let room = room.min(RING - self.tx[port].len());
                    let ring = &mut self.tx[port];
                    let sent = self.ledger.transmit(port, room, |d| {
                        assert!(d.len() <= room, "offered more than the room");
                        let took = take.min(d.len());
                        ring.extend(&d[..took]);
                        took
                    });
                    prop_assert!(sent <= take);
                }
                Op::Send { port, n } => {
                    shift(&mut self.tx[port], &mut self.cq[port], n);
                }
                Op::Complete { port, max } => self.complete(port, max),
                Op::Fill { port, room, take } => {
                    let room = room.min(RING - self.fill[port].len());
                    let ring = &mut self.fill[port];
                    self.ledger.fill(port, room, |d| {
                        let took = take.min(d.len());
                        ring.extend(&d[..took]);
                        took
                    });
                }
            }
            Ok(())
        }

        fn receive(&mut self, port: usize, max: usize, salt: u64) -> usize {
            self.round += 1;
            let n = max.min(self.rx[port].len());
            let got: Vec<Addr> = self.rx[port].drain(..n).collect();
            if !self.inspect {
                self.ledger.forward(port, &got);
                return n;
            }
            let at = self.t0 + Duration::from_micros(self.round);
            for d in got {
                let sh = ((d.0 ^ salt) % SHARDS as u64) as usize;
                self.ledger.rx(port, d, sh, self.round, at);
            }
            n
        }

        fn dispatch(&mut self, mut refuse: u16, busy: u8) -> Result<(), TestCaseError> {
            let busy_now: Vec<bool> = (0..self.shards.len())
                .map(|sh| busy >> sh & 1 == 1 && !self.shards[sh].is_empty())
                .collect();
            let (shards, last_ts) = (&mut self.shards, &mut self.last_ts);
            let mut order = Ok(());
            let offered: usize = self
                .ledger
                .filling
                .iter()
                .flatten()
                .map(|b| b.slots.len())
                .sum();
            let mut taken = 0;
            let free_before = self.ledger.free();
            let pending_before = self.ledger.pending_tx(0) + self.ledger.pending_tx(1);
            let d = self.ledger.dispatch_when(
                |sh, b| {
                    let full = refuse & 1 == 1;
                    refuse = refuse.rotate_right(1);
                    if full {
                        return Err(Refused::Full(b));
                    }
                    taken += b.slots.len();
                    // Each shard gets its batches in RX order.
                    if b.ts <= last_ts[sh] {
                        order = Err(TestCaseError::fail(format!(
                            "shard {sh}: batch {} after {}",
                            b.ts, last_ts[sh]
                        )));
                    }
                    last_ts[sh] = b.ts;
                    shards[sh].push_back(b);
                    Ok(())
                },
                |sh| busy_now[sh],
            );
            let Ok(d) = d else {
                return Err(TestCaseError::fail("no shard is gone"));
            };
            // Every frame offered went to a shard or through the policy,
            // and the policy's frames went where it says.
            let held = self.ledger.holding();
            prop_assert_eq!(offered, taken + d.bypassed + d.dropped + held);
            let pending_after = self.ledger.pending_tx(0) + self.ledger.pending_tx(1);
            match self.policy {
                QueueFullPolicy::Bypass => {
                    prop_assert_eq!(d.dropped, 0);
                    prop_assert_eq!(pending_after, pending_before + d.bypassed);
                }
                QueueFullPolicy::Drop => {
                    prop_assert_eq!(d.bypassed, 0);
                    prop_assert_eq!(self.ledger.free(), free_before + d.dropped);
                }
            }
            // A frame waits only in a batch below the batch size whose
            // shard is busy; RX never pauses.
            for (sh, b) in self.ledger.filling.iter().enumerate() {
                if let Some(b) = b {
                    prop_assert!(busy_now[sh] && b.slots.len() < 4, "held for shard {sh}");
                }
            }
            prop_assert_eq!(d.held, self.ledger.filling.iter().flatten().count());
            prop_assert!(self.ledger.stuck.is_empty());
            self.bypassed += d.bypassed;
            self.dropped += d.dropped;
            self.refused_frames += offered - taken - held;
            order
        }

        fn complete(&mut self, port: usize, max: usize) {
            let n = max.min(self.cq[port].len());
            let done: Vec<Addr> = self.cq[port].drain(..n).collect();
            self.ledger.completed(port, &done);
        }

        /// The ledger balances, agrees with the model kernel and shards,
        /// and every frame is in exactly one place.
        fn check(&self) -> Result<(), TestCaseError> {
            let l = &self.ledger;
            if let Err(e) = l.check() {
                return Err(TestCaseError::fail(e.to_string()));
            }
            for p in 0..PORTS {
                prop_assert_eq!(l.on_fill[p], self.fill[p].len() + self.rx[p].len());
                prop_assert_eq!(l.on_tx[p], self.tx[p].len() + self.cq[p].len());
            }
            let at_shards: Vec<&Batch<Addr>> = self.shards.iter().flatten().collect();
            prop_assert_eq!(l.in_flight, at_shards.len());
            let mut seen: Vec<Addr> = l.free.iter().map(|f| f.0).collect();
            seen.extend(l.pending_tx.iter().flatten().map(|f| f.0));
            let batches = l
                .filling
                .iter()
                .flatten()
                .chain(l.stuck.iter().map(|(_, b)| b));
            for b in batches.chain(at_shards) {
                seen.extend(b.slots.iter().map(|s| *s.frame.desc()));
            }
            for ring in [&self.fill, &self.rx, &self.tx, &self.cq] {
                seen.extend(ring.iter().flatten());
            }
            seen.sort();
            let all: Vec<Addr> = (0..self.frames).map(Addr).collect();
            prop_assert_eq!(seen, all, "each frame exactly once");
            Ok(())
        }

        /// Stop as `io.rs` does: rounds until the ledger says stop, the
        /// kernel sending everything and the shards answering; then flush.
        fn stop(&mut self) -> Result<(), TestCaseError> {
            let mut ms = 0;
            loop {
                ms += 1;
                prop_assert!(ms < 1000, "never stopped");
                let now = self.t0 + Duration::from_millis(ms);
                for p in 0..PORTS {
                    let n = self.tx[p].len();
                    shift(&mut self.tx[p], &mut self.cq[p], n);
                    self.complete(p, usize::MAX);
                }
                for sh in 0..self.shards.len() {
                    for _ in 0..self.shards[sh].len() {
                        self.apply(&Op::Verdict {
                            shard: sh,
                            allow: 0x5555,
                        })?;
                    }
                }
                for p in 0..PORTS {
                    self.apply(&Op::Transmit {
                        port: p,
                        room: RING,
                        take: RING,
                    })?;
                    self.apply(&Op::Fill {
                        port: p,
                        room: RING,
                        take: RING,
                    })?;
                }
                self.dispatch(0, 0)?;
                let mut got = 0;
                for p in 0..PORTS {
                    got += self.receive(p, usize::MAX, ms);
                }
                self.dispatch(0, 0)?;
                self.check()?;
                if let Step::Stop { unreturned } = self.ledger.poll_stop(true, got, now) {
                    prop_assert_eq!(unreturned, 0);
                    break;
                }
            }
            while self.ledger.flushing(self.t0 + Duration::from_millis(ms)) {
                ms += 1;
                for p in 0..PORTS {
                    self.apply(&Op::Transmit {
                        port: p,
                        room: RING,
                        take: RING,
                    })?;
                    self.apply(&Op::Send { port: p, n: RING })?;
                    self.complete(p, usize::MAX);
                }
            }
            self.check()?;
            // Everything allowed went out and came back.
            for p in 0..PORTS {
                prop_assert_eq!(self.ledger.pending_tx(p) + self.ledger.on_tx(p), 0);
            }
            prop_assert_eq!(
                self.ledger.free() + self.fill.iter().map(VecDeque::len).sum::<usize>(),
                self.frames as usize
            );
            Ok(())
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// No frame is ever lost or held twice, whatever the kernel, the
        /// ring room and the shards do, and stopping brings every one back.
        #[test]
        fn no_frame_is_lost_or_doubled(
            frames in 1..40u64,
            inspect in prop::bool::weighted(0.8),
            drop in any::<bool>(),
            ops in prop::collection::vec(op(), 0..300),
        ) {
            let policy = if drop { QueueFullPolicy::Drop } else { QueueFullPolicy::Bypass };
            let mut rig = Rig::new(frames, inspect, policy);
            rig.check()?;
            for op in &ops {
                rig.apply(op)?;
                rig.check()?;
            }
            rig.stop()?;
            prop_assert_eq!(rig.bypassed + rig.dropped, rig.refused_frames);
        }
    }
}
