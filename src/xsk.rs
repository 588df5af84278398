//! AF_XDP plumbing shared by `live` and `replay`: a UMEM and sockets bound
//! on it with our settings, with errors that say what to do.

use std::error::Error as _;
use std::num::NonZeroU32;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// An AF_XDP setup step that failed, with what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum XskError {
    /// A ring size xsk-rs refuses (it must be a power of two).
    #[error("ring size {ring}: {source}")]
    RingSize {
        /// The size asked for.
        ring: u32,
        /// xsk-rs's error.
        #[source]
        source: BoxError,
    },
    /// xsk-rs refused the UMEM configuration.
    #[error("UMEM config: {0}")]
    UmemConfig(#[source] BoxError),
    /// A UMEM of 0 frames was asked for.
    #[error("UMEM of 0 frames")]
    NoFrames,
    /// The UMEM could not be created, most often for lack of locked memory.
    #[error("UMEM of {frames} frames: {source}{cause} (locked memory: raise RLIMIT_MEMLOCK or grant CAP_IPC_LOCK)")]
    Umem {
        /// Frames asked for.
        frames: u32,
        /// The underlying OS error, spelled out (libxdp wraps it).
        cause: String,
        /// xsk-rs's error.
        #[source]
        source: BoxError,
    },
    /// The interface name is not one xsk-rs accepts.
    #[error("interface name {iface}: {source}")]
    InterfaceName {
        /// The name given.
        iface: String,
        /// xsk-rs's error.
        #[source]
        source: BoxError,
    },
    /// The same interface and queue was bound twice on one UMEM, so xsk-rs
    /// handed out no fill and completion rings: a caller bug.
    #[error("{iface} queue {queue}: bound twice on one UMEM (no fill ring)")]
    BoundTwice {
        /// The interface.
        iface: String,
        /// The queue.
        queue: u32,
    },
    /// The socket could not be created or bound (after retrying a queue
    /// that was still busy for 3 s).
    #[error(
        "AF_XDP socket on {iface} queue {queue}: {source}{cause} (needs CONFIG_XDP_SOCKETS, \
         CAP_NET_RAW, and a queue no other AF_XDP socket holds)"
    )]
    Socket {
        /// The interface.
        iface: String,
        /// The queue.
        queue: u32,
        /// The underlying OS error, spelled out (libxdp wraps it).
        cause: String,
        /// xsk-rs's error.
        #[source]
        source: BoxError,
    },
}

fn ring_size(ring: u32) -> Result<QueueSize, XskError> {
    QueueSize::new(ring).map_err(|e| XskError::RingSize {
        ring,
        source: e.into(),
    })
}
use std::time::{Duration, Instant};
use xsk_rs::config::{BindFlags, Interface, LibxdpFlags, QueueSize, SocketConfig, UmemConfig};
use xsk_rs::{CompQueue, FillQueue, FrameDesc, RxQueue, Socket, TxQueue, Umem};

/// A UMEM of `frames` default-sized (4 KiB) frames and rings of `ring`.
pub fn umem(frames: u32, ring: u32) -> Result<(Umem, Vec<FrameDesc>), XskError> {
    let _ = nix::sys::resource::setrlimit(
        nix::sys::resource::Resource::RLIMIT_MEMLOCK,
        nix::sys::resource::RLIM_INFINITY,
        nix::sys::resource::RLIM_INFINITY,
    );
    let q = ring_size(ring)?;
    let cfg = UmemConfig::builder()
        .fill_queue_size(q)
        .comp_queue_size(q)
        .build()
        .map_err(|e| XskError::UmemConfig(e.into()))?;
    let n = NonZeroU32::new(frames).ok_or(XskError::NoFrames)?;
    Umem::new(cfg, n, false).map_err(|e| XskError::Umem {
        frames,
        cause: cause(&e),
        source: e.into(),
    })
}

fn cause(e: &dyn std::error::Error) -> String {
    e.source().map(|s| format!(": {s}")).unwrap_or_default()
}

/// The four rings of one bound socket.
pub struct Rings {
    /// TX ring: frames to transmit.
    pub tx: TxQueue,
    /// RX ring: frames received.
    pub rx: RxQueue,
    /// Fill ring: free frames handed to the kernel to receive into.
    pub fq: FillQueue,
    /// Completion ring: frames the kernel has finished transmitting.
    pub cq: CompQueue,
}

/// Binds a socket on (iface, queue) over `umem`, in whatever mode the
/// driver offers (zero-copy, else copy), with need_wakeup. No XDP program
/// is loaded: flowgate's own program redirects into its own XSKMAP (live),
/// and sending needs none (replay). A queue still held by a socket that is
/// closing (a process that just exited) is retried for a moment.
pub fn bind(umem: &Umem, iface: &str, queue: u32, ring: u32) -> Result<Rings, XskError> {
    let q = ring_size(ring)?;
    let cfg = SocketConfig::builder()
        .rx_queue_size(q)
        .tx_queue_size(q)
        .libxdp_flags(LibxdpFlags::XSK_LIBXDP_FLAGS_INHIBIT_PROG_LOAD)
        .bind_flags(BindFlags::XDP_USE_NEED_WAKEUP)
        .build();
    let name: Interface = iface.parse().map_err(|e| XskError::InterfaceName {
        iface: iface.to_string(),
        source: Box::new(e),
    })?;
    let started = Instant::now();
    loop {
        // SAFETY: each (iface, queue) is bound once per UMEM by our callers
        // and INHIBIT_PROG_LOAD is set, as xsk-rs requires for shared UMEMs.
        match unsafe { Socket::new(cfg, umem, &name, queue) } {
            Ok((tx, rx, Some((fq, cq)))) => return Ok(Rings { tx, rx, fq, cq }),
            Ok((_, _, None)) => {
                return Err(XskError::BoundTwice {
                    iface: iface.to_string(),
                    queue,
                })
            }
            Err(e) => {
                let busy = e
                    .source()
                    .and_then(|s| s.downcast_ref::<std::io::Error>())
                    .and_then(|s| s.raw_os_error())
                    == Some(nix::libc::EBUSY);
                if busy && started.elapsed() < Duration::from_secs(3) {
                    std::thread::sleep(Duration::from_millis(50));
                    continue;
                }
                return Err(XskError::Socket {
                    iface: iface.to_string(),
                    queue,
                    cause: cause(&e),
                    source: e.into(),
                });
            }
        }
    }
}
