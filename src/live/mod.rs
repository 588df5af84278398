//! `flowgate live`: the engine inline between two ports on AF_XDP.
//!
//! ```text
//!            XDP program (kernel): blocklist → XDP_DROP
//!                 │ XSKMAP[port, queue]          │ no socket: peer devmap (fail-open wire)
//!                 ▼                              ▼
//!  io-q (one per queue pair) ── descriptors ──► shard workers (ShardEngine)
//!      ▲   TX on the peer port / recycle  ◄── verdicts ──┘      │ events
//!                                                              ▼
//!                              sink: alert log, SQLite, kernel blocklist insert
//! ```
//!
//! `io.rs` owns the rings, `frames.rs` keeps account of who holds each
//! frame, `worker.rs` runs the same engine `analyze` runs, `sink.rs` writes
//! decisions out. This file sets it up, handles signals
//! (SIGHUP reload, SIGINT/SIGTERM stop) and tears it down.

mod control;
mod frames;
mod guard;
mod io;
mod latency;
mod privs;
mod sink;
mod worker;

use crate::config::{Config, Sources};
use crate::engine::{ShardEngine, Stats};
use crate::output::Recorder;
use crate::packet::Ts;
use crate::ruleset::Ruleset;
use crate::xdp::{self, XskRegistry};
use crossbeam_channel::bounded;
use frames::Ledger;
use io::{IoThread, Port};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use sink::{Sink, SinkReport, ToSink};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use worker::{ToShard, Worker};
use xsk_rs::{FrameDesc, Umem};

/// State the threads share read-only (plus the exit totals).
pub(crate) struct Shared {
    /// One UMEM per queue pair, indexed by I/O thread.
    pub umems: Vec<Umem>,
    /// Every shard's final counters, added by each worker as it exits.
    pub totals: Mutex<Stats>,
    /// Configuration generation: 0 at start, +1 per successful reload.
    pub generation: std::sync::atomic::AtomicU64,
    /// Packets of batches a starved shard could not take: forwarded
    /// uninspected, and dropped (`live.queue_full`), over all I/O threads.
    pub bypassed: std::sync::atomic::AtomicU64,
    pub overflow_dropped: std::sync::atomic::AtomicU64,
}

impl Shared {
    /// Counts `n` packets the queue-full policy handled.
    pub fn add_overflow(&self, policy: crate::config::QueueFullPolicy, n: u64) {
        let c = match policy {
            crate::config::QueueFullPolicy::Bypass => &self.bypassed,
            crate::config::QueueFullPolicy::Drop => &self.overflow_dropped,
        };
        c.fetch_add(n, Ordering::Relaxed);
    }
}

/// Live packet time: the wall clock at RX, in ns since the epoch (the
/// timestamps a capture of the same traffic would carry).
pub fn wall_ns() -> Ts {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as Ts)
        .unwrap_or(0)
}

/// What a run did, printed when it stops.
#[derive(Debug)]
pub struct LiveReport {
    /// Engine counters, summed over shards at exit.
    pub stats: Stats,
    /// What the sink did: alerts written, kernel blocklist inserts, the
    /// first alert-log write error.
    pub sink: SinkReport,
    /// Successful reloads (SIGHUP).
    pub reloads: u64,
    /// Packets a starved shard could not take, forwarded uninspected
    /// (`live.queue_full = "bypass"`).
    pub bypassed: u64,
    /// Packets a starved shard could not take, dropped
    /// (`live.queue_full = "drop"`).
    pub overflow_dropped: u64,
    /// Wall-clock seconds from start to stop.
    pub seconds: f64,
}

impl LiveReport {
    /// One line for stdout when live mode stops.
    pub fn render(&self) -> String {
        let s = &self.stats;
        format!(
            "flowgate live stopped after {:.1}s: {} packets ({} allowed, {} dropped in userspace), \
             {} alerts ({} alert-log lines lost), {} kernel blocklist inserts, {} reloads; \
             shards starved: {} packets bypassed uninspected, {} dropped\n",
            self.seconds,
            s.packets,
            s.allowed,
            s.dropped,
            self.sink.alerts,
            self.sink.alert_faults.lines_lost,
            self.sink.kernel_blocks,
            self.reloads,
            self.bypassed,
            self.overflow_dropped
        )
    }
}

/// Everything `run` needs; `sources` is kept to re-read the config on SIGHUP.
pub struct LiveOptions {
    /// Where the configuration comes from (file, environment, flags);
    /// SIGHUP loads the same sources again.
    pub sources: Sources,
}

/// Why `flowgate live` could not start, or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    /// A setup problem found before touching anything; says what to do.
    #[error("{0}")]
    Setup(String),
    /// A port does not exist (in this network namespace).
    #[error("interface {iface}: {source} (does it exist in this network namespace?)")]
    NoInterface {
        /// The interface name.
        iface: String,
        /// The lookup's error.
        #[source]
        source: nix::Error,
    },
    /// Checking privileges, attaching the XDP program or using its maps
    /// failed.
    #[error(transparent)]
    Xdp(#[from] xdp::XdpError),
    /// A UMEM or AF_XDP socket could not be set up.
    #[error(transparent)]
    Xsk(#[from] crate::xsk::XskError),
    /// The configured rules did not load.
    #[error("rules: {0}")]
    Rules(#[from] crate::ruleset::RulesetError),
    /// The Prometheus listener could not start.
    #[error(transparent)]
    Metrics(#[from] crate::metrics::MetricsError),
    /// The alert log could not be opened.
    #[error(transparent)]
    Output(#[from] crate::output::OutputError),
    /// The SQLite audit log could not be opened.
    #[error(transparent)]
    Audit(#[from] crate::audit::AuditError),
    /// A shard could not get Hyperscan scratch for the signatures.
    #[error(transparent)]
    Engine(#[from] crate::signature::ScratchError),
    /// The OS refused a thread or the signal handlers.
    #[error("{what}: {source}")]
    Os {
        /// What was being started.
        what: &'static str,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A packet-path thread died or panicked; the log says more.
    #[error("{0}")]
    ThreadDied(&'static str),
    /// A port went away while running (`ip link del`, a driver unbind):
    /// the inline pair is broken, so the run stops.
    #[error(
        "interface {iface} was removed while running (ifindex {ifindex} is gone): stopped; \
         its pinned link was removed, the other port keeps the program"
    )]
    InterfaceGone {
        /// The interface name.
        iface: String,
        /// Its index at start.
        ifindex: u32,
    },
}

fn os(what: &'static str) -> impl FnOnce(std::io::Error) -> LiveError {
    move |source| LiveError::Os { what, source }
}

/// Why a SIGHUP reload was refused (the running configuration stays).
#[derive(Debug, thiserror::Error)]
enum ReloadError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Rules(#[from] crate::ruleset::RulesetError),
}

/// Checks what live mode needs before touching anything.
fn preflight(cfg: &Config) -> Result<usize, LiveError> {
    let l = &cfg.live;
    if l.ingress.is_empty() || l.egress.is_empty() {
        return Err(LiveError::Setup(
            "live needs both ports: --ingress IF --egress IF (or live.ingress / live.egress in the config)".into(),
        ));
    }
    if l.ingress == l.egress {
        return Err(LiveError::Setup(format!(
            "--ingress and --egress are both {}: an inline pair needs two interfaces",
            l.ingress
        )));
    }
    xdp::check_privileges(&l.pin_dir)?;
    for iface in [&l.ingress, &l.egress] {
        nix::net::if_::if_nametoindex(iface.as_str()).map_err(|source| LiveError::NoInterface {
            iface: iface.clone(),
            source,
        })?;
    }
    let (qi, qe) = (xdp::rx_queues(&l.ingress), xdp::rx_queues(&l.egress));
    if qi != qe {
        return Err(LiveError::Setup(format!(
            "{} has {qi} RX queues and {} has {qe}: give both the same count \
             (`ethtool -L IF combined N`), one I/O thread serves queue q of both",
            l.ingress, l.egress
        )));
    }
    if qi as u32 > xdp::QUEUE_STRIDE {
        return Err(LiveError::Setup(format!(
            "{} has {qi} RX queues; at most {} are supported",
            l.ingress,
            xdp::QUEUE_STRIDE
        )));
    }
    Ok(qi)
}

/// One queue pair: a UMEM shared by the sockets on queue `q` of both ports,
/// fill rings already stocked, and the ledger of its frames. Not yet in the
/// XSKMAP: nothing arrives before the threads that serve it run.
fn open_queue(cfg: &Config, q: u32) -> Result<(Umem, [Port; 2], Ledger<FrameDesc>), LiveError> {
    let l = &cfg.live;
    let (umem, descs) = crate::xsk::umem(l.frames_per_queue, l.ring_size)?;
    let mut ledger = Ledger::new(
        q as usize,
        cfg.shards(),
        cfg.engine.batch_size,
        l.queue_full_policy(),
        descs,
    );
    let mut ports = Vec::with_capacity(2);
    for (port, iface) in [&l.ingress, &l.egress].into_iter().enumerate() {
        let mut r = crate::xsk::bind(&umem, iface, q, l.ring_size)?;
        let room = (r.fq.nb_free(l.ring_size) as usize).min(ledger.free() / 2);
        ledger.fill(port, room, |descs| {
            // SAFETY: fresh frames of this UMEM, on no ring yet.
            unsafe { r.fq.produce(descs) }
        });
        ports.push(Port::new(iface, q, r.tx, r.rx, r.fq, r.cq));
    }
    let ports: [Port; 2] = ports
        .try_into()
        .map_err(|_| LiveError::Setup("expected two ports".into()))?;
    Ok((umem, ports, ledger))
}

/// The deployment's shard-hash key: read from `path`, or generated and
/// written there (mode 0600, directory created) on first start, so restarts
/// keep the same buckets and `analyze --hash-key` can reproduce this box.
fn load_or_create_key(path: &std::path::Path) -> Result<crate::shard::HashKey, LiveError> {
    use crate::shard::HashKey;
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let bad = |what: String| LiveError::Setup(format!("shard hash key {}: {what}", path.display()));
    match std::fs::read_to_string(path) {
        Ok(text) => {
            return HashKey::parse(&text).ok_or_else(|| {
                bad(
                    "not 32 hex digits (delete it to generate a new key, or set engine.hash_key)"
                        .into(),
                )
            })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(bad(e.to_string())),
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| bad(format!("creating its directory: {e}")))?;
    }
    let key = HashKey::generate().map_err(|e| bad(format!("reading /dev/urandom: {e}")))?;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| bad(format!("creating it: {e}")))?;
    f.write_all(format!("{}\n", key.to_hex()).as_bytes())
        .and_then(|_| f.sync_all())
        .map_err(|e| bad(format!("writing it: {e}")))?;
    tracing::info!("created a new shard hash key in {}", path.display());
    Ok(key)
}

fn pin_to(core: Option<core_affinity::CoreId>) {
    if let Some(c) = core {
        if !core_affinity::set_for_current(c) {
            tracing::debug!("could not pin thread to core {}", c.id);
        }
    }
}

/// Runs until SIGINT/SIGTERM. Config comes from `opts.sources`.
pub fn run(mut cfg: Config, opts: LiveOptions) -> Result<LiveReport, LiveError> {
    let queues = preflight(&cfg)?;
    // Operator changes kept from the last run: the allowlist in force is
    // the configured one with them applied (manual blocks come back once
    // the shards run).
    let state = if cfg.control.state_file.as_os_str().is_empty() {
        crate::control::State::default()
    } else {
        crate::control::State::load(&cfg.control.state_file).map_err(LiveError::Setup)?
    };
    let file_allowlist = cfg.block.allowlist.clone();
    cfg.block.allowlist = state.effective_allowlist(&file_allowlist);
    if cfg.engine.hash_key.is_none() {
        let key = load_or_create_key(&cfg.live.hash_key_file)?;
        cfg.engine.hash_key = Some(key.to_hex());
    }
    let started = Instant::now();
    let l = cfg.live.clone();
    let rules = Arc::new(Ruleset::load(&cfg.signatures)?);
    for r in &rules.rejected {
        tracing::warn!("rule skipped: {r}");
    }

    // Signals first: a SIGTERM during setup must still tear down.
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP])
        .map_err(os("signal handlers"))?;

    if cfg.metrics.enabled {
        // The listener starts after the capability drop (its thread must
        // not keep them); a taken address still fails before attaching.
        std::net::TcpListener::bind(cfg.metrics.listen)
            .map_err(|e| crate::metrics::MetricsError::bind(cfg.metrics.listen, e.to_string()))?;
    }

    xdp::attach(&xdp::AttachOptions {
        ingress: &l.ingress,
        egress: &l.egress,
        pin_dir: &l.pin_dir,
        fail_closed: l.fail_closed,
        mode: l.xdp_mode,
        // What the shards can hold together: capacity per bucket × buckets.
        blocklist_capacity: (cfg.block.capacity.div_ceil(crate::shard::BUCKETS)
            * crate::shard::BUCKETS) as u32,
        allowlist: &cfg.block.allowlist,
        syn_seen_capacity: cfg.detect.victim.guard_table,
    })?;
    let result = run_attached(
        cfg,
        opts,
        rules,
        queues,
        &mut signals,
        started,
        (state, file_allowlist),
    );
    if let Err(LiveError::InterfaceGone { iface, .. }) = &result {
        // Its link is defunct: drop the pin so status and the next attach
        // see only what is really attached.
        match xdp::unpin_port(&l.pin_dir, iface) {
            Ok(()) => tracing::info!("removed the pinned link of {iface}"),
            Err(e) => tracing::error!("removing the pinned link of {iface}: {e}"),
        }
    }
    if l.detach_on_exit {
        match xdp::detach(&l.pin_dir) {
            Ok(d) => tracing::info!("XDP detached from {}", d.join(", ")),
            Err(e) => tracing::error!("detaching XDP: {e}"),
        }
    } else {
        tracing::info!(
            "XDP program left attached as a {} wire (`flowgate xdp detach` removes it)",
            if l.fail_closed {
                "fail-closed"
            } else {
                "fail-open"
            }
        );
    }
    result
}

fn run_attached(
    cfg: Config,
    opts: LiveOptions,
    rules: Arc<Ruleset>,
    queues: usize,
    signals: &mut signal_hook::iterator::Signals,
    started: Instant,
    (state, file_allowlist): (crate::control::State, Vec<ipnet::IpNet>),
) -> Result<LiveReport, LiveError> {
    let l = cfg.live.clone();
    let shards = cfg.shards();
    let publish_every = cfg.metrics.interval;
    let mut reg = XskRegistry::open(&l.pin_dir)?;
    reg.set_port(&l.ingress, 0)?;
    reg.set_port(&l.egress, 1)?;

    let mut umems = Vec::new();
    let mut queue_ports = Vec::new();
    let mut fds = Vec::new();
    for q in 0..queues as u32 {
        let (umem, ports, ledger) = open_queue(&cfg, q)?;
        for (port, p) in ports.iter().enumerate() {
            fds.push((port as u32, q, p.rx.fd().as_raw_fd()));
        }
        umems.push(umem);
        queue_ports.push((ports, ledger));
    }
    let shared = Arc::new(Shared {
        umems,
        totals: Mutex::new(Stats::default()),
        generation: Default::default(),
        bypassed: Default::default(),
        overflow_dropped: Default::default(),
    });

    let mut recorder = Recorder::new(Some(&cfg.output.alerts), None)?;
    let mut blocklist = xdp::Blocklist::open(&l.pin_dir)?;
    let ports = [&l.ingress, &l.egress].map(|i| {
        let idx = nix::net::if_::if_nametoindex(i.as_str()).unwrap_or(0);
        (i.clone(), idx)
    });

    // Let the program redirect to the sockets now: frames wait on the RX
    // rings until the I/O threads start a moment later. Done before the
    // capability drop and before any thread exists.
    for &(port, q, fd) in &fds {
        reg.insert(port, q, fd)?;
    }
    let allowlist = xdp::Allowlist::open(&l.pin_dir)?;
    // Opened before the capability drop, like the blocklist.
    let guards = if cfg.engine.mode == crate::config::Mode::Prevent && cfg.detect.victim.syn_guard {
        Some(guard::Guards::new(
            xdp::SynGuard::open(&l.pin_dir)?,
            cfg.detect.victim.clone(),
        ))
    } else {
        None
    };
    // The bgp thread's own handle (learned blocks, restart re-sync).
    let bgp_blocklist = if cfg.bgp.enabled {
        Some(xdp::Blocklist::open(&l.pin_dir)?)
    } else {
        None
    };
    if l.drop_capabilities {
        drop_capabilities(&mut blocklist, &l.pin_dir);
    } else {
        tracing::warn!("live.drop_capabilities = false: keeping every capability");
    }
    if cfg.metrics.enabled {
        crate::metrics::install(cfg.metrics.listen, cfg.metrics.interval)?;
        tracing::info!("metrics on http://{}/metrics", cfg.metrics.listen);
    }
    if let Some(db) = &cfg.output.sqlite {
        recorder.audit = Some(crate::audit::AuditSink::start(db)?);
    }
    let (sink_tx, sink_rx) = bounded::<ToSink>(1024);
    let (bgp_tx, bgp_thread) = match bgp_blocklist {
        Some(bl) => {
            let (tx, rx) = bounded::<crate::bgp::BgpEvent>(16_384);
            let t = crate::bgp::worker::spawn(cfg.bgp.clone(), &cfg.block.allowlist, Some(bl), rx)
                .map_err(os("bgp thread"))?;
            (Some(tx), Some(t))
        }
        None => (None, None),
    };
    let sink = Sink {
        recorder,
        blocklist: Some(blocklist),
        allowlist: Some(allowlist),
        cleared: Default::default(),
        pin_dir: l.pin_dir.clone(),
        rx: sink_rx,
        publish_every,
        metrics: cfg.metrics.enabled,
        shared: shared.clone(),
        victims: crate::detect::victim::VictimMerger::new(
            cfg.detect.victim.clone(),
            shards,
            rules.clone(),
        ),
        guards,
        bgp: bgp_tx.clone(),
    };
    let sink_thread = std::thread::Builder::new()
        .name("sink".into())
        .spawn(move || sink.run())
        .map_err(os("sink thread"))?;

    // Cores: I/O threads first, shards after, one core each. With fewer
    // cores than threads, pinning would put a shard on the core of an I/O
    // thread that spins while traffic flows, and the shard would get that
    // core only at the scheduler's slice granularity (measured on 2 CPUs
    // with 1 queue and 2 shards: per-packet p50 1.0-1.3 ms pinned, 0.19-
    // 0.26 ms unpinned, perf/RESULTS.md). Then the scheduler places them.
    let threads = queues.max(1) + shards;
    let cores = if l.pin_threads {
        let ids = core_affinity::get_core_ids().unwrap_or_default();
        if ids.len() < threads {
            tracing::info!(
                "not pinning threads: {threads} I/O and shard threads for {} cores \
                 (live.pin_threads needs a core per thread)",
                ids.len()
            );
            Vec::new()
        } else {
            ids
        }
    } else {
        Vec::new()
    };
    let core = |i: usize| (!cores.is_empty()).then(|| cores[i % cores.len()]);

    let cfg = Arc::new(cfg);
    let (events_tx, events_rx) = bounded::<Vec<crate::alert::Event>>(1024);
    // Forward shard events to the sink (one hop keeps ToSink private).
    let fwd_sink = sink_tx.clone();
    let forwarder = std::thread::Builder::new()
        .name("events".into())
        .spawn(move || {
            for ev in events_rx {
                if fwd_sink.send(ToSink::Events(ev)).is_err() {
                    break;
                }
            }
        })
        .map_err(os("events thread"))?;

    let mut to_shard = Vec::new();
    let mut shard_rx = Vec::new();
    for _ in 0..shards {
        let (tx, rx) = bounded::<ToShard>(cfg.engine.queue_batches * queues.max(1));
        to_shard.push(tx);
        shard_rx.push(rx);
    }
    let mut back_tx = Vec::new();
    let mut back_rx = Vec::new();
    for _ in 0..queues {
        // Never full: a shard holds at most its queue's batches plus the
        // one it works on, and the I/O thread drains this every round.
        let (tx, rx) =
            bounded::<worker::Batch>(shards * (cfg.engine.queue_batches * queues.max(1) + 2));
        back_tx.push(tx);
        back_rx.push(rx);
    }

    let wakers = (0..queues)
        .map(|_| io::Waker::new().map(Arc::new))
        .collect::<Result<Vec<_>, _>>()
        .map_err(os("eventfd"))?;

    let mut workers = Vec::new();
    for (id, rx) in shard_rx.into_iter().enumerate() {
        let w = Worker {
            id,
            engine: ShardEngine::new(cfg.clone(), rules.clone())?,
            rx,
            back: back_tx.clone(),
            wakers: wakers.clone(),
            events: events_tx.clone(),
            shared: shared.clone(),
            publish_every,
            rules: rules.clone(),
            sink: sink_tx.clone(),
        };
        let c = core(queues + id);
        workers.push(
            std::thread::Builder::new()
                .name(format!("shard-{id}"))
                .spawn(move || {
                    pin_to(c);
                    w.run()
                })
                .map_err(os("shard thread"))?,
        );
    }
    drop(events_tx);
    drop(back_tx);

    let stop = Arc::new(AtomicBool::new(false));
    let mut io_threads = Vec::new();
    for (id, ((ports, ledger), back)) in queue_ports.into_iter().zip(back_rx).enumerate() {
        let t = IoThread {
            id,
            queue: id as u32,
            ports,
            ledger,
            to_shard: to_shard.clone(),
            back,
            stop: stop.clone(),
            batch_size: cfg.engine.batch_size,
            publish_every,
            shared: shared.clone(),
            inspect: l.inspect,
            queue_full: 0,
            overflow_frames: 0,
            policy: l.queue_full_policy(),
            sharder: cfg.sharder(),
            waker: wakers[id].clone(),
        };
        let c = core(id);
        io_threads.push(
            std::thread::Builder::new()
                .name(format!("io-{id}"))
                .spawn(move || {
                    pin_to(c);
                    t.run()
                })
                .map_err(os("I/O thread"))?,
        );
    }
    if !l.inspect {
        tracing::warn!(
            "live.inspect = false: forwarding everything uninspected (benchmark baseline)"
        );
    }
    tracing::info!(
        "inline between {} and {}: {queues} queue pair(s), {shards} shard(s), mode {:?}",
        l.ingress,
        l.egress,
        cfg.engine.mode
    );
    crate::metrics::started();

    // A second SIGINT/SIGTERM during the drain exits at once (status 1).
    let hurry = Arc::new(AtomicBool::new(false));
    for sig in [SIGINT, SIGTERM] {
        signal_hook::flag::register_conditional_shutdown(sig, 1, hurry.clone())
            .map_err(os("signal handlers"))?;
    }

    // Control loop: the only place config changes (SIGHUP and the control
    // socket). Also watches the threads: one that ends on its own (a
    // panic) stops the whole process rather than leaving a port half
    // served.
    let mut ctl = control::Controller {
        to_shard: to_shard.clone(),
        sink: sink_tx.clone(),
        sharder: cfg.sharder(),
        current: cfg.clone(),
        file_allowlist,
        state,
        sources: opts.sources.clone(),
        generation: 0,
        shared: shared.clone(),
        started,
    };
    ctl.restore();
    // The restored manual blocks reached the bgp thread (through the sink,
    // which answered before `restore` returned): it may re-sync now. The
    // sink keeps the only other sender, so the thread still ends with it.
    crate::bgp::hook::ready(&bgp_tx);
    drop(bgp_tx);
    let (ctl_tx, ctl_rx) = bounded::<control::CtlMsg>(64);
    let server = if cfg.control.enabled {
        let s = control::serve(&cfg.control.socket, ctl_tx).map_err(LiveError::Setup)?;
        tracing::info!("control socket {}", cfg.control.socket.display());
        Some(s)
    } else {
        drop(ctl_tx);
        None
    };
    let mut failure: Option<&'static str> = None;
    let mut gone: Option<(String, u32)> = None;
    'control: loop {
        // A port that disappears (or comes back as another interface)
        // breaks the pair: stop with an error naming it.
        if let Some((iface, idx)) = ports
            .iter()
            .find(|(i, idx)| nix::net::if_::if_nametoindex(i.as_str()) != Ok(*idx))
        {
            tracing::error!(
                "interface {iface} (ifindex {idx}) was removed while running: stopping"
            );
            gone = Some((iface.clone(), *idx));
            break;
        }
        let dead = io_threads
            .iter()
            .map(|t| t.is_finished())
            .chain(workers.iter().map(|t| t.is_finished()))
            .chain([sink_thread.is_finished(), forwarder.is_finished()])
            .any(|f| f);
        if dead {
            failure = Some("a flowgate thread ended unexpectedly (see the log above)");
            tracing::error!("a packet-path thread died: stopping");
            break;
        }
        let sigs: Vec<i32> = signals.pending().collect();
        if sigs.is_empty() {
            control::serve_for(&mut ctl, &ctl_rx, std::time::Duration::from_millis(100));
        }
        for sig in sigs {
            match sig {
                SIGHUP => {
                    // Logged there; the running configuration stays on error.
                    let _ = ctl.reload();
                }
                _ => {
                    tracing::info!("signal {sig}: stopping");
                    break 'control;
                }
            }
        }
    }
    hurry.store(true, Ordering::Relaxed);
    // No more control requests: the socket goes first, then the
    // controller's handles on the shard and sink queues (they must close
    // for the threads to end).
    drop(server);
    drop(ctl_rx);
    let generation = ctl.generation;
    drop(ctl);

    // Take the sockets out of the program first, so new frames go the
    // fallback way (forwarded, or dropped fail-closed) instead of into
    // rings nobody will read; then drain RX, let every batch come back
    // and be forwarded.
    for &(port, q, _) in &fds {
        reg.remove(port, q);
    }
    stop.store(true, Ordering::Relaxed);
    for w in &wakers {
        w.kick();
    }
    for t in io_threads {
        if t.join().is_err() {
            failure.get_or_insert("an I/O thread panicked");
        }
    }
    let end = wall_ns();
    for tx in &to_shard {
        let _ = tx.send(ToShard::Finish(end));
    }
    drop(to_shard);
    for w in workers {
        if w.join().is_err() {
            failure.get_or_insert("a shard worker panicked");
        }
    }
    let _ = forwarder.join();
    drop(sink_tx);
    let sink_report = sink_thread
        .join()
        .map_err(|_| LiveError::ThreadDied("sink thread panicked"))?;
    // The sink held the only sender: the bgp thread withdraws and ends.
    if let Some(t) = bgp_thread {
        if t.join().is_err() {
            tracing::error!("the bgp thread panicked");
        }
    }
    if let Some((iface, ifindex)) = gone {
        return Err(LiveError::InterfaceGone { iface, ifindex });
    }
    if let Some(f) = failure {
        return Err(LiveError::ThreadDied(f));
    }
    let stats = shared.totals.lock().map(|t| t.clone()).unwrap_or_default();
    Ok(LiveReport {
        stats,
        sink: sink_report,
        reloads: generation,
        bypassed: shared.bypassed.load(Ordering::Relaxed),
        overflow_dropped: shared.overflow_dropped.load(Ordering::Relaxed),
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Drops the capabilities the run no longer needs (see `privs.rs`); the
/// probe is what the sink and the stop path will do with the maps. A
/// failure is logged, not fatal: the run goes on with what it has.
fn drop_capabilities(blocklist: &mut xdp::Blocklist, pin_dir: &std::path::Path) {
    let probe = || blocklist.probe().is_ok() && xdp::counters(pin_dir).is_ok();
    match privs::drop_to_needed(probe) {
        Ok(d) => {
            tracing::info!(
                "capabilities dropped; kept: {} (effective, permitted, bounding), no_new_privs set",
                d.kept_names()
            );
            if d.bounding_kept {
                tracing::info!("bounding set left as started (no CAP_SETPCAP): no_new_privs keeps exec from gaining any");
            }
            if d.threads > 1 {
                tracing::warn!(
                    "{} threads ran before the capability drop and keep their capabilities",
                    d.threads - 1
                );
            }
        }
        Err(e) => tracing::error!("dropping capabilities: {e}"),
    }
}

/// Re-reads config and rules off the packet path. Keys that need a
/// restart keep their running values (and are named).
fn reload(current: &Config, sources: &Sources) -> Result<(Arc<Config>, Arc<Ruleset>), ReloadError> {
    let fresh = Config::load(sources)?;
    let fixed = current.restart_only_changes(&fresh);
    if !fixed.is_empty() {
        tracing::warn!(
            "reload: {} changed; these need a restart, keeping the running values",
            fixed.join(", ")
        );
    }
    let cfg = current.reloadable_from(&fresh);
    // With signatures.strict, a rule that does not map is an error here.
    let rules = Ruleset::load(&cfg.signatures)?;
    Ok((Arc::new(cfg), Arc::new(rules)))
}
