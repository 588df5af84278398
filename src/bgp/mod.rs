//! Blocks beyond one box: announce them over BGP through a real BGP daemon
//! (GoBGP), and import the blocks peers announce into the kernel blocklist.
//!
//! ```text
//!  sink (block start / end) ──channel──► bgp thread ──`gobgp` CLI──► gobgpd ──BGP──► upstream, peers
//!                                          │  Announcer: desired set, allowlist,      │
//!                                          │  max, rate limit, backoff, re-sync       │
//!                                          └◄── RIB listing (own routes, peers' routes)┘
//!                                              Learner: peers' blocks → kernel blocklist
//! ```
//!
//! [`announcer::Announcer`] and [`learner::Learner`] are sans-I/O state
//! machines (time is passed in); [`gobgp`] turns their actions into `gobgp`
//! CLI calls and parses its `-j` JSON; [`worker`] runs them on the `bgp`
//! thread in live mode. The packet path only ever does a `try_send`.

pub mod announcer;
pub mod gobgp;
pub mod learner;
pub mod worker;

use crate::config::ConfigError;
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

/// One route flowgate announces. Ordered so the state machines' sets are
/// deterministic.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Route {
    /// A /32 or /128 host route with `bgp.communities` and `bgp.next_hop`
    /// (remotely triggered blackhole, RFC 7999).
    Blackhole(IpAddr),
    /// FlowSpec (RFC 8955): traffic from this source, discarded or
    /// rate-limited (`bgp.flowspec_action`).
    FlowSource(IpAddr),
    /// FlowSpec: TCP SYNs to this destination rate-limited to
    /// `bgp.victim_rate` (the spoofed-flood case: the sources are random,
    /// the victim is not).
    FlowVictim(IpAddr),
}

impl Route {
    /// The address the route is about.
    pub fn addr(&self) -> IpAddr {
        match *self {
            Route::Blackhole(a) | Route::FlowSource(a) | Route::FlowVictim(a) => a,
        }
    }

    /// `blackhole`, `flowspec` or `flowspec_victim` (metric label).
    pub fn kind(&self) -> &'static str {
        match self {
            Route::Blackhole(_) => "blackhole",
            Route::FlowSource(_) => "flowspec",
            Route::FlowVictim(_) => "flowspec_victim",
        }
    }
}

impl std::fmt::Display for Route {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let a = self.addr();
        let len = if a.is_ipv4() { 32 } else { 128 };
        match self {
            Route::Blackhole(_) => write!(f, "blackhole {a}/{len}"),
            Route::FlowSource(_) => write!(f, "flowspec source {a}/{len}"),
            Route::FlowVictim(_) => write!(f, "flowspec destination {a}/{len} tcp syn"),
        }
    }
}

/// What a blocked source is announced as (`bgp.announce`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Announce {
    /// A blackhole host route (RTBH).
    Blackhole,
    /// A FlowSpec rule matching the source.
    Flowspec,
}

/// What a FlowSpec source rule does (`bgp.flowspec_action`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum FlowAction {
    /// traffic-rate 0: drop everything from the source.
    #[default]
    Discard,
    /// traffic-rate `bgp.flowspec_rate` bytes/s.
    RateLimit,
}

/// `[bgp]`: announcing blocks to routers and learning peers' blocks, through
/// a GoBGP daemon (`gobgpd`) that owns the BGP sessions. Off by default.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct BgpConfig {
    /// Announce blocks (and learn, with `learn`) in `flowgate live`.
    pub enabled: bool,
    /// The `gobgp` command-line client (from the `gobgpd` package).
    pub gobgp: std::path::PathBuf,
    /// gobgpd's gRPC API host (`gobgpd --api-hosts`).
    pub host: String,
    /// gobgpd's gRPC API port.
    pub port: u16,
    /// What a blocked source becomes: `["blackhole"]`, `["flowspec"]` or both.
    pub announce: Vec<Announce>,
    /// Next hop of IPv4 blackhole routes (the upstream maps it to a discard
    /// route); RFC 5737 TEST-NET-1's 192.0.2.1 is the usual convention.
    pub next_hop: Ipv4Addr,
    /// Next hop of IPv6 blackhole routes (RFC 6666 discard prefix).
    pub next_hop_v6: Ipv6Addr,
    /// Communities on blackhole routes, `ASN:VALUE`; the first one also marks
    /// the routes as flowgate's when re-syncing. 65535:666 is BLACKHOLE
    /// (RFC 7999).
    pub communities: Vec<String>,
    /// What a FlowSpec source rule does: `discard` or `rate-limit`.
    pub flowspec_action: FlowAction,
    /// Bytes per second a `rate-limit` FlowSpec source rule lets through.
    pub flowspec_rate: u32,
    /// Announce a per-destination FlowSpec rule (TCP SYN to the victim,
    /// rate-limited) when a victim flood is detected (spoofed sources).
    pub victim_flowspec: bool,
    /// Bytes per second of SYNs to a victim its FlowSpec rule lets through.
    pub victim_rate: u32,
    /// How long a victim's FlowSpec rule stays announced.
    #[serde(with = "humantime_serde")]
    pub victim_ttl: Duration,
    /// Rule IDs whose blocks are announced; empty: every rule that blocks.
    pub rules: Vec<u32>,
    /// Never announce these (besides `block.allowlist`, which never is).
    pub never_announce: Vec<IpNet>,
    /// Most routes announced at once; blocks past it stay local (counted).
    pub max_announcements: usize,
    /// Most route updates (announcements and withdrawals) sent per second.
    pub rate: u32,
    /// Updates sent at once at most (also the concurrent `gobgp` calls).
    pub burst: u32,
    /// First retry delay after the daemon failed; doubles up to `retry_max`.
    #[serde(with = "humantime_serde")]
    pub retry_min: Duration,
    /// Longest retry delay while the daemon is down.
    #[serde(with = "humantime_serde")]
    pub retry_max: Duration,
    /// How often the daemon's RIB is listed and compared with what should
    /// be announced (catches a daemon restart that lost the routes).
    #[serde(with = "humantime_serde")]
    pub resync: Duration,
    /// On a clean stop, withdraw every announcement. Off: they stay until
    /// the next start re-syncs them against the kernel blocklist.
    pub withdraw_on_exit: bool,
    /// Import peers' blocks into the kernel blocklist.
    pub learn: bool,
    /// A peer's host route carrying this community is a block to import.
    pub learn_community: String,
    /// Also import peers' FlowSpec discard rules matching one source.
    pub learn_flowspec: bool,
    /// How long an imported block lasts in the kernel unless the peer's
    /// route is still there (refreshed while it is; removed when withdrawn).
    #[serde(with = "humantime_serde")]
    pub learn_ttl: Duration,
    /// How often the RIB is listed to learn peers' routes.
    #[serde(with = "humantime_serde")]
    pub learn_interval: Duration,
    /// Most imported blocks held at once.
    pub max_learned: usize,
}

impl Default for BgpConfig {
    fn default() -> Self {
        BgpConfig {
            enabled: false,
            gobgp: "gobgp".into(),
            host: "127.0.0.1".into(),
            port: 50051,
            announce: vec![Announce::Blackhole],
            next_hop: Ipv4Addr::new(192, 0, 2, 1),
            next_hop_v6: Ipv6Addr::new(0x100, 0, 0, 0, 0, 0, 0, 1),
            communities: vec!["65535:666".into()],
            flowspec_action: FlowAction::Discard,
            flowspec_rate: 0,
            victim_flowspec: false,
            victim_rate: 125_000,
            victim_ttl: Duration::from_secs(60),
            rules: Vec::new(),
            never_announce: Vec::new(),
            max_announcements: 10_000,
            rate: 200,
            burst: 8,
            retry_min: Duration::from_millis(200),
            retry_max: Duration::from_secs(10),
            resync: Duration::from_secs(5),
            withdraw_on_exit: true,
            learn: false,
            learn_community: "65535:666".into(),
            learn_flowspec: true,
            learn_ttl: Duration::from_secs(60),
            learn_interval: Duration::from_millis(250),
            max_learned: 65_536,
        }
    }
}

/// `ASN:VALUE` (two 16-bit numbers) as the 32-bit community on the wire.
pub fn parse_community(s: &str) -> Option<u32> {
    let (a, b) = s.trim().split_once(':')?;
    let a: u16 = a.trim().parse().ok()?;
    let b: u16 = b.trim().parse().ok()?;
    Some((a as u32) << 16 | b as u32)
}

impl BgpConfig {
    /// Range checks; errors name the key like the rest of the config.
    pub fn validate(&self) -> Result<(), ConfigError> {
        fn bad(key: &str, value: impl std::fmt::Display, allowed: &str) -> ConfigError {
            ConfigError::Value {
                key: format!("bgp.{key}"),
                value: value.to_string(),
                allowed: allowed.into(),
            }
        }
        let n = |k: &str, v: u64, min: u64, max: u64| {
            if v < min || v > max {
                Err(bad(k, v, &format!("must be {min} to {max}")))
            } else {
                Ok(())
            }
        };
        let d = |k: &str, v: Duration, min: Duration, max: Duration| {
            if v < min || v > max {
                Err(bad(
                    k,
                    format!("\"{}\"", humantime::format_duration(v)),
                    &format!(
                        "must be a duration from {} to {}",
                        humantime::format_duration(min),
                        humantime::format_duration(max)
                    ),
                ))
            } else {
                Ok(())
            }
        };
        for (k, c) in self
            .communities
            .iter()
            .map(|c| ("communities", c))
            .chain([("learn_community", &self.learn_community)])
        {
            if parse_community(c).is_none() {
                return Err(bad(
                    k,
                    format!("{c:?}"),
                    "must be ASN:VALUE with two numbers up to 65535, e.g. \"65535:666\"",
                ));
            }
        }
        if self.communities.is_empty() && self.announce.contains(&Announce::Blackhole) {
            return Err(bad(
                "communities",
                "[]",
                "needs at least one community: it tells routers (and re-sync) the route is a blackhole",
            ));
        }
        n("communities", self.communities.len() as u64, 0, 16)?;
        if self.enabled && self.announce.is_empty() && !self.learn {
            return Err(bad(
                "announce",
                "[]",
                "must name \"blackhole\" and/or \"flowspec\" (or set bgp.learn)",
            ));
        }
        if self.host.is_empty() || self.host.contains(char::is_whitespace) {
            return Err(bad(
                "host",
                format!("{:?}", self.host),
                "must be a host name or address",
            ));
        }
        n("port", self.port as u64, 1, 65_535)?;
        n(
            "max_announcements",
            self.max_announcements as u64,
            1,
            crate::config::MAX_TABLE,
        )?;
        n(
            "max_learned",
            self.max_learned as u64,
            1,
            crate::config::MAX_TABLE,
        )?;
        n("rate", self.rate as u64, 1, 100_000)?;
        n("burst", self.burst as u64, 1, 64)?;
        n("rules", self.rules.len() as u64, 0, 4096)?;
        n(
            "never_announce",
            self.never_announce.len() as u64,
            0,
            65_536,
        )?;
        if self.flowspec_action == FlowAction::RateLimit && self.flowspec_rate == 0 {
            return Err(bad(
                "flowspec_rate",
                0,
                "must be above 0 with flowspec_action = \"rate-limit\" (use \"discard\" to drop all)",
            ));
        }
        let ms = Duration::from_millis;
        let long = crate::config::MAX_LONG_DURATION;
        d("retry_min", self.retry_min, ms(10), Duration::from_secs(60))?;
        d(
            "retry_max",
            self.retry_max,
            self.retry_min,
            Duration::from_secs(600),
        )?;
        d("resync", self.resync, ms(100), Duration::from_secs(3600))?;
        d("victim_ttl", self.victim_ttl, Duration::from_secs(1), long)?;
        d("learn_ttl", self.learn_ttl, Duration::from_secs(1), long)?;
        d(
            "learn_interval",
            self.learn_interval,
            ms(50),
            Duration::from_secs(60),
        )?;
        Ok(())
    }

    /// The marker community (the first of `communities`), if any.
    pub fn marker(&self) -> Option<u32> {
        self.communities.first().and_then(|c| parse_community(c))
    }
}

/// What the sink tells the bgp thread. Sent with `try_send`: the packet
/// path never waits for BGP.
#[derive(Clone, Debug)]
pub enum BgpEvent {
    /// A source's block started (rule ID), until this wall-clock time (ns).
    Block {
        /// The blocked source.
        ip: IpAddr,
        /// Wall-clock ns since the epoch (live packet time).
        until: u64,
        /// The rule that blocked it.
        rule: u32,
    },
    /// A source's block ended (expired or evicted).
    Unblock {
        /// The source.
        ip: IpAddr,
    },
    /// A victim flood (spoofed sources) was detected against `ip`.
    Victim {
        /// The victim.
        ip: IpAddr,
    },
    /// Start-up is done: blocks restored at start (manual blocks from the
    /// state file) have been sent. Until then the thread neither announces
    /// nor withdraws, so a restart does not withdraw a still-blocked
    /// source's routes only to announce them again a moment later.
    Ready,
}

/// The sink's side of the channel: what `Sink` holds.
pub type BgpSender = crossbeam_channel::Sender<BgpEvent>;

/// The sink's hooks: one call where a block starts, one where it ends.
pub mod hook {
    use super::{BgpEvent, BgpSender};
    use crate::alert::{BlockEnd, EndReason};
    use std::net::IpAddr;

    fn send(tx: &Option<BgpSender>, ev: BgpEvent) {
        if let Some(tx) = tx {
            if tx.try_send(ev).is_err() {
                metrics::counter!("flowgate_bgp_events_dropped_total").increment(1);
            }
        }
    }

    /// A block started: announce it.
    pub fn started(tx: &Option<BgpSender>, ip: IpAddr, until: u64, rule: u32) {
        send(tx, BgpEvent::Block { ip, until, rule });
    }

    /// A block episode ended: withdraw it. The end records written when
    /// flowgate stops (`end_of_input`) are not block ends: the kernel still
    /// drops the source, and `bgp.withdraw_on_exit` decides.
    pub fn ended(tx: &Option<BgpSender>, end: &BlockEnd) {
        if end.reason != EndReason::EndOfInput {
            send(tx, BgpEvent::Unblock { ip: end.src });
        }
    }

    /// A victim flood was detected.
    pub fn victim(tx: &Option<BgpSender>, ip: IpAddr) {
        send(tx, BgpEvent::Victim { ip });
    }

    /// Start-up restored what it restores (see [`BgpEvent::Ready`]).
    pub fn ready(tx: &Option<BgpSender>) {
        send(tx, BgpEvent::Ready);
    }
}

/// `flowgate bgp ...`.
#[derive(clap::Subcommand, Debug)]
pub enum BgpCommand {
    /// Ask gobgpd (the `[bgp]` endpoint) for its sessions and for the
    /// routes flowgate announced and learned. Exit status 1 if gobgpd does
    /// not answer, 2 if no session is established.
    Status {
        /// Which config (`[bgp]` host and port, communities).
        #[command(flatten)]
        config: crate::cli::ConfigArgs,
        /// One JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
}

/// Runs a `flowgate bgp` command: what to print and the exit status.
pub fn run_command(cmd: &BgpCommand) -> anyhow::Result<(String, u8)> {
    match cmd {
        BgpCommand::Status { config, json } => {
            let cfg = crate::config::Config::load(&config.sources()?)?;
            let st = worker::status(&cfg.bgp).map_err(|e| {
                anyhow::anyhow!(
                    "gobgpd at {}:{} does not answer: {e}",
                    cfg.bgp.host,
                    cfg.bgp.port
                )
            })?;
            let code = if st.neighbors.iter().any(|n| n.up()) {
                0
            } else {
                2
            };
            let text = if *json {
                serde_json::to_string_pretty(&st)? + "\n"
            } else {
                st.render()
            };
            Ok((text, code))
        }
    }
}
