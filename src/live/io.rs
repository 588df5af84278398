//! The I/O thread of one queue pair: it owns the AF_XDP sockets bound to
//! queue `q` of both ports and the UMEM they share, so a frame received on
//! one port is transmitted on the other without a copy.
//!
//! ```text
//!  RX ingress q ─┐                              ┌─► TX egress q  (ALLOW)
//!                ├─► shard of source ─► worker ─┤
//!  RX egress q  ─┘    (batch per shard)         ├─► TX ingress q (ALLOW)
//!                                               └─► free → fill rings (DROP)
//! ```
//!
//! Every ring is touched by this thread only. It never blocks on a worker:
//! a batch a starved shard cannot take is forwarded uninspected or dropped
//! on the spot (`live.queue_full`, counted per policy) and RX goes on,
//! while verdicts keep being drained.
//!
//! This file does the ring calls; which frame is where, and when to stop,
//! is kept by the ledger (`frames.rs`), which the tests drive without a NIC.
//!
//! Idle, the thread sleeps in poll(2): on both RX sockets (POLLIN) and on
//! an eventfd ([`Waker`]) the shards write when they hand a batch back
//! while it sleeps. Under load it spins a bounded number of empty rounds
//! (yielding the CPU) before it parks, so a busy line pays no wakeups.

use super::frames::{Ledger, Refused, Step};
use super::worker::{Batch, ToShard};
use crate::metrics::{PortCounts, PortPublisher};
use crate::packet::{self, LinkType};
use crate::shard::Sharder;
use crossbeam_channel::{Receiver, Sender, TrySendError};
use nix::sys::eventfd::{EfdFlags, EventFd};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::sync::atomic::{fence, AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use xsk_rs::{CompQueue, FillQueue, FrameDesc, RxQueue, TxQueue};

/// Empty rounds the I/O thread spins (yielding) before it parks in poll(2).
const SPIN_ROUNDS: u32 = 64;

/// Wakes a parked I/O thread. The shards call [`Waker::wake`] after each
/// batch they hand back; it writes the eventfd only when the thread said
/// it is about to sleep, so a busy line costs one fence and one load per
/// batch, not a syscall.
pub struct Waker {
    fd: EventFd,
    sleeping: AtomicBool,
}

impl Waker {
    pub fn new() -> std::io::Result<Waker> {
        let fd = EventFd::from_flags(EfdFlags::EFD_NONBLOCK | EfdFlags::EFD_CLOEXEC)?;
        Ok(Waker {
            fd,
            sleeping: AtomicBool::new(false),
        })
    }

    /// After handing a batch back (the channel send happens before this):
    /// wakes the thread if it is parked or about to park.
    pub fn wake(&self) {
        // Pairs with the fence in `park`: either this load sees `sleeping`,
        // or the I/O thread's check of its return queue sees the batch.
        fence(Ordering::SeqCst);
        if self.sleeping.load(Ordering::Relaxed) && self.sleeping.swap(false, Ordering::Relaxed) {
            self.kick();
        }
    }

    /// Wakes the thread whatever it is doing (stop requests).
    pub fn kick(&self) {
        // EAGAIN only when the counter is at its maximum: awake anyway.
        let _ = self.fd.write(1);
    }
}

/// The four rings of one AF_XDP socket.
pub struct Port {
    pub name: String,
    pub tx: TxQueue,
    pub rx: RxQueue,
    pub fq: FillQueue,
    pub cq: CompQueue,
    counts: PortCounts,
    publisher: PortPublisher,
    /// TX wakeups the kernel refused (logged once: a port that went away
    /// fails every one until the control thread stops the run).
    wakeup_errors: u64,
}

impl Port {
    pub fn new(
        name: &str,
        queue: u32,
        tx: TxQueue,
        rx: RxQueue,
        fq: FillQueue,
        cq: CompQueue,
    ) -> Port {
        Port {
            name: name.to_string(),
            tx,
            rx,
            fq,
            cq,
            counts: PortCounts::default(),
            publisher: PortPublisher::new(name, queue),
            wakeup_errors: 0,
        }
    }
}

pub struct IoThread {
    pub id: usize,
    pub queue: u32,
    pub ports: [Port; 2],
    /// Where each frame of this UMEM is; the loop below moves them between
    /// the rings and tells the ledger at every hand-over.
    pub ledger: Ledger<FrameDesc>,
    pub to_shard: Vec<Sender<ToShard>>,
    pub back: Receiver<Batch>,
    pub stop: Arc<AtomicBool>,
    pub batch_size: usize,
    pub publish_every: Duration,
    pub shared: Arc<super::Shared>,
    /// `false`: forward everything without a shard (benchmark baseline).
    pub inspect: bool,
    /// Batches a starved shard could not take (published as a delta).
    pub queue_full: u64,
    /// Their frames, forwarded uninspected or dropped per the policy.
    pub overflow_frames: u64,
    /// `live.queue_full` in force (the ledger applies it; this labels the
    /// counter).
    pub policy: crate::config::QueueFullPolicy,
    /// The deployment's keyed shard hash (the same one offline analysis
    /// needs to reproduce this box).
    pub sharder: Sharder,
    /// The shards' (and the stop request's) way to wake this thread.
    pub waker: Arc<Waker>,
}

/// Offers a batch to a shard queue without waiting.
fn send(to: &Sender<ToShard>, b: Batch) -> Result<(), Refused<FrameDesc>> {
    match to.try_send(ToShard::Batch(b)) {
        Ok(()) => Ok(()),
        Err(e) => {
            let full = matches!(e, TrySendError::Full(_));
            let ToShard::Batch(b) = e.into_inner() else {
                unreachable!("try_send hands back the message it was given")
            };
            Err(if full {
                Refused::Full(b)
            } else {
                Refused::Closed(b)
            })
        }
    }
}

impl IoThread {
    pub fn run(mut self) {
        for p in &self.ports {
            p.publisher.start();
        }
        let shared = self.shared.clone();
        let umem = &shared.umems[self.id];
        let shards = self.to_shard.len();
        let latency = crate::metrics::verdict_latency(self.queue);
        let labels = super::latency::QUANTILES.map(|(_, l)| l);
        let (packet_quantiles, packet_count) = crate::metrics::packet_latency(self.queue, &labels);
        let mut per_packet = super::latency::Histogram::default();
        let mut per_packet_published = 0u64;
        // (receive time, packets) of the batches returned this round.
        let mut returned: Vec<(Instant, u64)> = Vec::with_capacity(shards * 4);
        let queue_full = crate::metrics::queue_full(self.queue);
        let overflow = crate::metrics::queue_full_packets(self.queue, self.policy.as_str());
        let mut queue_full_published = 0u64;
        let mut overflow_published = 0u64;
        let mut scratch = vec![FrameDesc::default(); self.batch_size.max(64)];
        let mut spread = 0usize;
        let mut last_publish = Instant::now();
        let mut idle_rounds = 0u32;
        let mut reported_imbalance = false;

        loop {
            let stopping = self.stop.load(Ordering::Relaxed);
            let mut work = false;

            // 1. Completed transmissions give their frames back.
            for (port, p) in self.ports.iter_mut().enumerate() {
                if self.ledger.on_tx(port) > 0 {
                    // SAFETY: descriptors are written by the kernel's CQ and
                    // point into this UMEM; `scratch` is ours.
                    let n = unsafe { p.cq.consume(&mut scratch) };
                    if n > 0 {
                        self.ledger.completed(port, &scratch[..n]);
                        work = true;
                    }
                }
            }

            // 2. Verdicts: ALLOW leaves by the other port, DROP is recycled.
            while let Ok(b) = self.back.try_recv() {
                work = true;
                latency.record(b.rx_at.elapsed().as_secs_f64());
                returned.push((b.rx_at, b.len() as u64));
                self.ledger.verdict(b);
            }

            // 3. Transmit what fits; keep kicking while frames are in
            // flight (copy mode sends a bounded number per wakeup).
            for (port, p) in self.ports.iter_mut().enumerate() {
                let pending = self.ledger.pending_tx(port);
                if pending > 0 {
                    let room = p.tx.nb_free(pending as u32) as usize;
                    let sent = self.ledger.transmit(port, room, |descs| {
                        // SAFETY: the ledger offers only frames it owns
                        // (back from a shard, or received uninspected): on
                        // no other ring and in no shard. The TX ring is this
                        // UMEM's.
                        unsafe { p.tx.produce(descs) }
                    });
                    p.counts.tx_packets += sent as u64;
                    work |= sent > 0;
                }
                if self.ledger.on_tx(port) > 0 && p.tx.needs_wakeup() {
                    if let Err(e) = p.tx.wakeup() {
                        if p.wakeup_errors == 0 {
                            tracing::warn!(
                                "TX wakeup on {} queue {}: {e} (further failures counted, not logged)",
                                p.name,
                                self.queue
                            );
                        }
                        p.wakeup_errors += 1;
                    }
                }
            }

            // Per-packet latency: every packet of a returned batch (or, not
            // inspecting, of the last RX round) waited from its RX round
            // until now (its frame on a TX ring or free).
            if !returned.is_empty() {
                let now = Instant::now();
                for (rx_at, n) in returned.drain(..) {
                    per_packet.record_n(now.saturating_duration_since(rx_at).as_nanos() as u64, n);
                }
            }

            // 4. Refill the fill rings from the free frames.
            for (port, p) in self.ports.iter_mut().enumerate() {
                let free = self.ledger.free();
                if free == 0 {
                    break;
                }
                let room = p.fq.nb_free(free as u32) as usize;
                self.ledger.fill(port, room, |descs| {
                    // SAFETY: the ledger offers only free frames: on no ring
                    // and in no shard.
                    unsafe { p.fq.produce(descs) }
                });
            }

            // 5. Receive, whatever the shards are doing. Stopping: the
            // sockets are out of the XSKMAP already, so this drains what
            // the kernel put on the rings before that.
            let mut got = 0usize;
            {
                let now_ts = super::wall_ns();
                let rx_at = Instant::now();
                for port in 0..2 {
                    let p = &mut self.ports[port];
                    // SAFETY: the RX ring hands us descriptors of frames the
                    // kernel has finished writing; `scratch` is ours.
                    let n = unsafe { p.rx.consume(&mut scratch) };
                    if n == 0 {
                        // need_wakeup (as xdpsock does): a driver that went to sleep on
                        // an empty fill ring needs a kick even while the other port
                        // keeps this thread busy.
                        if p.fq.needs_wakeup() {
                            let _ = p.fq.wakeup(p.rx.fd_mut(), 0);
                        }
                        continue;
                    }
                    work = true;
                    got += n;
                    p.counts.rx_packets += n as u64;
                    for d in &scratch[..n] {
                        p.counts.rx_bytes += d.lengths().data() as u64;
                    }
                    if !self.inspect {
                        self.ledger.forward(port, &scratch[..n]);
                        // Latency as for a returned batch: taken after the
                        // next round's transmit step.
                        returned.push((rx_at, n as u64));
                        continue;
                    }
                    for d in &scratch[..n] {
                        // SAFETY: just consumed from RX and not yet handed
                        // on: the frame is ours and nothing writes it.
                        let data = unsafe { umem.data(d) };
                        let sh = match packet::source_of(LinkType::Ethernet, data.contents()) {
                            Some(ip) => self.sharder.shard_of(ip, shards),
                            None => {
                                spread = spread.wrapping_add(1);
                                spread % shards
                            }
                        };
                        self.ledger.rx(port, *d, sh, now_ts, rx_at);
                    }
                }
                // An idle shard gets what this round gathered at once;
                // holding it back to fill a batch would only add latency. A
                // shard with a batch still queued gets these frames later,
                // in a larger batch (adaptive batching, see
                // `Ledger::dispatch_when`). What a starved shard cannot take
                // is bypassed or dropped here, never waited on.
                let to_shard = &self.to_shard;
                match self.ledger.dispatch_when(
                    |sh, b| send(&to_shard[sh], b),
                    |sh| !to_shard[sh].is_empty(),
                ) {
                    Ok(d) => {
                        self.queue_full += d.refused as u64;
                        let n = (d.bypassed + d.dropped) as u64;
                        self.overflow_frames += n;
                        if n > 0 {
                            shared.add_overflow(self.policy, n);
                        }
                    }
                    Err(_) => return,
                }
            }

            if last_publish.elapsed() >= self.publish_every {
                last_publish = Instant::now();
                self.publish();
                queue_full.increment(self.queue_full - queue_full_published);
                queue_full_published = self.queue_full;
                overflow.increment(self.overflow_frames - overflow_published);
                overflow_published = self.overflow_frames;
                if per_packet.total() != per_packet_published {
                    for (g, (q, _)) in packet_quantiles.iter().zip(super::latency::QUANTILES) {
                        g.set(per_packet.quantile(q) as f64 * 1e-9);
                    }
                    packet_count.absolute(per_packet.total());
                    per_packet_published = per_packet.total();
                }
                self.audit(&mut reported_imbalance);
            }

            if let Step::Stop { unreturned } = self.ledger.poll_stop(stopping, got, Instant::now())
            {
                if unreturned > 0 {
                    tracing::error!(
                        "I/O thread {}: {unreturned} batch(es) never came back from the shards",
                        self.id
                    );
                }
                // Drain: forward what was allowed, then stop.
                while self.ledger.flushing(Instant::now()) {
                    self.flush_tx(&mut scratch);
                }
                self.publish();
                self.audit(&mut reported_imbalance);
                if per_packet.total() > 0 {
                    let us = |q| per_packet.quantile(q) as f64 / 1e3;
                    tracing::info!(
                        "I/O thread {}: per-packet latency RX to verdict applied over {} packets: p50 {:.1} us, p99 {:.1} us, p999 {:.1} us",
                        self.id,
                        per_packet.total(),
                        us(0.5),
                        us(0.99),
                        us(0.999)
                    );
                }
                tracing::debug!(
                    "I/O thread {} stopping ({} of {} frames free)",
                    self.id,
                    self.ledger.free(),
                    self.ledger.total()
                );
                return;
            }

            if work {
                idle_rounds = 0;
                continue;
            }
            idle_rounds = idle_rounds.saturating_add(1);
            if stopping {
                // Draining: stay responsive until the ledger says stop.
                if idle_rounds > SPIN_ROUNDS {
                    std::thread::sleep(Duration::from_micros(20));
                } else {
                    std::thread::yield_now();
                }
            } else if idle_rounds <= SPIN_ROUNDS {
                // A busy line: the next frame or batch is a moment away.
                std::thread::yield_now();
            } else if self.ledger.on_tx(0) + self.ledger.on_tx(1) > 0 || self.ledger.holding() > 0 {
                // Frames on a TX ring: completions are not pollable, and
                // copy mode sends a bounded number per kick. Or frames held
                // for a busy shard: its queue empties without telling this
                // thread when the batch ahead was another I/O thread's.
                // Sleep briefly (still woken by RX or a returned batch) and
                // look again.
                self.park(Some(Duration::from_micros(20)));
            } else {
                // Nothing to kick: RX or a returned batch wakes us; the
                // timeout only keeps the metrics publishing.
                let next = self.publish_every.saturating_sub(last_publish.elapsed());
                self.park(Some(next.max(Duration::from_millis(1))));
            }
        }
    }

    fn flush_tx(&mut self, scratch: &mut [FrameDesc]) {
        for (port, p) in self.ports.iter_mut().enumerate() {
            let pending = self.ledger.pending_tx(port);
            if pending > 0 {
                let room = p.tx.nb_free(pending as u32) as usize;
                let sent = self.ledger.transmit(port, room, |descs| {
                    // SAFETY: as in the main loop.
                    unsafe { p.tx.produce(descs) }
                });
                p.counts.tx_packets += sent as u64;
            }
            if self.ledger.on_tx(port) > 0 {
                let _ = p.tx.wakeup();
                // SAFETY: as in the main loop.
                let n = unsafe { p.cq.consume(scratch) };
                self.ledger.completed(port, &scratch[..n]);
            }
        }
        std::thread::yield_now();
    }

    /// Logs (once) a frame the ledger cannot account for: a bug here, or a
    /// kernel or shard handing back more than it was given.
    fn audit(&self, reported: &mut bool) {
        if let Err(e) = self.ledger.check() {
            if !*reported {
                tracing::error!("I/O thread {}: frame accounting: {e}", self.id);
                *reported = true;
            }
        }
    }

    /// Sleeps in poll(2) until a frame arrives on either RX ring, a shard
    /// hands a batch back (the eventfd), a stop request, or `timeout`.
    /// Polling the sockets is also the need_wakeup kick (RX fill and, in
    /// copy mode, TX).
    fn park(&mut self, timeout: Option<Duration>) {
        use nix::poll::{ppoll, PollFd, PollFlags};
        use nix::sys::time::TimeSpec;
        self.waker.sleeping.store(true, Ordering::Relaxed);
        // Pairs with the fence in `Waker::wake`: a batch sent before the
        // shard's check of `sleeping` is seen here, or the shard sees
        // `sleeping` and writes the eventfd.
        fence(Ordering::SeqCst);
        if !self.back.is_empty() || self.stop.load(Ordering::Relaxed) {
            self.waker.sleeping.store(false, Ordering::Relaxed);
            return;
        }
        let [a, b] = [0, 1].map(|i| self.ports[i].rx.fd().as_raw_fd());
        // SAFETY: both sockets are owned by `self` and outlive this call.
        let (a, b) = unsafe { (BorrowedFd::borrow_raw(a), BorrowedFd::borrow_raw(b)) };
        let mut fds = [
            PollFd::new(a, PollFlags::POLLIN),
            PollFd::new(b, PollFlags::POLLIN),
            PollFd::new(self.waker.fd.as_fd(), PollFlags::POLLIN),
        ];
        let _ = ppoll(&mut fds, timeout.map(TimeSpec::from_duration), None);
        self.waker.sleeping.store(false, Ordering::Relaxed);
        if fds[2]
            .revents()
            .is_some_and(|r| r.contains(PollFlags::POLLIN))
        {
            // Reset the counter (non-blocking; a racing write just wakes
            // the next park at once).
            let _ = self.waker.fd.read();
        }
    }

    fn publish(&mut self) {
        for p in self.ports.iter_mut() {
            if let Ok(s) = p.rx.fd().xdp_statistics() {
                p.counts.xsk_rx_dropped = s.rx_dropped() + s.rx_ring_full();
            }
            p.publisher.publish(&p.counts);
        }
    }
}
