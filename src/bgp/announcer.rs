//! The announce state machine, sans I/O: which routes should be announced
//! (from block start/end events, the allowlist, the rule filter and the
//! maximum), what the daemon has, and the next thing to do about the
//! difference, under a token-bucket rate limit and with backoff while the
//! daemon fails. Time is `now` in ns on any monotonic clock the caller
//! keeps; block ends are in the same clock.

use super::{Announce, BgpConfig, Route};
use ipnet::IpNet;
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

const SEC: u64 = 1_000_000_000;

/// What the caller should do next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// List the daemon's RIB and call [`Announcer::listed`] (or
    /// [`Announcer::failed`]).
    List,
    /// Announce this route, then [`Announcer::done`] (or `failed`).
    Announce(Route),
    /// Withdraw this route, then [`Announcer::done`] (or `failed`).
    Withdraw(Route),
    /// Nothing to do before this time (or a new event).
    Wait(u64),
}

/// Why a block was not announced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    /// In `block.allowlist` or `bgp.never_announce`.
    Allowlisted,
    /// Its rule is not in `bgp.rules`.
    Rule,
    /// `bgp.max_announcements` routes are already wanted.
    Full,
}

impl Refused {
    /// Metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Refused::Allowlisted => "allowlisted",
            Refused::Rule => "rule",
            Refused::Full => "max_announcements",
        }
    }
}

/// Counts since start.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AnnounceStats {
    /// Routes announced to the daemon.
    pub announced: u64,
    /// Routes withdrawn from the daemon.
    pub withdrawn: u64,
    /// Daemon calls that failed (announce, withdraw or list).
    pub failures: u64,
    /// RIB listings done.
    pub resyncs: u64,
    /// Blocks not announced because allowlisted.
    pub refused_allowlisted: u64,
    /// Blocks not announced because of the rule filter.
    pub refused_rule: u64,
    /// Blocks not announced because the maximum was reached.
    pub refused_full: u64,
}

/// Limits and policy, from `[bgp]` and `block.allowlist`.
#[derive(Clone, Debug)]
pub struct Policy {
    /// Routes made for a blocked source.
    pub announce: Vec<Announce>,
    /// Announce FlowSpec victim rules.
    pub victim: bool,
    /// Never announced.
    pub allow: Vec<IpNet>,
    /// Rule filter; empty = all.
    pub rules: Vec<u32>,
    /// Most wanted routes.
    pub max: usize,
    /// Updates per second.
    pub rate: u32,
    /// Bucket depth.
    pub burst: u32,
    /// Backoff bounds, ns.
    pub retry_min: u64,
    /// Backoff upper bound, ns.
    pub retry_max: u64,
    /// RIB re-listing interval, ns.
    pub resync: u64,
}

impl Policy {
    /// From the config: `allow` is `block.allowlist` (plus `bgp.never_announce`).
    pub fn new(cfg: &BgpConfig, allowlist: &[IpNet]) -> Policy {
        Policy {
            announce: cfg.announce.clone(),
            victim: cfg.victim_flowspec,
            allow: allowlist
                .iter()
                .chain(&cfg.never_announce)
                .copied()
                .collect(),
            rules: cfg.rules.clone(),
            max: cfg.max_announcements,
            rate: cfg.rate,
            burst: cfg.burst,
            retry_min: cfg.retry_min.as_nanos() as u64,
            retry_max: cfg.retry_max.as_nanos() as u64,
            resync: cfg.resync.as_nanos() as u64,
        }
    }
}

/// The state machine. See the module docs.
#[derive(Debug)]
pub struct Announcer {
    policy: Policy,
    /// Routes that should be announced, with when they end.
    want: BTreeMap<Route, u64>,
    /// Our routes the daemon has (as listed, plus what was done since).
    have: BTreeSet<Route>,
    /// Handed out, not yet reported back.
    in_flight: BTreeSet<Route>,
    /// `have` is known (a listing succeeded since the last failure).
    synced: bool,
    last_list: u64,
    tokens: f64,
    refilled: u64,
    backoff: u64,
    next_try: u64,
    /// Counters.
    pub stats: AnnounceStats,
}

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(a) => a.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

impl Announcer {
    /// Starts unsynced: the first action is a listing.
    pub fn new(policy: Policy) -> Announcer {
        let tokens = policy.burst.max(1) as f64;
        Announcer {
            policy,
            want: BTreeMap::new(),
            have: BTreeSet::new(),
            in_flight: BTreeSet::new(),
            synced: false,
            last_list: 0,
            tokens,
            refilled: 0,
            backoff: 0,
            next_try: 0,
            stats: AnnounceStats::default(),
        }
    }

    fn allowed(&self, ip: IpAddr) -> bool {
        !self.policy.allow.iter().any(|n| n.contains(&ip))
    }

    fn want_routes(&mut self, routes: &[Route], until: u64) -> Result<(), Refused> {
        let new = routes.iter().filter(|r| !self.want.contains_key(r)).count();
        if self.want.len() + new > self.policy.max {
            self.stats.refused_full += 1;
            return Err(Refused::Full);
        }
        for r in routes {
            let e = self.want.entry(*r).or_insert(until);
            *e = (*e).max(until);
        }
        Ok(())
    }

    /// A source was blocked by `rule` until `until`: want its routes.
    /// `rule` None: a block restored at start (rule unknown, not filtered).
    pub fn block(&mut self, ip: IpAddr, until: u64, rule: Option<u32>) -> Result<(), Refused> {
        let ip = canonical(ip);
        if !self.allowed(ip) {
            self.stats.refused_allowlisted += 1;
            return Err(Refused::Allowlisted);
        }
        if let Some(rule) = rule {
            if !self.policy.rules.is_empty() && !self.policy.rules.contains(&rule) {
                self.stats.refused_rule += 1;
                return Err(Refused::Rule);
            }
        }
        let routes: Vec<Route> = self
            .policy
            .announce
            .iter()
            .map(|a| match a {
                Announce::Blackhole => Route::Blackhole(ip),
                Announce::Flowspec => Route::FlowSource(ip),
            })
            .collect();
        self.want_routes(&routes, until)
    }

    /// A victim flood against `ip`: want its FlowSpec rule until `until`
    /// (when `bgp.victim_flowspec`).
    pub fn victim(&mut self, ip: IpAddr, until: u64) -> Result<(), Refused> {
        if !self.policy.victim {
            return Ok(());
        }
        let ip = canonical(ip);
        if !self.allowed(ip) {
            self.stats.refused_allowlisted += 1;
            return Err(Refused::Allowlisted);
        }
        self.want_routes(&[Route::FlowVictim(ip)], until)
    }

    /// A source's block ended: stop wanting its routes.
    pub fn unblock(&mut self, ip: IpAddr) {
        let ip = canonical(ip);
        self.want.remove(&Route::Blackhole(ip));
        self.want.remove(&Route::FlowSource(ip));
    }

    /// Stop wanting everything (a clean stop with `withdraw_on_exit`).
    pub fn clear(&mut self) {
        self.want.clear();
    }

    /// Is `ip` blocked here (any of its routes wanted)?
    pub fn wants(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.want.contains_key(&Route::Blackhole(ip))
            || self.want.contains_key(&Route::FlowSource(ip))
    }

    /// Routes the daemon has (as far as known).
    pub fn announced(&self) -> usize {
        self.have.len()
    }

    /// Routes wanted.
    pub fn wanted(&self) -> usize {
        self.want.len()
    }

    /// Wanted and announced agree, nothing in flight, and the daemon's RIB
    /// is known.
    pub fn converged(&self) -> bool {
        self.synced
            && self.in_flight.is_empty()
            && self.have.len() == self.want.len()
            && self.want.keys().all(|r| self.have.contains(r))
    }

    /// The daemon's RIB is known (the last call to it succeeded).
    pub fn synced(&self) -> bool {
        self.synced
    }

    fn refill(&mut self, now: u64) {
        let dt = now.saturating_sub(self.refilled);
        self.refilled = now;
        let cap = self.policy.burst.max(1) as f64;
        self.tokens = (self.tokens + dt as f64 * self.policy.rate as f64 / SEC as f64).min(cap);
    }

    /// When the next token is there.
    fn token_at(&self, now: u64) -> u64 {
        let missing = (1.0 - self.tokens).max(0.0);
        now + (missing * SEC as f64 / self.policy.rate.max(1) as f64).ceil() as u64
    }

    /// The next thing to do. Announce/Withdraw hand the route out (it is
    /// in flight until `done`/`failed`); call again for more.
    pub fn poll(&mut self, now: u64) -> Action {
        self.want.retain(|_, until| *until > now);
        if now < self.next_try {
            return Action::Wait(self.next_try);
        }
        if !self.synced || now.saturating_sub(self.last_list) >= self.policy.resync {
            return if self.in_flight.is_empty() {
                Action::List
            } else {
                Action::Wait(now + SEC / 100)
            };
        }
        self.refill(now);
        let withdraw = self
            .have
            .iter()
            .find(|r| !self.want.contains_key(r) && !self.in_flight.contains(r))
            .copied();
        let announce = || {
            self.want
                .keys()
                .find(|r| !self.have.contains(r) && !self.in_flight.contains(r))
                .copied()
        };
        let next = match withdraw {
            Some(r) => Some(Action::Withdraw(r)),
            None => announce().map(Action::Announce),
        };
        match next {
            Some(a) if self.tokens >= 1.0 => {
                self.tokens -= 1.0;
                if let Action::Announce(r) | Action::Withdraw(r) = a {
                    self.in_flight.insert(r);
                }
                a
            }
            Some(_) => Action::Wait(self.token_at(now)),
            None => {
                let expiry = self.want.values().min().copied().unwrap_or(u64::MAX);
                Action::Wait(expiry.min(self.last_list + self.policy.resync))
            }
        }
    }

    /// The daemon did `action`.
    pub fn done(&mut self, action: Action) {
        self.backoff = 0;
        match action {
            Action::Announce(r) => {
                self.in_flight.remove(&r);
                self.have.insert(r);
                self.stats.announced += 1;
            }
            Action::Withdraw(r) => {
                self.in_flight.remove(&r);
                self.have.remove(&r);
                self.stats.withdrawn += 1;
            }
            Action::List | Action::Wait(_) => {}
        }
    }

    /// The daemon failed `action` (down, refused): back off, and list its
    /// RIB again before anything else, since what it has is now unknown.
    pub fn failed(&mut self, action: Action, now: u64) {
        if let Action::Announce(r) | Action::Withdraw(r) = action {
            self.in_flight.remove(&r);
        }
        self.stats.failures += 1;
        self.synced = false;
        self.backoff = if self.backoff == 0 {
            self.policy.retry_min
        } else {
            (self.backoff * 2).min(self.policy.retry_max)
        };
        self.next_try = now + self.backoff;
    }

    /// The daemon's RIB was listed: these of our routes are there. Anything
    /// not wanted will be withdrawn, anything wanted and missing announced.
    pub fn listed(&mut self, ours: BTreeSet<Route>, now: u64) {
        self.backoff = 0;
        self.have = ours;
        self.synced = true;
        self.last_list = now;
        self.stats.resyncs += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn policy() -> Policy {
        Policy {
            announce: vec![Announce::Blackhole],
            victim: true,
            allow: vec!["198.18.9.0/24".parse().unwrap()],
            rules: Vec::new(),
            max: 100,
            rate: 10,
            burst: 2,
            retry_min: SEC / 5,
            retry_max: 2 * SEC,
            resync: 5 * SEC,
        }
    }

    /// Runs actions against a fake daemon RIB until Wait; returns the wait.
    fn drive(a: &mut Announcer, rib: &mut BTreeSet<Route>, up: bool, now: u64) -> u64 {
        loop {
            match a.poll(now) {
                Action::Wait(t) => return t,
                act if !up => a.failed(act, now),
                Action::List => a.listed(rib.clone(), now),
                act @ Action::Announce(r) => {
                    rib.insert(r);
                    a.done(act)
                }
                act @ Action::Withdraw(r) => {
                    rib.remove(&r);
                    a.done(act)
                }
            }
        }
    }

    #[test]
    fn block_announces_and_unblock_withdraws() {
        let mut a = Announcer::new(policy());
        let mut rib = BTreeSet::new();
        a.block(ip("198.18.1.5"), 60 * SEC, Some(1)).unwrap();
        drive(&mut a, &mut rib, true, SEC);
        assert!(rib.contains(&Route::Blackhole(ip("198.18.1.5"))));
        assert!(a.converged());
        a.unblock(ip("198.18.1.5"));
        drive(&mut a, &mut rib, true, 2 * SEC);
        assert!(rib.is_empty());
        assert_eq!((a.stats.announced, a.stats.withdrawn), (1, 1));
    }

    #[test]
    fn expiry_withdraws_without_an_event() {
        let mut a = Announcer::new(policy());
        let mut rib = BTreeSet::new();
        a.block(ip("198.18.1.5"), 3 * SEC, None).unwrap();
        let wait = drive(&mut a, &mut rib, true, SEC);
        assert_eq!(wait, 3 * SEC, "wakes at the expiry");
        drive(&mut a, &mut rib, true, 3 * SEC);
        assert!(rib.is_empty());
    }

    #[test]
    fn allowlist_rules_and_max_refuse() {
        let mut p = policy();
        p.rules = vec![7];
        p.max = 2;
        let mut a = Announcer::new(p);
        assert_eq!(
            a.block(ip("198.18.9.1"), SEC, Some(7)),
            Err(Refused::Allowlisted)
        );
        assert_eq!(
            a.block(ip("::ffff:198.18.9.1"), SEC, Some(7)),
            Err(Refused::Allowlisted),
            "an IPv4-mapped address is matched as IPv4"
        );
        assert_eq!(a.block(ip("198.18.1.1"), SEC, Some(8)), Err(Refused::Rule));
        a.block(ip("198.18.1.1"), SEC, Some(7)).unwrap();
        a.block(ip("198.18.1.2"), SEC, Some(7)).unwrap();
        a.block(ip("198.18.1.2"), 2 * SEC, Some(7)).unwrap();
        assert_eq!(a.block(ip("198.18.1.3"), SEC, Some(7)), Err(Refused::Full));
        assert_eq!(a.wanted(), 2);
    }

    #[test]
    fn both_kinds_and_victims() {
        let mut p = policy();
        p.announce = vec![Announce::Blackhole, Announce::Flowspec];
        let mut a = Announcer::new(p);
        let mut rib = BTreeSet::new();
        a.block(ip("2001:db8::5"), 60 * SEC, None).unwrap();
        a.victim(ip("198.19.1.2"), 60 * SEC).unwrap();
        let mut now = SEC;
        for _ in 0..10 {
            now = drive(&mut a, &mut rib, true, now).max(now);
        }
        assert_eq!(
            rib,
            BTreeSet::from([
                Route::Blackhole(ip("2001:db8::5")),
                Route::FlowSource(ip("2001:db8::5")),
                Route::FlowVictim(ip("198.19.1.2")),
            ])
        );
    }

    #[test]
    fn rate_limit_spaces_updates() {
        let mut a = Announcer::new(policy()); // 10/s, burst 2
        let mut rib = BTreeSet::new();
        for i in 0..20u8 {
            a.block(IpAddr::from([198, 18, 2, i]), 600 * SEC, None)
                .unwrap();
        }
        let mut now = SEC;
        let mut sends = Vec::new();
        while rib.len() < 20 {
            let before = rib.len();
            let wait = drive(&mut a, &mut rib, true, now);
            sends.extend(std::iter::repeat_n(now, rib.len() - before));
            assert!(wait > now, "waits forward");
            now = wait;
        }
        // 20 updates at 10/s with a burst of 2: about 1.8 s.
        let span = sends[19] - sends[0];
        assert!((17 * SEC / 10..=19 * SEC / 10).contains(&span), "{span}");
        for w in sends.windows(3) {
            assert!(w[2] - w[0] >= SEC / 10, "at most a burst of 2 at once");
        }
    }

    #[test]
    fn daemon_down_backs_off_then_converges() {
        let mut a = Announcer::new(policy());
        let mut rib = BTreeSet::new();
        a.block(ip("198.18.1.5"), 600 * SEC, None).unwrap();
        let mut now = SEC;
        let mut waits = Vec::new();
        for _ in 0..6 {
            let w = drive(&mut a, &mut rib, false, now);
            waits.push(w - now);
            now = w;
        }
        assert_eq!(
            waits,
            vec![
                SEC / 5,
                2 * SEC / 5,
                4 * SEC / 5,
                8 * SEC / 5,
                2 * SEC,
                2 * SEC
            ],
            "doubling backoff, capped"
        );
        assert_eq!(a.stats.failures, 6);
        assert!(!a.converged());
        drive(&mut a, &mut rib, true, now);
        assert!(a.converged() && rib.len() == 1);
    }

    #[test]
    fn resync_withdraws_stale_and_reannounces_lost() {
        let mut a = Announcer::new(policy());
        // A previous run left 198.18.1.7 announced; this run blocks .5.
        let mut rib = BTreeSet::from([Route::Blackhole(ip("198.18.1.7"))]);
        a.block(ip("198.18.1.5"), 600 * SEC, None).unwrap();
        drive(&mut a, &mut rib, true, SEC);
        assert_eq!(rib, BTreeSet::from([Route::Blackhole(ip("198.18.1.5"))]));
        // The daemon restarts and loses its RIB; the periodic re-listing
        // notices and announces again, once.
        rib.clear();
        let w = drive(&mut a, &mut rib, true, 2 * SEC);
        assert_eq!(w, 6 * SEC, "next re-sync");
        drive(&mut a, &mut rib, true, 6 * SEC);
        assert_eq!(rib.len(), 1);
        assert_eq!(a.stats.announced, 2);
        assert_eq!(a.stats.withdrawn, 1);
    }

    #[test]
    fn in_flight_routes_are_not_handed_out_twice() {
        let mut a = Announcer::new(policy());
        a.listed(BTreeSet::new(), 0);
        a.block(ip("198.18.1.5"), 600 * SEC, None).unwrap();
        a.block(ip("198.18.1.6"), 600 * SEC, None).unwrap();
        let x = a.poll(SEC);
        let y = a.poll(SEC);
        assert!(matches!(x, Action::Announce(_)) && matches!(y, Action::Announce(_)));
        assert_ne!(x, y);
        a.failed(x, SEC);
        a.done(y);
        // Unsynced after a failure: the next step (after backoff) is a list.
        assert_eq!(a.poll(SEC), Action::Wait(SEC + SEC / 5));
        assert_eq!(a.poll(SEC + SEC / 5), Action::List);
    }
}
