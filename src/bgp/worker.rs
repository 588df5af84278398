//! The `bgp` thread in live mode: block events in from the sink, the
//! announcer's actions out to gobgpd, peers' blocks into the kernel
//! blocklist, metrics every second. Time is CLOCK_MONOTONIC ns, the kernel
//! blocklist's clock, so restored expiries need no conversion.

use super::announcer::{Action, Announcer, Policy};
use super::gobgp::{Gobgp, Neighbor, Rib};
use super::learner::Learner;
use super::{BgpConfig, BgpEvent, Route};
use crate::xdp::{monotonic_ns, Blocklist};
use crossbeam_channel::{Receiver, RecvTimeoutError};
use ipnet::IpNet;
use serde::Serialize;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

const SEC: u64 = 1_000_000_000;
/// Longest a clean stop waits for the withdrawals.
const EXIT_DEADLINE: Duration = Duration::from_secs(10);
/// Longest the thread waits for [`BgpEvent::Ready`] before it re-syncs
/// anyway (a start-up that never says so must not silence BGP).
const READY_DEADLINE: Duration = Duration::from_secs(10);

/// Everything the thread needs.
pub struct Worker {
    cfg: BgpConfig,
    ann: Announcer,
    learner: Option<Learner>,
    daemon: Gobgp,
    blocklist: Option<Blocklist>,
    rx: Receiver<BgpEvent>,
    /// Kernel blocklist entries at start, announced once the daemon's RIB
    /// says which of them were learned from peers.
    restore: Option<Vec<(IpAddr, u64)>>,
    /// When each wanted route's block arrived, for the latency histogram.
    asked: BTreeMap<Route, Instant>,
    daemon_ok: bool,
    neighbors: Vec<Neighbor>,
    /// Start-up has restored its blocks ([`BgpEvent::Ready`]).
    ready: bool,
}

/// Starts the `bgp` thread. `blocklist` (a second handle on the pinned
/// maps) seeds the re-sync and receives learned blocks.
pub fn spawn(
    cfg: BgpConfig,
    allowlist: &[IpNet],
    blocklist: Option<Blocklist>,
    rx: Receiver<BgpEvent>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    let restore = blocklist.as_ref().map(|b| {
        let now = monotonic_ns();
        b.entries()
            .into_iter()
            .filter(|(_, exp)| *exp > now)
            .collect()
    });
    let allow: Vec<IpNet> = allowlist.to_vec();
    let w = Worker {
        ann: Announcer::new(Policy::new(&cfg, &allow)),
        learner: cfg.learn.then(|| {
            Learner::new(
                cfg.learn_ttl.as_nanos() as u64,
                cfg.max_learned,
                allow.iter().chain(&cfg.never_announce).copied().collect(),
            )
        }),
        daemon: Gobgp::new(&cfg),
        cfg,
        blocklist,
        rx,
        restore,
        asked: BTreeMap::new(),
        daemon_ok: true,
        neighbors: Vec::new(),
        ready: false,
    };
    std::thread::Builder::new()
        .name("bgp".into())
        .spawn(move || w.run())
}

impl Worker {
    fn run(mut self) {
        tracing::info!(
            "bgp: announcing through gobgpd at {} ({})",
            self.daemon.endpoint(),
            if self.learn_on() {
                "and learning peers' blocks"
            } else {
                "not learning"
            }
        );
        let mut next_learn = 0u64;
        let mut next_tick = 0u64;
        let start = Instant::now();
        loop {
            let now = monotonic_ns();
            if !self.ready && start.elapsed() >= READY_DEADLINE {
                tracing::warn!(
                    "bgp: start-up did not report its restored blocks within {READY_DEADLINE:?}; re-syncing anyway"
                );
                self.ready = true;
            }
            let wait = if self.ready {
                self.step(now)
            } else {
                now + SEC / 10
            };
            if self.ready && self.learn_on() && now >= next_learn {
                next_learn = now + self.cfg.learn_interval.as_nanos() as u64;
                self.list(now);
            }
            if now >= next_tick {
                next_tick = now + SEC;
                self.tick();
            }
            let until = wait.min(next_tick).min(if self.learn_on() {
                next_learn
            } else {
                u64::MAX
            });
            let timeout = Duration::from_nanos(until.saturating_sub(monotonic_ns()))
                .clamp(Duration::from_millis(1), Duration::from_secs(1));
            match self.rx.recv_timeout(timeout) {
                Ok(ev) => {
                    self.event(ev);
                    while let Ok(ev) = self.rx.try_recv() {
                        self.event(ev);
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
        }
        self.exit();
    }

    fn learn_on(&self) -> bool {
        self.learner.is_some() && self.blocklist.is_some()
    }

    fn event(&mut self, ev: BgpEvent) {
        let now = monotonic_ns();
        let (ip, r) = match ev {
            BgpEvent::Block { ip, until, rule } => {
                let left = until.saturating_sub(crate::live::wall_ns());
                (ip, self.ann.block(ip, now + left, Some(rule)))
            }
            BgpEvent::Victim { ip } => (
                ip,
                self.ann
                    .victim(ip, now + self.cfg.victim_ttl.as_nanos() as u64),
            ),
            BgpEvent::Unblock { ip } => {
                self.ann.unblock(ip);
                return;
            }
            BgpEvent::Ready => {
                self.ready = true;
                return;
            }
        };
        match r {
            Ok(()) => {
                let t = Instant::now();
                for r in [
                    Route::Blackhole(ip),
                    Route::FlowSource(ip),
                    Route::FlowVictim(ip),
                ] {
                    self.asked.entry(r).or_insert(t);
                }
            }
            Err(why) => {
                metrics::counter!("flowgate_bgp_refused_total", "reason" => why.as_str())
                    .increment(1);
                tracing::debug!("bgp: {ip} not announced: {}", why.as_str());
            }
        }
    }

    /// Does what the announcer asks until it says wait; returns until when.
    fn step(&mut self, now: u64) -> u64 {
        let burst = self.cfg.burst.max(1) as usize;
        loop {
            let mut batch = Vec::new();
            let wait = loop {
                match self.ann.poll(now) {
                    Action::Wait(t) => break t,
                    Action::List if batch.is_empty() => {
                        self.list(now);
                    }
                    Action::List => break now,
                    a => {
                        batch.push(a);
                        if batch.len() >= burst {
                            break now;
                        }
                    }
                }
            };
            if batch.is_empty() {
                return wait;
            }
            let results = self.daemon.apply(&batch);
            for (a, res) in batch.into_iter().zip(results) {
                match res {
                    Ok(()) => {
                        self.ann.done(a);
                        self.daemon_up();
                        match a {
                            Action::Announce(r) => {
                                metrics::counter!("flowgate_bgp_announcements_total", "kind" => r.kind())
                                    .increment(1);
                                if let Some(t) = self.asked.remove(&r) {
                                    metrics::histogram!("flowgate_bgp_announce_seconds")
                                        .record(t.elapsed().as_secs_f64());
                                }
                            }
                            Action::Withdraw(r) => {
                                metrics::counter!("flowgate_bgp_withdrawals_total", "kind" => r.kind())
                                    .increment(1);
                                self.asked.remove(&r);
                            }
                            _ => {}
                        }
                    }
                    Err(e) => self.failed(a, e),
                }
            }
            if wait > now {
                return wait;
            }
        }
    }

    fn daemon_up(&mut self) {
        if !self.daemon_ok {
            self.daemon_ok = true;
            tracing::info!(
                "bgp: gobgpd at {} answers again; re-syncing",
                self.daemon.endpoint()
            );
        }
    }

    fn failed(&mut self, a: Action, e: String) {
        let op = match a {
            Action::Announce(_) => "announce",
            Action::Withdraw(_) => "withdraw",
            _ => "list",
        };
        metrics::counter!("flowgate_bgp_failures_total", "op" => op).increment(1);
        if self.daemon_ok {
            self.daemon_down(op, &e);
        } else {
            tracing::debug!("bgp: {op} failed again: {e}");
        }
        self.ann.failed(a, monotonic_ns());
    }

    /// The first failure of an outage (a route update, a listing or the
    /// once-a-second status poll, whichever comes first): said once.
    fn daemon_down(&mut self, op: &str, e: &str) {
        self.daemon_ok = false;
        tracing::error!(
            "bgp: gobgpd at {}: {op} failed ({e}); blocks still apply locally, retrying with backoff",
            self.daemon.endpoint()
        );
    }

    /// Lists the RIB: re-syncs the announcer, restores, learns.
    fn list(&mut self, now: u64) {
        match self.daemon.list() {
            Ok(rib) => {
                self.daemon_up();
                self.restore(&rib);
                self.learn(&rib, now);
                self.ann.listed(rib.ours, now);
            }
            Err(e) => self.failed(Action::List, e),
        }
    }

    /// At start: what the kernel still blocks is announced again (except
    /// what peers announce: that was learned, not ours).
    fn restore(&mut self, rib: &Rib) {
        let Some(entries) = self.restore.take() else {
            return;
        };
        let mut n = 0;
        for (ip, until) in entries {
            if rib.peers.contains(&ip) {
                continue;
            }
            // With a rule filter, a restored block (rule unknown) is kept
            // only if the previous run announced it.
            let had = rib.ours.contains(&Route::Blackhole(ip))
                || rib.ours.contains(&Route::FlowSource(ip));
            if !self.cfg.rules.is_empty() && !had {
                continue;
            }
            n += self.ann.block(ip, until, None).is_ok() as usize;
        }
        tracing::info!(
            "bgp: re-sync: {n} kernel blocklist entries still blocked, {} of our routes in gobgpd",
            rib.ours.len()
        );
    }

    fn learn(&mut self, rib: &Rib, now: u64) {
        let (Some(l), Some(bl)) = (self.learner.as_mut(), self.blocklist.as_mut()) else {
            return;
        };
        let ann = &self.ann;
        let d = l.update(&rib.peers, |ip| ann.wants(ip), now);
        let ttl = self.cfg.learn_ttl;
        for ip in &d.block {
            match bl.block(*ip, ttl) {
                Ok(()) => metrics::counter!("flowgate_bgp_learned_total").increment(1),
                Err(e) => {
                    metrics::counter!("flowgate_bgp_failures_total", "op" => "learn").increment(1);
                    tracing::warn!("bgp: importing {ip}: {e}");
                }
            }
        }
        for ip in &d.unblock {
            let _ = bl.unblock(*ip);
            metrics::counter!("flowgate_bgp_unlearned_total").increment(1);
        }
        if d.ignored > 0 {
            metrics::counter!("flowgate_bgp_learn_ignored_total").increment(d.ignored);
        }
    }

    /// Once a second: session states and gauges (re-set each round, so
    /// they do not expire from the exporter).
    fn tick(&mut self) {
        match self.daemon.neighbors() {
            Ok(n) => {
                for old in &self.neighbors {
                    if !n.iter().any(|x| x.address == old.address) {
                        metrics::gauge!("flowgate_bgp_session_up", "peer" => old.address.clone())
                            .set(0.0);
                    }
                }
                for x in &n {
                    let was = self.neighbors.iter().find(|o| o.address == x.address);
                    if was.map(|w| w.up()) != Some(x.up()) {
                        tracing::info!("bgp: peer {} AS {}: {}", x.address, x.asn, x.state);
                    }
                }
                self.neighbors = n;
                metrics::gauge!("flowgate_bgp_daemon_up").set(1.0);
            }
            Err(e) => {
                if self.daemon_ok {
                    self.daemon_down("status", &e);
                    metrics::counter!("flowgate_bgp_failures_total", "op" => "status").increment(1);
                }
                self.neighbors.clear();
                metrics::gauge!("flowgate_bgp_daemon_up").set(0.0);
            }
        }
        for x in &self.neighbors {
            metrics::gauge!("flowgate_bgp_session_up", "peer" => x.address.clone())
                .set(x.up() as u8 as f64);
        }
        let up = self.neighbors.iter().filter(|x| x.up()).count();
        metrics::gauge!("flowgate_bgp_sessions_up").set(up as f64);
        metrics::gauge!("flowgate_bgp_announced").set(self.ann.announced() as f64);
        metrics::gauge!("flowgate_bgp_wanted").set(self.ann.wanted() as f64);
        metrics::gauge!("flowgate_bgp_learned")
            .set(self.learner.as_ref().map(|l| l.len()).unwrap_or(0) as f64);
        // Only routes still wanted keep their start time.
        if self.asked.len() > 2 * self.ann.wanted() + 64 {
            self.asked.clear();
        }
    }

    /// A clean stop: withdraw everything (`withdraw_on_exit`), within a
    /// deadline and the rate limit.
    fn exit(mut self) {
        if !self.cfg.withdraw_on_exit {
            tracing::info!(
                "bgp: leaving {} routes announced (withdraw_on_exit = false)",
                self.ann.announced()
            );
            return;
        }
        self.ann.clear();
        let t = Instant::now();
        while t.elapsed() < EXIT_DEADLINE && !self.ann.converged() {
            let wait = self.step(monotonic_ns());
            let d = Duration::from_nanos(wait.saturating_sub(monotonic_ns()));
            std::thread::sleep(d.min(Duration::from_millis(100)));
        }
        if self.ann.converged() {
            tracing::info!("bgp: withdrew every announcement");
        } else {
            tracing::warn!(
                "bgp: {} routes still announced at exit (daemon down?); the next start re-syncs them",
                self.ann.announced()
            );
        }
    }
}

/// `flowgate bgp status`: what gobgpd says.
#[derive(Debug, Serialize)]
pub struct Status {
    /// gobgpd's API address.
    pub daemon: String,
    /// Its BGP neighbors.
    pub neighbors: Vec<Neighbor>,
    /// Our routes in its RIB, as text (`blackhole 198.18.1.5/32`).
    pub announced: Vec<String>,
    /// Sources peers announce as blocked.
    pub learned: Vec<IpAddr>,
}

/// Asks gobgpd (configured in `[bgp]`) for the status.
pub fn status(cfg: &BgpConfig) -> Result<Status, String> {
    let mut cfg = cfg.clone();
    cfg.learn = true;
    let g = Gobgp::new(&cfg);
    let neighbors = g.neighbors()?;
    let rib = g.list()?;
    Ok(Status {
        daemon: g.endpoint(),
        neighbors,
        announced: rib.ours.iter().map(|r| r.to_string()).collect(),
        learned: rib.peers.into_iter().collect(),
    })
}

impl Status {
    /// Human-readable lines.
    pub fn render(&self) -> String {
        use std::fmt::Write;
        let mut s = format!("gobgpd {}\n", self.daemon);
        let up = self.neighbors.iter().filter(|n| n.up()).count();
        let _ = writeln!(s, "sessions: {up} of {} established", self.neighbors.len());
        for n in &self.neighbors {
            let _ = writeln!(s, "  {:<40} AS {:<10} {}", n.address, n.asn, n.state);
        }
        let _ = writeln!(s, "announced: {}", self.announced.len());
        for r in self.announced.iter().take(50) {
            let _ = writeln!(s, "  {r}");
        }
        if self.announced.len() > 50 {
            let _ = writeln!(s, "  ... ({} more)", self.announced.len() - 50);
        }
        let _ = writeln!(s, "learned from peers: {}", self.learned.len());
        for ip in self.learned.iter().take(50) {
            let _ = writeln!(s, "  {ip}");
        }
        s
    }
}
