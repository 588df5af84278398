//! Who holds each UMEM frame of one I/O thread, kept without any I/O.
//!
//! Every frame is in exactly one place at any time:
//!
//! ```text
//!   free ──fill──► fill ring ──RX──► batch being filled ──► stuck ──► shard
//!    ▲  ▲             (kernel)          (one per shard)    (queue full)  │
//!    │  │                                                        verdict │
//!    │  └──────────────────────────── DROP ◄─────────────────────────────┤
//!    │                                                                   ▼
//!    └──completion── TX ring ◄──transmit── pending TX (other port) ◄── ALLOW
//!                    (kernel)
//! ```
//!
//! The I/O thread (`io.rs`) moves descriptors on and off the rings and
//! tells the [`Ledger`] at every hand-over; the ledger touches no ring and
//! reads no clock, so every transition runs in unit tests without a NIC or
//! root. Frames userspace holds are owned [`Frame`] values, so one can be in
//! one place only; frames the kernel holds are counted per port and ring,
//! since only the kernel knows which they are until it hands them back.

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
}

/// Frames of one RX round for one shard, all from one I/O thread.
///
/// The slots can be read and given verdicts but not added or removed, so a
/// batch comes back with the frames it left with.
pub struct Batch<D> {
    /// The I/O thread it goes back to.
    pub io: usize,
    /// Receive time of the round (wall clock ns), the packets' time.
    pub ts: Ts,
    /// Receive time of the round, for the verdict latency.
    pub rx_at: Instant,
    slots: Vec<Slot<D>>,
}

impl<D> Batch<D> {
    /// The frames, to set their verdicts.
    pub fn slots_mut(&mut self) -> &mut [Slot<D>] {
        &mut self.slots
    }
}

/// Why a shard queue did not take a batch; the batch comes back with it.
pub enum Refused<D> {
    /// The queue is full: try again later.
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
    /// Batches of this round a full shard queue refused (not counting
    /// retries of batches already stuck).
    pub refused: usize,
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
    /// This round's batch per shard.
    filling: Vec<Option<Batch<D>>>,
    /// Batches a full shard queue refused, oldest first; retried before any
    /// new RX, in order per shard.
    stuck: Vec<(usize, Batch<D>)>,
    /// Spare list `dispatch` swaps with `stuck` (no allocation per round).
    retry: Vec<(usize, Batch<D>)>,
    /// Per shard: refused during this `dispatch`.
    refused: Vec<bool>,
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
    /// `shards` shards with batches of about `batch_size` frames.
    pub fn new(io: usize, shards: usize, batch_size: usize, descs: Vec<D>) -> Ledger<D> {
        Ledger {
            io,
            batch_size,
            total: descs.len(),
            free: descs.into_iter().map(Frame).collect(),
            pending_tx: [Vec::new(), Vec::new()],
            on_fill: [0; PORTS],
            on_tx: [0; PORTS],
            in_flight: 0,
            in_flight_frames: 0,
            filling: (0..shards).map(|_| None).collect(),
            stuck: Vec::new(),
            retry: Vec::new(),
            refused: vec![false; shards],
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

    /// Allowed frames waiting for room on `port`'s TX ring.
    pub fn pending_tx(&self, port: usize) -> usize {
        self.pending_tx[port].len()
    }

    /// Frames on `port`'s TX ring, not yet completed.
    pub fn on_tx(&self, port: usize) -> usize {
        self.on_tx[port]
    }

    /// A shard queue refused a batch: receive nothing until it is taken
    /// (the kernel's RX ring absorbs the burst, then drops and counts).
    pub fn rx_paused(&self) -> bool {
        !self.stuck.is_empty()
    }

    /// Something will come back without new traffic: a verdict, a
    /// completion, or room in a shard queue.
    pub fn waiting(&self) -> bool {
        self.in_flight > 0 || !self.stuck.is_empty() || self.on_tx.iter().any(|&n| n > 0)
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
    /// shard count). It joins this round's batch for that shard; `ts` and
    /// `rx_at` are the round's receive times.
    pub fn rx(&mut self, port: usize, desc: D, shard: usize, ts: Ts, rx_at: Instant) {
        self.anomalies += take_back(&mut self.on_fill[port], 1);
        let b = self.filling[shard].get_or_insert_with(|| {
            let mut b = self.pool.pop().unwrap_or_else(|| Batch {
                io: self.io,
                ts,
                rx_at,
                slots: Vec::with_capacity(self.batch_size),
            });
            b.ts = ts;
            b.rx_at = rx_at;
            b
        });
        b.slots.push(Slot {
            frame: Frame(desc),
            port: port as u8,
            allow: false,
        });
    }

    /// `port`'s RX ring returned `descs`, to leave by the other port
    /// uninspected (`live.inspect = false`).
    pub fn forward(&mut self, port: usize, descs: &[D]) {
        self.anomalies += take_back(&mut self.on_fill[port], descs.len());
        self.pending_tx[1 - port].extend(descs.iter().map(|&d| Frame(d)));
    }

    /// Hands batches to their shards through `send`: the stuck ones first,
    /// then this round's, so each shard sees its batches in RX order. A
    /// shard that refuses one gets no later one this call. Errs (keeping
    /// every frame accounted for) when a shard is gone.
    pub fn dispatch(
        &mut self,
        mut send: impl FnMut(usize, Batch<D>) -> Result<(), Refused<D>>,
    ) -> Result<Dispatch, ShardGone> {
        let mut out = Dispatch::default();
        let mut gone = None;
        self.refused.fill(false);
        std::mem::swap(&mut self.stuck, &mut self.retry);
        let filling = self.filling.iter_mut().enumerate();
        let fresh = filling.filter_map(|(sh, b)| b.take().map(|b| (sh, b, true)));
        let queued = self.retry.drain(..).map(|(sh, b)| (sh, b, false));
        for (sh, b, new) in queued.chain(fresh) {
            if gone.is_some() || self.refused[sh] {
                self.stuck.push((sh, b));
                continue;
            }
            let frames = b.slots.len();
            match send(sh, b) {
                Ok(()) => {
                    self.in_flight += 1;
                    self.in_flight_frames += frames;
                    out.sent += 1;
                }
                Err(Refused::Full(b)) => {
                    self.refused[sh] = true;
                    out.refused += usize::from(new);
                    self.stuck.push((sh, b));
                }
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

    /// A shard returned `batch` with its verdicts: allowed frames wait for
    /// the other port's TX ring, dropped ones are free again.
    pub fn verdict(&mut self, mut batch: Batch<D>) {
        self.anomalies += take_back(&mut self.in_flight, 1);
        self.anomalies += take_back(&mut self.in_flight_frames, batch.slots.len());
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
        Ledger::new(0, shards, 4, (0..frames).map(Addr).collect())
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

    #[test]
    fn a_full_shard_queue_keeps_batches_stuck_in_order_and_pauses_rx() {
        let mut l = ledger(16, 2);
        let t = Instant::now();
        l.fill(0, 16, |d| d.len());
        // Round 1: shard 0 is full, shard 1 takes its batch.
        l.rx(0, Addr(1), 0, 1, t);
        l.rx(0, Addr(2), 1, 1, t);
        let mut sent = Vec::new();
        let d = l.dispatch(|sh, b| {
            if sh == 0 {
                return Err(Refused::Full(b));
            }
            sent.push((sh, b));
            Ok(())
        });
        assert_eq!(d.map(|d| (d.sent, d.refused)), Ok((1, 1)));
        assert!(l.rx_paused() && l.waiting());
        l.check().unwrap();
        // The driver would not receive now; if frames do come they queue
        // behind the stuck batch of their shard.
        l.rx(0, Addr(3), 0, 2, t);
        l.rx(0, Addr(4), 1, 2, t);
        let mut offers = Vec::new();
        let d = l.dispatch(|sh, b| {
            offers.push((sh, addrs(&b)));
            match sh {
                0 => Err(Refused::Full(b)),
                _ => {
                    sent.push((sh, b));
                    Ok(())
                }
            }
        });
        // Shard 0 refused its oldest batch, so its newer one is not offered.
        assert_eq!(offers, [(0, vec![1]), (1, vec![4])]);
        assert_eq!(d.map(|d| (d.sent, d.refused)), Ok((1, 0)));
        assert_eq!(l.stuck.len(), 2);
        l.check().unwrap();
        // Room again: both go, oldest first, and RX resumes.
        let d = l.dispatch(accept(&mut sent)).unwrap();
        assert_eq!((d.sent, d.refused), (2, 0));
        let order: Vec<_> = sent.iter().map(|(sh, b)| (*sh, addrs(b))).collect();
        assert_eq!(
            order,
            [(1, vec![2]), (1, vec![4]), (0, vec![1]), (0, vec![3])]
        );
        assert!(!l.rx_paused());
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
        assert_eq!(l.poll_stop(true, 0, end), Step::Stop { unreturned: 2 });
        // The frames are still accounted for: at the shard, or stuck.
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
        Dispatch { refuse: u16 },
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
            any::<u16>().prop_map(|refuse| Op::Dispatch { refuse }),
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
        fn new(frames: u64, inspect: bool) -> Rig {
            let shards = if inspect { SHARDS } else { 0 };
            Rig {
                ledger: Ledger::new(0, shards, 4, (0..frames).map(Addr).collect()),
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
                Op::Dispatch { refuse } => self.dispatch(refuse)?,
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

        fn dispatch(&mut self, mut refuse: u16) -> Result<(), TestCaseError> {
            let (shards, last_ts) = (&mut self.shards, &mut self.last_ts);
            let mut order = Ok(());
            let d = self.ledger.dispatch(|sh, b| {
                let full = refuse & 1 == 1;
                refuse = refuse.rotate_right(1);
                if full {
                    return Err(Refused::Full(b));
                }
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
            });
            prop_assert!(d.is_ok());
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
                self.dispatch(0)?;
                let mut got = 0;
                for p in 0..PORTS {
                    got += self.receive(p, usize::MAX, ms);
                }
                self.dispatch(0)?;
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
            ops in prop::collection::vec(op(), 0..300),
        ) {
            let mut rig = Rig::new(frames, inspect);
            rig.check()?;
            for op in &ops {
                rig.apply(op)?;
                rig.check()?;
            }
            rig.stop()?;
        }
    }
}
