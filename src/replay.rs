//! `flowgate replay`: transmit a capture onto an interface through an
//! AF_XDP socket (TX only), at the recorded timing, scaled by a speed
//! factor, or as fast as the ring takes frames. For driving a gateway
//! under test (the live rig, a lab box) with a known capture.
//!
//! Frames are written into UMEM frames taken from a free list, submitted
//! in batches, and the TX ring is kicked while any are in flight (copy mode
//! sends a bounded number per kick). Completed frames return to the list.

use crate::packet::{LinkType, Ts};
use crate::source::pcap::PcapSource;
use std::io::Write;
use std::ops::ControlFlow;
use std::path::Path;
use std::time::{Duration, Instant};
use xsk_rs::{CompQueue, FrameDesc, TxQueue, Umem};

/// Frames submitted per TX ring produce call at full speed.
const BATCH: usize = 64;

/// How fast `flowgate replay` sends.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Pace {
    /// Recorded inter-packet gaps divided by this factor (1.0 = as recorded).
    Speed(f64),
    /// As fast as the TX ring accepts frames.
    Top,
    /// A fixed rate, packets per second.
    Pps(u64),
}

/// What to replay, where, and how fast.
pub struct Options<'a> {
    /// The capture; every frame must be Ethernet.
    pub pcap: &'a Path,
    /// Interface to transmit on.
    pub iface: &'a str,
    /// The interface's TX queue to bind the AF_XDP socket to.
    pub queue: u32,
    /// Timing.
    pub pace: Pace,
    /// Stop after this many packets.
    pub limit: Option<u64>,
    /// Draw a progress bar on stderr.
    pub progress: bool,
}

/// What a replay sent (`--summary text|json`).
#[derive(Debug, Default, serde::Serialize)]
pub struct Report {
    /// Frames handed to the TX ring.
    pub packets: u64,
    /// Their bytes as captured (a snaplen-cut frame goes out cut).
    pub bytes: u64,
    /// Frames larger than a UMEM frame, not sent.
    pub too_large: u64,
    /// Wall-clock seconds from the first frame to the end of the drain.
    pub seconds: f64,
    /// `packets / seconds`.
    pub packets_per_second: f64,
    /// `bytes * 8 / seconds`.
    pub bits_per_second: f64,
    /// Reading stopped early (truncated capture); packets before it were sent.
    pub input_error: Option<String>,
}

impl Report {
    /// The text summary: one line, two if frames were skipped.
    pub fn render(&self) -> String {
        let mut s = format!(
            "replayed {} packets ({} bytes) in {:.3}s: {:.0} pkts/s, {:.1} Mbit/s\n",
            self.packets,
            self.bytes,
            self.seconds,
            self.packets_per_second,
            self.bits_per_second / 1e6
        );
        if self.too_large > 0 {
            s += &format!(
                "skipped {} frames larger than a UMEM frame\n",
                self.too_large
            );
        }
        s
    }
}

struct Tx {
    umem: Umem,
    tx: TxQueue,
    cq: CompQueue,
    free: Vec<FrameDesc>,
    pending: Vec<FrameDesc>,
    in_flight: usize,
    scratch: Vec<FrameDesc>,
}

impl Tx {
    fn reclaim(&mut self) {
        if self.in_flight == 0 {
            return;
        }
        // SAFETY: completion descriptors point into this UMEM; `scratch`
        // is ours.
        let n = unsafe { self.cq.consume(&mut self.scratch) };
        self.in_flight -= n;
        self.free.extend_from_slice(&self.scratch[..n]);
    }

    fn kick(&mut self) {
        if self.in_flight > 0 && self.tx.needs_wakeup() {
            if let Err(e) = self.tx.wakeup() {
                tracing::warn!("TX wakeup: {e}");
            }
        }
    }

    /// Submits what fits of the pending frames; returns how many went.
    fn submit(&mut self) -> usize {
        if self.pending.is_empty() {
            return 0;
        }
        let n = (self.tx.nb_free(self.pending.len() as u32) as usize).min(self.pending.len());
        // SAFETY: pending frames were written by us and are on no ring.
        let sent = unsafe { self.tx.produce(&self.pending[..n]) };
        self.pending.drain(..sent);
        self.in_flight += sent;
        self.kick();
        sent
    }

    /// Submits everything pending, waiting for ring room.
    fn submit_all(&mut self) {
        while !self.pending.is_empty() {
            if self.submit() == 0 {
                self.reclaim();
                self.kick();
                std::thread::yield_now();
            }
        }
    }

    /// A free frame, waiting for completions if none is free.
    fn frame(&mut self) -> FrameDesc {
        loop {
            if let Some(d) = self.free.pop() {
                return d;
            }
            if self.submit() == 0 {
                self.reclaim();
                if self.free.is_empty() {
                    self.kick();
                    std::thread::yield_now();
                }
            }
        }
    }

    /// Waits until every submitted frame has completed (bounded).
    fn drain(&mut self, limit: Duration) -> bool {
        self.submit_all();
        let t = Instant::now();
        while self.in_flight > 0 && t.elapsed() < limit {
            self.kick();
            self.reclaim();
            std::thread::yield_now();
        }
        self.in_flight == 0
    }
}

/// Why a replay could not run.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// The process lacks CAP_NET_RAW, which an AF_XDP socket needs.
    #[error("AF_XDP sockets need CAP_NET_RAW: run as root or grant it")]
    NoCapability,
    /// The interface does not exist (in this network namespace).
    #[error("interface {iface}: {source} (does it exist in this network namespace?)")]
    NoInterface {
        /// The interface name given.
        iface: String,
        /// The lookup's error.
        #[source]
        source: nix::Error,
    },
    /// `--speed` was zero, negative or not finite.
    #[error("--speed {0}: must be a positive number (1 = recorded timing)")]
    BadSpeed(f64),
    /// `--pps 0`.
    #[error("--pps 0: must be at least 1")]
    ZeroPps,
    /// A frame of the capture is not Ethernet (checked as frames are
    /// read: the frames before it were sent).
    #[error("{}: link type {link}: replay sends Ethernet frames only", path.display())]
    NotEthernet {
        /// The capture.
        path: std::path::PathBuf,
        /// The frame's link type.
        link: String,
    },
    /// The capture could not be opened.
    #[error(transparent)]
    Input(#[from] crate::source::pcap::PcapError),
    /// The UMEM or the AF_XDP socket could not be set up.
    #[error(transparent)]
    Xsk(#[from] crate::xsk::XskError),
}

fn open(iface: &str, queue: u32) -> Result<Tx, ReplayError> {
    let missing = crate::xdp::missing_capabilities(true);
    if missing.iter().any(|m| m.starts_with("CAP_NET_RAW")) {
        return Err(ReplayError::NoCapability);
    }
    nix::net::if_::if_nametoindex(iface).map_err(|source| ReplayError::NoInterface {
        iface: iface.to_string(),
        source,
    })?;
    let (umem, descs) = crate::xsk::umem(4096, 2048)?;
    let r = crate::xsk::bind(&umem, iface, queue, 2048)?;
    let (tx, cq) = (r.tx, r.cq);
    Ok(Tx {
        umem,
        tx,
        cq,
        free: descs,
        pending: Vec::with_capacity(BATCH),
        in_flight: 0,
        scratch: vec![FrameDesc::default(); 2048],
    })
}

/// How early a frame may go: gaps shorter than this are not waited for,
/// so pacing never spins a core. Due times are absolute (from the first
/// packet), so the average rate stays exact; frames bunch into bursts of
/// at most this long.
const EARLY: Duration = Duration::from_micros(100);

/// Sleeps until about `t` (timer slack is ~50 µs); returns at once if `t`
/// is less than `EARLY` away.
fn wait_until(t: Instant) {
    let now = Instant::now();
    if t > now + EARLY {
        std::thread::sleep(t - now - EARLY / 2);
    }
}

/// Sends `o.pcap` out of `o.iface` through one AF_XDP TX socket at
/// `o.pace`, up to `o.limit` frames, then waits up to 5 s for the TX ring
/// to drain. A capture that stops being readable part-way still gives a
/// report, with `input_error` set.
pub fn run(o: &Options) -> Result<Report, ReplayError> {
    if let Pace::Speed(s) = o.pace {
        if !(s.is_finite() && s > 0.0) {
            return Err(ReplayError::BadSpeed(s));
        }
    }
    if o.pace == Pace::Pps(0) {
        return Err(ReplayError::ZeroPps);
    }
    let mut src = PcapSource::open(o.pcap)?;
    let mut tx = open(o.iface, o.queue)?;
    // A bar needs a length: none for pipes and standard input.
    let bar = src.file_len.filter(|_| o.progress).map(|len| {
        let b = indicatif::ProgressBar::new(len);
        b.set_style(
            indicatif::ProgressStyle::with_template(
                "{bar:40} {bytes}/{total_bytes} {msg} eta {eta}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        b
    });
    let mut rep = Report::default();
    let mut first: Option<(Ts, Instant)> = None;
    let mut bad_link: Option<LinkType> = None;
    let res = src.try_for_each(|r| {
        if r.link != LinkType::Ethernet {
            bad_link = Some(r.link);
            return ControlFlow::Break(());
        }
        let now = Instant::now();
        let (t0, start) = *first.get_or_insert((r.ts, now));
        let due = match o.pace {
            Pace::Top => None,
            Pace::Speed(s) => {
                Some(start + Duration::from_secs_f64(r.ts.saturating_sub(t0) as f64 / 1e9 / s))
            }
            Pace::Pps(p) => Some(start + Duration::from_secs_f64(rep.packets as f64 / p as f64)),
        };
        if let Some(due) = due {
            if due > Instant::now() {
                // Send what is ready before waiting.
                tx.submit_all();
                wait_until(due);
            }
        }
        let mut d = tx.frame();
        // SAFETY: `d` came off the free list: on no ring, not shared.
        let mut data = unsafe { tx.umem.data_mut(&mut d) };
        let mut cur = data.cursor();
        cur.set_pos(0);
        if cur.write_all(r.data).is_err() {
            rep.too_large += 1;
            tx.free.push(d);
            return ControlFlow::Continue(());
        }
        tx.pending.push(d);
        rep.packets += 1;
        rep.bytes += r.data.len() as u64;
        if tx.pending.len() >= BATCH || due.is_some() {
            tx.submit();
        }
        if let Some(b) = &bar {
            b.inc(r.data.len() as u64 + 16);
            if rep.packets % 4096 == 0 {
                let secs = start.elapsed().as_secs_f64().max(1e-9);
                b.set_message(format!("{:.0} pkts/s", rep.packets as f64 / secs));
            }
        }
        if o.limit.is_some_and(|l| rep.packets >= l) {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    });
    if let Some(link) = bad_link {
        return Err(ReplayError::NotEthernet {
            path: o.pcap.to_path_buf(),
            link: format!("{link:?}"),
        });
    }
    if let Err(e) = res {
        rep.input_error = Some(e.to_string());
    }
    let drained = tx.drain(Duration::from_secs(5));
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    if !drained {
        tracing::warn!("{} frames still in flight after 5s", tx.in_flight);
    }
    let secs = first
        .map(|(_, s)| s.elapsed().as_secs_f64())
        .unwrap_or(0.0)
        .max(1e-9);
    rep.seconds = secs;
    rep.packets_per_second = rep.packets as f64 / secs;
    rep.bits_per_second = rep.bytes as f64 * 8.0 / secs;
    Ok(rep)
}
