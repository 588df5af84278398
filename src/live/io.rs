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
//! a full shard queue leaves the batch pending and RX pauses (the kernel's
//! RX ring absorbs the burst, then drops and counts), while verdicts keep
//! being drained.

use super::worker::{Batch, Slot, ToShard};
use crate::metrics::{PortCounts, PortPublisher};
use crate::packet::{self, LinkType};
use crate::shard::Sharder;
use crossbeam_channel::{Receiver, Sender, TrySendError};
use std::os::fd::{AsRawFd, BorrowedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use xsk_rs::{CompQueue, FillQueue, FrameDesc, RxQueue, TxQueue};

/// The four rings of one AF_XDP socket.
pub struct Port {
    pub name: String,
    pub tx: TxQueue,
    pub rx: RxQueue,
    pub fq: FillQueue,
    pub cq: CompQueue,
    /// Allowed frames waiting for room on the TX ring.
    pending_tx: Vec<FrameDesc>,
    /// Submitted to TX, not yet completed.
    in_tx: usize,
    counts: PortCounts,
    publisher: PortPublisher,
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
            pending_tx: Vec::new(),
            in_tx: 0,
            counts: PortCounts::default(),
            publisher: PortPublisher::new(name, queue),
        }
    }
}

pub struct IoThread {
    pub id: usize,
    pub queue: u32,
    pub ports: [Port; 2],
    /// Frames owned by this thread and not on any ring or in any shard.
    pub free: Vec<FrameDesc>,
    pub to_shard: Vec<Sender<ToShard>>,
    pub back: Receiver<Batch>,
    pub stop: Arc<AtomicBool>,
    pub batch_size: usize,
    pub publish_every: Duration,
    pub shared: Arc<super::Shared>,
    /// `false`: forward everything without a shard (benchmark baseline).
    pub inspect: bool,
    /// Times a shard queue refused a batch (published as a delta).
    pub queue_full: u64,
}

impl IoThread {
    pub fn run(mut self) {
        let shared = self.shared.clone();
        let umem = &shared.umems[self.id];
        let shards = self.to_shard.len();
        let latency = crate::metrics::verdict_latency(self.queue);
        let queue_full = crate::metrics::queue_full(self.queue);
        let mut queue_full_published = 0u64;
        let total_frames = self.free.len();
        let mut filling: Vec<Option<Batch>> = (0..shards).map(|_| None).collect();
        let mut pool: Vec<Batch> = Vec::new();
        // Batches a full shard queue refused; retried before any new RX.
        let mut stuck: Vec<(usize, Batch)> = Vec::new();
        let mut in_flight = 0usize;
        let mut scratch = vec![FrameDesc::default(); self.batch_size.max(64)];
        let mut spread = 0usize;
        let mut last_publish = Instant::now();
        let mut idle_rounds = 0u32;
        let mut stop_seen: Option<Instant> = None;

        loop {
            let stopping = self.stop.load(Ordering::Relaxed);
            let mut work = false;

            // 1. Completed transmissions give their frames back.
            for p in self.ports.iter_mut() {
                if p.in_tx > 0 {
                    // SAFETY: descriptors are written by the kernel's CQ and
                    // point into this UMEM; `scratch` is ours.
                    let n = unsafe { p.cq.consume(&mut scratch) };
                    if n > 0 {
                        p.in_tx -= n;
                        self.free.extend_from_slice(&scratch[..n]);
                        work = true;
                    }
                }
            }

            // 2. Verdicts: ALLOW leaves by the other port, DROP is recycled.
            while let Ok(mut b) = self.back.try_recv() {
                in_flight -= 1;
                work = true;
                latency.record(b.rx_at.elapsed().as_secs_f64());
                for s in b.slots.drain(..) {
                    if s.allow {
                        self.ports[1 - s.port as usize].pending_tx.push(s.desc);
                    } else {
                        self.free.push(s.desc);
                    }
                }
                pool.push(b);
            }

            // 3. Transmit what fits; keep kicking while frames are in
            // flight (copy mode sends a bounded number per wakeup).
            for p in self.ports.iter_mut() {
                if !p.pending_tx.is_empty() {
                    let room = p.tx.nb_free(p.pending_tx.len() as u32) as usize;
                    let n = room.min(p.pending_tx.len());
                    if n > 0 {
                        // SAFETY: these frames came back from a shard and are
                        // on no other ring; the TX ring is this UMEM's.
                        let sent = unsafe { p.tx.produce(&p.pending_tx[..n]) };
                        p.pending_tx.drain(..sent);
                        p.in_tx += sent;
                        p.counts.tx_packets += sent as u64;
                        work |= sent > 0;
                    }
                }
                if p.in_tx > 0 && p.tx.needs_wakeup() {
                    if let Err(e) = p.tx.wakeup() {
                        tracing::warn!("TX wakeup on {} queue {}: {e}", p.name, self.queue);
                    }
                }
            }

            // 4. Refill the fill rings from the free frames.
            for p in self.ports.iter_mut() {
                if self.free.is_empty() {
                    break;
                }
                let room = p.fq.nb_free(self.free.len() as u32) as usize;
                let n = room.min(self.free.len());
                if n > 0 {
                    let at = self.free.len() - n;
                    // SAFETY: free frames are on no ring and in no shard.
                    let put = unsafe { p.fq.produce(&self.free[at..]) };
                    self.free.truncate(self.free.len() - put);
                }
            }

            // 5. Hand pending batches to their shards, in order per shard.
            if !stuck.is_empty() {
                let mut refused = vec![false; shards];
                for (sh, b) in std::mem::take(&mut stuck) {
                    if refused[sh] {
                        stuck.push((sh, b));
                        continue;
                    }
                    match self.to_shard[sh].try_send(ToShard::Batch(b)) {
                        Ok(()) => {
                            in_flight += 1;
                            work = true;
                        }
                        Err(TrySendError::Full(ToShard::Batch(b))) => {
                            refused[sh] = true;
                            stuck.push((sh, b));
                        }
                        Err(_) => return,
                    }
                }
            }

            // 6. Receive, unless shards are behind or we are stopping.
            // Stopping: the sockets are out of the XSKMAP already, so this
            // drains what the kernel put on the rings before that.
            let mut got = 0usize;
            if stuck.is_empty() {
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
                    if !self.inspect {
                        for d in &scratch[..n] {
                            p.counts.rx_bytes += d.lengths().data() as u64;
                        }
                        self.ports[1 - port]
                            .pending_tx
                            .extend_from_slice(&scratch[..n]);
                        continue;
                    }
                    for d in &scratch[..n] {
                        p.counts.rx_bytes += d.lengths().data() as u64;
                        // SAFETY: just consumed from RX, owned by us.
                        let data = unsafe { umem.data(d) };
                        let sh = match packet::source_of(LinkType::Ethernet, data.contents()) {
                            Some(ip) => Sharder::DEFAULT.shard_of(ip, shards),
                            None => {
                                spread = spread.wrapping_add(1);
                                spread % shards
                            }
                        };
                        let b = filling[sh].get_or_insert_with(|| {
                            let mut b = pool.pop().unwrap_or_else(|| Batch {
                                io: self.id,
                                ts: 0,
                                rx_at,
                                slots: Vec::with_capacity(self.batch_size),
                            });
                            b.ts = now_ts;
                            b.rx_at = rx_at;
                            b
                        });
                        b.slots.push(Slot {
                            desc: *d,
                            port: port as u8,
                            allow: false,
                        });
                    }
                }
                // Send whatever this round gathered: holding frames back to
                // fill a batch would add latency.
                for (sh, slot) in filling.iter_mut().enumerate() {
                    if let Some(b) = slot.take() {
                        match self.to_shard[sh].try_send(ToShard::Batch(b)) {
                            Ok(()) => in_flight += 1,
                            Err(TrySendError::Full(ToShard::Batch(b))) => {
                                self.queue_full += 1;
                                stuck.push((sh, b));
                            }
                            Err(_) => return,
                        }
                    }
                }
            }

            if last_publish.elapsed() >= self.publish_every {
                last_publish = Instant::now();
                self.publish();
                queue_full.increment(self.queue_full - queue_full_published);
                queue_full_published = self.queue_full;
            }

            if stopping && stop_seen.is_none() {
                stop_seen = Some(Instant::now());
            }
            let since = stop_seen;
            let drained = in_flight == 0 && stuck.is_empty() && got == 0;
            // Frames an XDP program on another CPU redirected just before
            // the map entry went arrive a moment later: wait briefly. A
            // shard that never answers (it died) is given up on.
            let give_up = since.is_some_and(|t| t.elapsed() > Duration::from_secs(5));
            if give_up && !drained {
                tracing::error!(
                    "I/O thread {}: {in_flight} batch(es) never came back from the shards",
                    self.id
                );
            }
            if since.is_some_and(|t| t.elapsed() > Duration::from_millis(20)) && drained || give_up
            {
                // Drain: forward what was allowed, then stop.
                let deadline = Instant::now() + Duration::from_millis(200);
                while self
                    .ports
                    .iter()
                    .any(|p| !p.pending_tx.is_empty() || p.in_tx > 0)
                    && Instant::now() < deadline
                {
                    self.flush_tx(&mut scratch);
                }
                self.publish();
                tracing::debug!(
                    "I/O thread {} stopping ({} of {total_frames} frames free)",
                    self.id,
                    self.free.len()
                );
                return;
            }

            if work {
                idle_rounds = 0;
            } else if in_flight > 0
                || !stuck.is_empty()
                || stopping
                || self.ports.iter().any(|p| p.in_tx > 0)
            {
                // Waiting on shards or the NIC: stay responsive.
                idle_rounds += 1;
                if idle_rounds > 64 {
                    std::thread::sleep(Duration::from_micros(20));
                } else {
                    std::thread::yield_now();
                }
            } else {
                // Nothing anywhere: sleep in poll() on both RX rings (this is
                // also the need_wakeup kick for the fill rings).
                self.wait_rx(10);
            }
        }
    }

    fn flush_tx(&mut self, scratch: &mut [FrameDesc]) {
        for p in self.ports.iter_mut() {
            if !p.pending_tx.is_empty() {
                let n = (p.tx.nb_free(p.pending_tx.len() as u32) as usize).min(p.pending_tx.len());
                // SAFETY: as in the main loop.
                let sent = unsafe { p.tx.produce(&p.pending_tx[..n]) };
                p.pending_tx.drain(..sent);
                p.in_tx += sent;
                p.counts.tx_packets += sent as u64;
            }
            if p.in_tx > 0 {
                let _ = p.tx.wakeup();
                // SAFETY: as in the main loop.
                let n = unsafe { p.cq.consume(scratch) };
                p.in_tx -= n;
                self.free.extend_from_slice(&scratch[..n]);
            }
        }
        std::thread::yield_now();
    }

    fn wait_rx(&mut self, timeout_ms: u16) {
        use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
        let [a, b] = [0, 1].map(|i| self.ports[i].rx.fd().as_raw_fd());
        // SAFETY: both sockets are owned by `self` and outlive this call.
        let (a, b) = unsafe { (BorrowedFd::borrow_raw(a), BorrowedFd::borrow_raw(b)) };
        let mut fds = [
            PollFd::new(a, PollFlags::POLLIN),
            PollFd::new(b, PollFlags::POLLIN),
        ];
        let _ = poll(&mut fds, PollTimeout::from(timeout_ms));
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
