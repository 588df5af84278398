//! The thin driver: GoBGP's `gobgp` CLI run with `std::process::Command`,
//! its `-j` JSON read back. Daemon output is input: nothing here unwraps it.

use super::announcer::Action;
use super::{BgpConfig, FlowAction, Route};
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeSet;
use std::net::IpAddr;
use std::process::{Command, Stdio};

/// Talks to one gobgpd through its CLI.
#[derive(Clone, Debug)]
pub struct Gobgp {
    bin: std::path::PathBuf,
    host: String,
    port: u16,
    next_hop: std::net::Ipv4Addr,
    next_hop_v6: std::net::Ipv6Addr,
    communities: String,
    flow_then: Vec<String>,
    victim_rate: u32,
    /// Marks our blackhole routes in the RIB.
    marker: Option<u32>,
    learn_community: Option<u32>,
    learn_flowspec: bool,
    families: Vec<&'static str>,
}

/// A BGP neighbor of the daemon.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Neighbor {
    /// Its address.
    pub address: String,
    /// Its AS.
    pub asn: u64,
    /// FSM state: idle, connect, active, opensent, openconfirm, established.
    pub state: &'static str,
}

impl Neighbor {
    /// The session is established.
    pub fn up(&self) -> bool {
        self.state == "established"
    }
}

/// What a RIB listing says, split the way the state machines need it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Rib {
    /// Our own routes (local, recognised by shape and marker community).
    pub ours: BTreeSet<Route>,
    /// Sources peers announce as blocked (learn community, or a FlowSpec
    /// discard of one source).
    pub peers: BTreeSet<IpAddr>,
}

fn state_name(n: u64) -> &'static str {
    match n {
        1 => "idle",
        2 => "connect",
        3 => "active",
        4 => "opensent",
        5 => "openconfirm",
        6 => "established",
        _ => "unknown",
    }
}

fn host_len(a: IpAddr) -> u8 {
    if a.is_ipv4() {
        32
    } else {
        128
    }
}

/// `a.b.c.d/32` or `x::y/128`: the address, for host prefixes only.
fn host_prefix(v: Option<&Value>) -> Option<IpAddr> {
    let net: ipnet::IpNet = v?.as_str()?.parse().ok()?;
    (net.prefix_len() == host_len(net.addr())).then_some(net.addr())
}

/// Communities on a path (attribute type 8).
fn communities(path: &Value) -> Vec<u64> {
    attrs(path)
        .filter(|a| a.get("type").and_then(Value::as_u64) == Some(8))
        .filter_map(|a| a.get("communities").and_then(Value::as_array))
        .flatten()
        .filter_map(Value::as_u64)
        .collect()
}

fn attrs(path: &Value) -> impl Iterator<Item = &Value> {
    path.get("attrs")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
}

/// The traffic-rate extended community (type 16, subtype 6), if any.
fn traffic_rate(path: &Value) -> Option<f64> {
    attrs(path)
        .filter(|a| a.get("type").and_then(Value::as_u64) == Some(16))
        .filter_map(|a| a.get("value").and_then(Value::as_array))
        .flatten()
        .find(|c| c.get("subtype").and_then(Value::as_u64) == Some(6))
        .and_then(|c| c.get("rate").and_then(Value::as_f64))
}

/// A FlowSpec NLRI's components as (type, prefix-if-any).
fn flow_components(path: &Value) -> Vec<(u64, Option<IpAddr>)> {
    path.get("nlri")
        .and_then(|n| n.get("value"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|c| {
            let t = c.get("type").and_then(Value::as_u64).unwrap_or(0);
            let p = host_prefix(c.get("value").and_then(|v| v.get("prefix")));
            (t, p)
        })
        .collect()
}

impl Gobgp {
    /// From `[bgp]`.
    pub fn new(cfg: &BgpConfig) -> Gobgp {
        let flow_then = match cfg.flowspec_action {
            FlowAction::Discard => vec!["discard".to_string()],
            FlowAction::RateLimit => vec!["rate-limit".into(), cfg.flowspec_rate.to_string()],
        };
        let mut families = vec!["ipv4", "ipv6"];
        if cfg.announce.contains(&super::Announce::Flowspec)
            || cfg.victim_flowspec
            || (cfg.learn && cfg.learn_flowspec)
        {
            families.extend(["ipv4-flowspec", "ipv6-flowspec"]);
        }
        Gobgp {
            bin: cfg.gobgp.clone(),
            host: cfg.host.clone(),
            port: cfg.port,
            next_hop: cfg.next_hop,
            next_hop_v6: cfg.next_hop_v6,
            communities: cfg.communities.join(","),
            flow_then,
            victim_rate: cfg.victim_rate,
            marker: cfg.marker(),
            learn_community: cfg
                .learn
                .then(|| super::parse_community(&cfg.learn_community))
                .flatten(),
            learn_flowspec: cfg.learn && cfg.learn_flowspec,
            families,
        }
    }

    /// `host:port` of the daemon's API.
    pub fn endpoint(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    fn command(&self, args: &[String]) -> Command {
        let mut c = Command::new(&self.bin);
        c.args(["-u", &self.host, "-p", &self.port.to_string()])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        c
    }

    /// The `gobgp` arguments that announce (`add`) or withdraw a route.
    pub fn route_args(&self, r: Route, add: bool) -> Vec<String> {
        let a = r.addr();
        let v4 = a.is_ipv4();
        let prefix = format!("{a}/{}", host_len(a));
        let op = if add { "add" } else { "del" };
        let mut v: Vec<String> = ["global", "rib", "-a"].map(String::from).to_vec();
        match r {
            Route::Blackhole(_) => {
                v.extend([if v4 { "ipv4" } else { "ipv6" }.into(), op.into(), prefix]);
                if add {
                    let nh = if v4 {
                        self.next_hop.to_string()
                    } else {
                        self.next_hop_v6.to_string()
                    };
                    v.extend(["nexthop".into(), nh]);
                    if !self.communities.is_empty() {
                        v.extend(["community".into(), self.communities.clone()]);
                    }
                }
            }
            Route::FlowSource(_) => {
                let fam = if v4 { "ipv4-flowspec" } else { "ipv6-flowspec" };
                v.extend([
                    fam.into(),
                    op.into(),
                    "match".into(),
                    "source".into(),
                    prefix,
                ]);
                if add {
                    v.push("then".into());
                    v.extend(self.flow_then.iter().cloned());
                }
            }
            Route::FlowVictim(_) => {
                let fam = if v4 { "ipv4-flowspec" } else { "ipv6-flowspec" };
                v.extend([
                    fam.into(),
                    op.into(),
                    "match".into(),
                    "destination".into(),
                    prefix,
                ]);
                v.extend(["protocol", "tcp", "tcp-flags", "S"].map(String::from));
                if add {
                    v.extend([
                        "then".into(),
                        "rate-limit".into(),
                        self.victim_rate.to_string(),
                    ]);
                }
            }
        }
        v
    }

    /// Runs several announce/withdraw actions at once (one `gobgp` process
    /// each); one result per action, in order.
    pub fn apply(&self, actions: &[Action]) -> Vec<Result<(), String>> {
        let children: Vec<_> = actions
            .iter()
            .map(|a| {
                let args = match *a {
                    Action::Announce(r) => self.route_args(r, true),
                    Action::Withdraw(r) => self.route_args(r, false),
                    Action::List | Action::Wait(_) => return Err("not a route update".to_string()),
                };
                self.command(&args)
                    .spawn()
                    .map_err(|e| format!("running {}: {e}", self.bin.display()))
            })
            .collect();
        children
            .into_iter()
            .map(|c| c.and_then(|c| check(c.wait_with_output())).map(|_| ()))
            .collect()
    }

    /// Runs `gobgp ARGS -j` and parses its output.
    fn json(&self, args: &[&str]) -> Result<Value, String> {
        let mut a: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        a.push("-j".into());
        let out = check(self.command(&a).output())?;
        serde_json::from_slice(&out).map_err(|e| format!("gobgp {}: bad JSON: {e}", args.join(" ")))
    }

    /// The daemon's neighbors and their session states.
    pub fn neighbors(&self) -> Result<Vec<Neighbor>, String> {
        let v = self.json(&["neighbor"])?;
        Ok(v.as_array()
            .into_iter()
            .flatten()
            .map(|n| {
                let st = n.get("state");
                let conf = n.get("conf");
                Neighbor {
                    address: st
                        .and_then(|s| s.get("neighbor_address"))
                        .or_else(|| conf.and_then(|c| c.get("neighbor_address")))
                        .and_then(Value::as_str)
                        .unwrap_or("?")
                        .to_string(),
                    asn: conf
                        .and_then(|c| c.get("peer_asn"))
                        .and_then(Value::as_u64)
                        .unwrap_or(0),
                    state: state_name(
                        st.and_then(|s| s.get("session_state"))
                            .and_then(Value::as_u64)
                            .unwrap_or(0),
                    ),
                }
            })
            .collect())
    }

    /// Lists the global RIB of every family in use (concurrently) and
    /// sorts the paths into ours and peers' blocks.
    pub fn list(&self) -> Result<Rib, String> {
        let children: Vec<_> = self
            .families
            .iter()
            .map(|f| {
                let args: Vec<String> = ["global", "rib", "-a", f, "-j"].map(String::from).to_vec();
                self.command(&args)
                    .spawn()
                    .map_err(|e| format!("running {}: {e}", self.bin.display()))
            })
            .collect();
        let mut rib = Rib::default();
        for (f, c) in self.families.iter().zip(children) {
            let out = c.and_then(|c| check(c.wait_with_output()))?;
            let v: Value = serde_json::from_slice(&out)
                .map_err(|e| format!("gobgp global rib -a {f}: bad JSON: {e}"))?;
            self.sort_rib(f.ends_with("flowspec"), &v, &mut rib);
        }
        Ok(rib)
    }

    /// Sorts one family's `global rib -j` object into `rib`.
    pub fn sort_rib(&self, flowspec: bool, v: &Value, rib: &mut Rib) {
        let paths = v
            .as_object()
            .into_iter()
            .flat_map(|o| o.values())
            .filter_map(Value::as_array)
            .flatten();
        for p in paths {
            // Paths learned from a peer carry the peer's address.
            let local = p.get("neighbor-ip").is_none() && p.get("source-id").is_none();
            if !flowspec {
                let Some(a) = host_prefix(p.get("nlri").and_then(|n| n.get("prefix"))) else {
                    continue;
                };
                let comms = communities(p);
                if local {
                    if self.marker.is_some_and(|m| comms.contains(&(m as u64))) {
                        rib.ours.insert(Route::Blackhole(a));
                    }
                } else if self
                    .learn_community
                    .is_some_and(|m| comms.contains(&(m as u64)))
                {
                    rib.peers.insert(a);
                }
                continue;
            }
            let comps = flow_components(p);
            let types: Vec<u64> = comps.iter().map(|c| c.0).collect();
            match (types.as_slice(), comps.first().and_then(|c| c.1)) {
                ([2], Some(a)) if local => {
                    rib.ours.insert(Route::FlowSource(a));
                }
                ([2], Some(a)) if self.learn_flowspec && traffic_rate(p) == Some(0.0) => {
                    rib.peers.insert(a);
                }
                ([1, 3, 9], Some(a)) if local => {
                    rib.ours.insert(Route::FlowVictim(a));
                }
                _ => {}
            }
        }
    }
}

/// A finished `gobgp` run: its stdout, or what went wrong.
fn check(out: std::io::Result<std::process::Output>) -> Result<Vec<u8>, String> {
    let out = out.map_err(|e| format!("gobgp: {e}"))?;
    if out.status.success() {
        return Ok(out.stdout);
    }
    let msg = [out.stderr.as_slice(), out.stdout.as_slice()]
        .iter()
        .map(|b| String::from_utf8_lossy(b).trim().to_string())
        .find(|s| !s.is_empty())
        .unwrap_or_else(|| out.status.to_string());
    Err(format!(
        "gobgp: {}",
        msg.chars().take(300).collect::<String>()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn cfg() -> BgpConfig {
        BgpConfig {
            learn: true,
            announce: vec![
                super::super::Announce::Blackhole,
                super::super::Announce::Flowspec,
            ],
            communities: vec!["65535:666".into(), "65001:666".into()],
            ..BgpConfig::default()
        }
    }

    #[test]
    fn route_arguments() {
        let g = Gobgp::new(&cfg());
        assert_eq!(
            g.route_args(Route::Blackhole(ip("198.18.1.5")), true)
                .join(" "),
            "global rib -a ipv4 add 198.18.1.5/32 nexthop 192.0.2.1 community 65535:666,65001:666"
        );
        assert_eq!(
            g.route_args(Route::Blackhole(ip("2001:db8::5")), false)
                .join(" "),
            "global rib -a ipv6 del 2001:db8::5/128"
        );
        assert_eq!(
            g.route_args(Route::FlowSource(ip("198.18.1.5")), true)
                .join(" "),
            "global rib -a ipv4-flowspec add match source 198.18.1.5/32 then discard"
        );
        assert_eq!(
            g.route_args(Route::FlowVictim(ip("198.19.1.2")), true).join(" "),
            "global rib -a ipv4-flowspec add match destination 198.19.1.2/32 protocol tcp tcp-flags S then rate-limit 125000"
        );
    }

    // Captured from gobgp 3.10 (`gobgp global rib -a ... -j`).
    const UNICAST: &str = r#"{"198.18.1.5/32":[{"nlri":{"prefix":"198.18.1.5/32"},"age":1796143816,"best":true,"attrs":[{"type":1,"value":2},{"type":8,"communities":[4294902426,4259906202]},{"type":3,"nexthop":"192.0.2.1"}],"stale":false}],
      "198.18.1.6/32":[{"nlri":{"prefix":"198.18.1.6/32"},"age":1,"best":true,"attrs":[{"type":1,"value":2},{"type":2,"as_paths":[{"segment_type":2,"num":1,"asns":[65002]}]},{"type":3,"nexthop":"192.0.2.1"},{"type":8,"communities":[4294902426]}],"stale":false,"source-id":"198.18.200.3","neighbor-ip":"198.18.200.3"}],
      "198.18.7.0/24":[{"nlri":{"prefix":"198.18.7.0/24"},"age":1,"best":true,"attrs":[{"type":8,"communities":[4294902426]}],"stale":false,"neighbor-ip":"198.18.200.3"}],
      "198.18.1.8/32":[{"nlri":{"prefix":"198.18.1.8/32"},"age":1,"best":true,"attrs":[{"type":8,"communities":[1]}],"stale":false}]}"#;
    const FLOWSPEC: &str = r#"{"[destination: 198.19.1.2/32][protocol: ==tcp][tcp-flags: S]":[{"nlri":{"value":[{"type":1,"value":{"prefix":"198.19.1.2/32"}},{"type":3,"value":[{"op":129,"value":6}]},{"type":9,"value":[{"op":128,"value":2}]}]},"age":1796143816,"best":true,"attrs":[{"type":1,"value":2},{"type":16,"value":[{"type":128,"subtype":6,"as":0,"rate":1000}]}],"stale":false}],
      "[source: 198.18.1.5/32]":[{"nlri":{"value":[{"type":2,"value":{"prefix":"198.18.1.5/32"}}]},"age":1796143816,"best":true,"attrs":[{"type":1,"value":2},{"type":16,"value":[{"type":128,"subtype":6,"as":0,"rate":0}]}],"stale":false}],
      "[source: 2001:db8::9/128/0]":[{"nlri":{"value":[{"type":2,"value":{"prefix":"2001:db8::9/128"},"offset":0}]},"age":1,"best":true,"attrs":[{"type":16,"value":[{"type":128,"subtype":6,"as":0,"rate":0}]}],"stale":false,"source-id":"198.18.200.3","neighbor-ip":"198.18.200.3"}],
      "[source: 198.18.1.10/32]":[{"nlri":{"value":[{"type":2,"value":{"prefix":"198.18.1.10/32"}}]},"age":1,"best":true,"attrs":[{"type":16,"value":[{"type":128,"subtype":6,"as":0,"rate":500}]}],"stale":false,"neighbor-ip":"198.18.200.3"}]}"#;

    #[test]
    fn sorts_the_rib() {
        let g = Gobgp::new(&cfg());
        let mut rib = Rib::default();
        g.sort_rib(false, &serde_json::from_str(UNICAST).unwrap(), &mut rib);
        g.sort_rib(true, &serde_json::from_str(FLOWSPEC).unwrap(), &mut rib);
        assert_eq!(
            rib.ours,
            BTreeSet::from([
                Route::Blackhole(ip("198.18.1.5")),
                Route::FlowSource(ip("198.18.1.5")),
                Route::FlowVictim(ip("198.19.1.2")),
            ]),
            "a local route without the marker (.8) is not ours"
        );
        assert_eq!(
            rib.peers,
            BTreeSet::from([ip("198.18.1.6"), ip("2001:db8::9")]),
            "a /24 and a rate-limit (not discard) rule are not imported"
        );
    }

    #[test]
    fn garbage_is_ignored() {
        let g = Gobgp::new(&cfg());
        let mut rib = Rib::default();
        for text in [
            "[]",
            "{}",
            r#"{"x":[{"nlri":7}]}"#,
            r#"{"x":[{"nlri":{"prefix":"nonsense"}}]}"#,
            r#"{"x":[{"nlri":{"value":[{"type":"2"}]}}]}"#,
        ] {
            let v: Value = serde_json::from_str(text).unwrap();
            g.sort_rib(false, &v, &mut rib);
            g.sort_rib(true, &v, &mut rib);
        }
        assert_eq!(rib, Rib::default());
    }
}
