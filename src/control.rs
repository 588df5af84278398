//! The operator control protocol of a running `flowgate live`: one JSON
//! object per line over a unix socket (`control.socket`, mode 0600), one
//! JSON line back per request. `flowgate ctl` is its client; anything that
//! writes JSON lines (`socat`, `nc -U`) can be one too.
//!
//! Requests (`cmd` picks the verb; unknown fields are errors):
//!
//! ```text
//! {"cmd":"block","ip":"198.18.1.5","ttl":"10m","reason":"scanner"}   ttl: block.ttl if absent
//! {"cmd":"unblock","target":"198.18.1.5","reason":"false positive"}  target: IP or CIDR
//! {"cmd":"allow","op":"add","net":"198.18.7.0/24","reason":"..."}    op: add | del | list
//! {"cmd":"blocks"}   {"cmd":"reload"}   {"cmd":"stats"}   {"cmd":"version"}
//! ```
//!
//! Answers are `{"ok":true,...}` or `{"ok":false,"error":"..."}`; the
//! error names what is wrong. Changes reach the shards between batches
//! (the way a reload does) and the kernel maps before the answer is sent,
//! so an `ok` means the change holds. The peer's uid (SO_PEERCRED) is
//! recorded as who asked, in the alert log and the audit database.
//!
//! This module is the part without threads or sockets that `live` and the
//! CLI share: parsing, the client call, and the state file that keeps
//! manual blocks and allowlist changes across restarts.

use crate::alert::Operator;
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::io::{BufRead, BufReader, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Longest request line read; a longer one is refused.
pub const MAX_LINE: usize = 64 * 1024;

/// What `allow` does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AllowOp {
    /// Add a network to the allowlist.
    Add,
    /// Remove a network (added by hand, or from `block.allowlist`).
    Del,
    /// Show the allowlist in force.
    List,
}

/// One parsed request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    /// Block one source by hand.
    Block {
        /// The source.
        ip: IpAddr,
        /// How long; the running `block.ttl` if `None`.
        ttl: Option<Duration>,
        /// Why (free text, recorded).
        reason: String,
    },
    /// End the blocks of every source in a network (a single address is
    /// a /32 or /128).
    Unblock {
        /// The sources.
        net: IpNet,
        /// Why (free text, recorded).
        reason: String,
    },
    /// Change or show the allowlist.
    Allow {
        /// add, del or list.
        op: AllowOp,
        /// The network (`None` for list).
        net: Option<IpNet>,
        /// Why (free text, recorded).
        reason: String,
    },
    /// List the open block episodes.
    Blocks,
    /// Reload config and rules (as SIGHUP).
    Reload,
    /// Counters summed over shards.
    Stats,
    /// Version of the running process.
    Version,
}

impl Request {
    /// The verb, the `verb` label of `flowgate_operator_actions_total`.
    pub fn verb(&self) -> &'static str {
        match self {
            Request::Block { .. } => "block",
            Request::Unblock { .. } => "unblock",
            Request::Allow {
                op: AllowOp::Add, ..
            } => "allow_add",
            Request::Allow {
                op: AllowOp::Del, ..
            } => "allow_del",
            Request::Allow {
                op: AllowOp::List, ..
            } => "allow_list",
            Request::Blocks => "blocks",
            Request::Reload => "reload",
            Request::Stats => "stats",
            Request::Version => "version",
        }
    }

    /// The request as the JSON line `flowgate ctl` sends.
    pub fn to_json(&self) -> Value {
        use serde_json::json;
        match self {
            Request::Block { ip, ttl, reason } => {
                let mut v = json!({"cmd": "block", "ip": ip.to_string(), "reason": reason});
                if let Some(t) = ttl {
                    v["ttl"] = humantime::format_duration(*t).to_string().into();
                }
                v
            }
            Request::Unblock { net, reason } => {
                json!({"cmd": "unblock", "target": net.to_string(), "reason": reason})
            }
            Request::Allow { op, net, reason } => {
                let op = match op {
                    AllowOp::Add => "add",
                    AllowOp::Del => "del",
                    AllowOp::List => "list",
                };
                let mut v = json!({"cmd": "allow", "op": op, "reason": reason});
                if let Some(n) = net {
                    v["net"] = n.to_string().into();
                }
                v
            }
            Request::Blocks => json!({"cmd": "blocks"}),
            Request::Reload => json!({"cmd": "reload"}),
            Request::Stats => json!({"cmd": "stats"}),
            Request::Version => json!({"cmd": "version"}),
        }
    }
}

/// The verbs, for error messages.
const VERBS: &str = "block, unblock, allow, blocks, reload, stats, version";

/// `198.18.1.5` (a host prefix) or `198.18.0.0/15` (host bits cleared).
pub fn parse_target(s: &str) -> Result<IpNet, String> {
    let s = s.trim();
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Ok(IpNet::from(ip));
    }
    s.parse::<IpNet>().map(|n| n.trunc()).map_err(|_| {
        format!("{s:?} is not an IP address or CIDR (e.g. 198.18.1.5 or 198.18.0.0/24)")
    })
}

/// Parses one request line; the error names what is wrong.
pub fn parse_request(line: &str) -> Result<Request, String> {
    let v: Value =
        serde_json::from_str(line).map_err(|e| format!("request is not valid JSON: {e}"))?;
    let Value::Object(obj) = v else {
        return Err(format!(
            "request must be a JSON object with \"cmd\", e.g. {{\"cmd\":\"blocks\"}}; got {}",
            kind(&v)
        ));
    };
    let cmd = match obj.get("cmd") {
        Some(Value::String(c)) => c.as_str(),
        Some(other) => return Err(format!("\"cmd\" must be a string, got {}", kind(other))),
        None => return Err(format!("missing \"cmd\" (one of {VERBS})")),
    };
    let allowed: &[&str] = match cmd {
        "block" => &["cmd", "ip", "ttl", "reason"],
        "unblock" => &["cmd", "target", "reason"],
        "allow" => &["cmd", "op", "net", "reason"],
        "blocks" | "reload" | "stats" | "version" => &["cmd"],
        other => return Err(format!("unknown cmd {other:?}: expected one of {VERBS}")),
    };
    if let Some(k) = obj.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(format!(
            "{cmd}: unknown field {k:?} (allowed: {})",
            allowed.join(", ")
        ));
    }
    let text = |k: &str| -> Result<Option<&str>, String> {
        match obj.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.as_str())),
            Some(other) => Err(format!(
                "{cmd}: \"{k}\" must be a string, got {}",
                kind(other)
            )),
        }
    };
    let need = |k: &str, example: &str| -> Result<&str, String> {
        text(k)?.ok_or_else(|| format!("{cmd}: missing \"{k}\" (e.g. \"{k}\":\"{example}\")"))
    };
    let reason = text("reason")?.unwrap_or("").to_string();
    if reason.len() > 1024 {
        return Err(format!(
            "{cmd}: \"reason\" is {} bytes; at most 1024",
            reason.len()
        ));
    }
    Ok(match cmd {
        "block" => {
            let raw = need("ip", "198.18.1.5")?;
            let ip = raw
                .trim()
                .parse::<IpAddr>()
                .map_err(|_| format!("block: \"ip\": {raw:?} is not an IP address (block takes one address; unblock takes a CIDR)"))?;
            let ttl = match text("ttl")? {
                None => None,
                Some(t) => Some(parse_ttl(t).map_err(|e| format!("block: \"ttl\": {e}"))?),
            };
            Request::Block { ip, ttl, reason }
        }
        "unblock" => {
            let net = parse_target(need("target", "198.18.1.5")?)
                .map_err(|e| format!("unblock: \"target\": {e}"))?;
            Request::Unblock { net, reason }
        }
        "allow" => {
            let op = match need("op", "add")? {
                "add" => AllowOp::Add,
                "del" => AllowOp::Del,
                "list" => AllowOp::List,
                other => {
                    return Err(format!(
                        "allow: \"op\": {other:?}: expected add, del or list"
                    ))
                }
            };
            let net = match (op, text("net")?) {
                (AllowOp::List, _) => None,
                (_, None) => {
                    return Err("allow: missing \"net\" (e.g. \"net\":\"198.18.7.0/24\")".into())
                }
                (_, Some(n)) => Some(parse_target(n).map_err(|e| format!("allow: \"net\": {e}"))?),
            };
            Request::Allow { op, net, reason }
        }
        "blocks" => Request::Blocks,
        "reload" => Request::Reload,
        "stats" => Request::Stats,
        _ => Request::Version,
    })
}

/// A block TTL: a humantime duration, positive, at most 30 days.
pub fn parse_ttl(t: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(t.trim())
        .map_err(|e| format!("{t:?}: {e} (e.g. \"90s\", \"10m\", \"2h\")"))?;
    if d.is_zero() || d > crate::config::MAX_LONG_DURATION {
        return Err(format!("{t:?}: must be more than 0 and at most 30 days"));
    }
    Ok(d)
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// `{"ok":false,"error":"..."}`.
pub fn error_line(msg: impl Into<String>) -> Value {
    serde_json::json!({"ok": false, "error": msg.into()})
}

/// Why `flowgate ctl` could not get an answer.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Connecting, writing or reading failed; the message says what to do.
    #[error("{0}")]
    Io(String),
    /// The server answered `ok: false`.
    #[error("{0}")]
    Refused(String),
}

/// Sends one request to the control socket at `socket` and returns the
/// answer (`ok: true`), waiting at most `timeout`.
pub fn call(socket: &Path, req: &Value, timeout: Duration) -> Result<Value, ClientError> {
    use std::io::ErrorKind as K;
    let at = socket.display().to_string();
    let mut s = std::os::unix::net::UnixStream::connect(socket).map_err(|e| {
        ClientError::Io(match e.kind() {
            K::NotFound => format!(
                "no control socket at {at}: is `flowgate live` running? (its path is control.socket; ctl takes --socket or FLOWGATE_CONTROL_SOCKET)"
            ),
            K::PermissionDenied => format!(
                "{at}: permission denied: the control socket is mode 0600, owned by the user `flowgate live` runs as; run ctl as that user (e.g. with sudo)"
            ),
            K::ConnectionRefused => format!(
                "{at}: connection refused: nothing listens there (flowgate live stopped? the file is stale)"
            ),
            _ => format!("{at}: {e}"),
        })
    })?;
    let io = |what: &'static str| {
        let at = at.clone();
        move |e: std::io::Error| ClientError::Io(format!("{at}: {what}: {e}"))
    };
    s.set_read_timeout(Some(timeout)).map_err(io("timeout"))?;
    s.set_write_timeout(Some(timeout)).map_err(io("timeout"))?;
    let mut line = req.to_string();
    line.push('\n');
    s.write_all(line.as_bytes()).map_err(io("sending"))?;
    let mut answer = String::new();
    BufReader::new(&s)
        .take(16 << 20)
        .read_line(&mut answer)
        .map_err(io("waiting for the answer"))?;
    if answer.is_empty() {
        return Err(ClientError::Io(format!(
            "{at}: the server closed the connection without an answer"
        )));
    }
    let v: Value = serde_json::from_str(&answer)
        .map_err(|e| ClientError::Io(format!("{at}: answer is not JSON: {e}")))?;
    if v["ok"] == Value::Bool(true) {
        Ok(v)
    } else {
        Err(ClientError::Refused(
            v["error"]
                .as_str()
                .unwrap_or("refused without a reason")
                .to_string(),
        ))
    }
}

use std::io::Read as _;

/// Unix sockets process `pid` listens on, by path (from /proc/PID/fd and
/// /proc/PID/net/unix): how `flowgate xdp block` finds the control socket
/// of the `flowgate live` that owns the maps.
pub fn listening_sockets(pid: u32) -> Vec<PathBuf> {
    let inodes: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| {
            d.flatten()
                .filter_map(|e| std::fs::read_link(e.path()).ok())
                .filter_map(|t| {
                    t.to_str()
                        .and_then(|s| s.strip_prefix("socket:["))
                        .and_then(|s| s.strip_suffix(']'))
                        .map(str::to_string)
                })
                .collect()
        })
        .unwrap_or_default();
    let table = std::fs::read_to_string(format!("/proc/{pid}/net/unix")).unwrap_or_default();
    table
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            // Num RefCount Protocol Flags Type St Inode Path; Flags
            // 00010000 is a listening socket.
            match f.as_slice() {
                [_, _, _, flags, _, _, inode, path, ..]
                    if *flags == "00010000" && inodes.iter().any(|i| i == inode) =>
                {
                    Some(PathBuf::from(path))
                }
                _ => None,
            }
        })
        .collect()
}

/// A block made by hand, as the state file keeps it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManualBlock {
    /// The source.
    pub src: IpAddr,
    /// Wall-clock end, ns since the epoch.
    pub until_ns: u64,
    /// Who blocked it and why.
    pub by: Operator,
}

/// What operator changes survive a restart (`control.state_file`, JSON):
/// allowlist changes relative to `block.allowlist`, and manual blocks that
/// have not expired. Detector blocks are not kept: a source that keeps
/// attacking is blocked again by the detectors.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct State {
    /// Networks added to the allowlist by hand.
    pub allow_add: Vec<IpNet>,
    /// Networks of `block.allowlist` removed by hand.
    pub allow_del: Vec<IpNet>,
    /// Manual blocks.
    pub blocks: Vec<ManualBlock>,
}

impl State {
    /// Reads the state file; a missing file is an empty state.
    pub fn load(path: &Path) -> Result<State, String> {
        match std::fs::read_to_string(path) {
            Ok(t) => serde_json::from_str(&t).map_err(|e| {
                format!(
                    "control state file {}: {e} (fix or delete it)",
                    path.display()
                )
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(State::default()),
            Err(e) => Err(format!("control state file {}: {e}", path.display())),
        }
    }

    /// Writes the state atomically (temporary file, then rename), mode
    /// 0600, creating the directory.
    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        use std::os::unix::fs::OpenOptionsExt;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let tmp: PathBuf = path.with_extension("tmp");
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        let text = serde_json::to_string_pretty(self).map_err(std::io::Error::other)?;
        f.write_all(text.as_bytes())?;
        f.write_all(b"\n")?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    }

    /// The allowlist in force: `file` (block.allowlist) without what was
    /// deleted by hand, plus what was added by hand.
    pub fn effective_allowlist(&self, file: &[IpNet]) -> Vec<IpNet> {
        let mut v: Vec<IpNet> = file
            .iter()
            .filter(|n| !self.allow_del.contains(&n.trunc()))
            .copied()
            .collect();
        for n in &self.allow_add {
            if !v.iter().any(|x| x.trunc() == *n) {
                v.push(*n);
            }
        }
        v
    }

    /// Adds `net` to the allowlist; `false` if it was already in force.
    pub fn allow_add(&mut self, net: IpNet, file: &[IpNet]) -> bool {
        let before = self.effective_allowlist(file);
        self.allow_del.retain(|n| *n != net);
        if !file.iter().any(|n| n.trunc() == net) && !self.allow_add.contains(&net) {
            self.allow_add.push(net);
        }
        before != self.effective_allowlist(file)
    }

    /// Removes `net` (exactly as listed) from the allowlist; an error
    /// naming the list if it is not there.
    pub fn allow_del(&mut self, net: IpNet, file: &[IpNet]) -> Result<(), String> {
        let before = self.effective_allowlist(file);
        if !before.iter().any(|n| n.trunc() == net) {
            let list: Vec<String> = before.iter().map(|n| n.to_string()).collect();
            return Err(format!(
                "{net} is not in the allowlist (entries are removed exactly as listed: [{}])",
                list.join(", ")
            ));
        }
        self.allow_add.retain(|n| *n != net);
        if file.iter().any(|n| n.trunc() == net) && !self.allow_del.contains(&net) {
            self.allow_del.push(net);
        }
        Ok(())
    }

    /// Forgets manual blocks that ended by `now_ns`.
    pub fn prune(&mut self, now_ns: u64) {
        self.blocks.retain(|b| b.until_ns > now_ns);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_parse_and_errors_name_the_problem() {
        assert_eq!(
            parse_request(r#"{"cmd":"block","ip":"198.18.1.5","ttl":"10m","reason":"x"}"#),
            Ok(Request::Block {
                ip: "198.18.1.5".parse().unwrap(),
                ttl: Some(Duration::from_secs(600)),
                reason: "x".into()
            })
        );
        assert_eq!(
            parse_request(r#"{"cmd":"unblock","target":"198.18.1.77/24"}"#),
            Ok(Request::Unblock {
                net: "198.18.1.0/24".parse().unwrap(),
                reason: String::new()
            })
        );
        let req = Request::Allow {
            op: AllowOp::Add,
            net: Some("2001:db8::/32".parse().unwrap()),
            reason: "lab".into(),
        };
        assert_eq!(parse_request(&req.to_json().to_string()), Ok(req));
        for (line, needle) in [
            ("", "not valid JSON"),
            ("{", "not valid JSON"),
            ("[1]", "JSON object"),
            ("{}", "missing \"cmd\""),
            (r#"{"cmd":7}"#, "\"cmd\" must be a string"),
            (r#"{"cmd":"explode"}"#, "unknown cmd \"explode\""),
            (r#"{"cmd":"block"}"#, "missing \"ip\""),
            (r#"{"cmd":"block","ip":"1.2.3.4/24"}"#, "not an IP address"),
            (
                r#"{"cmd":"block","ip":"1.2.3.4","ttl":"0s"}"#,
                "more than 0",
            ),
            (r#"{"cmd":"block","ip":"1.2.3.4","ttl":"soon"}"#, "\"ttl\""),
            (
                r#"{"cmd":"block","ip":"1.2.3.4","tll":"1m"}"#,
                "unknown field \"tll\"",
            ),
            (
                r#"{"cmd":"unblock","target":"nope"}"#,
                "not an IP address or CIDR",
            ),
            (r#"{"cmd":"allow","op":"add"}"#, "missing \"net\""),
            (
                r#"{"cmd":"allow","op":"sub","net":"1.2.3.0/24"}"#,
                "expected add, del or list",
            ),
            (r#"{"cmd":"blocks","x":1}"#, "unknown field \"x\""),
        ] {
            let e = parse_request(line).expect_err(line);
            assert!(e.contains(needle), "{line}: {e}");
        }
    }

    #[test]
    fn allowlist_changes_layer_over_the_file() {
        let file: Vec<IpNet> = vec!["198.18.255.0/24".parse().unwrap()];
        let mut st = State::default();
        let a: IpNet = "198.18.7.0/24".parse().unwrap();
        assert!(st.allow_add(a, &file));
        assert!(!st.allow_add(a, &file), "already in force");
        assert_eq!(st.effective_allowlist(&file), vec![file[0], a]);
        st.allow_del(file[0], &file).unwrap();
        assert_eq!(st.effective_allowlist(&file), vec![a]);
        // A reloaded file keeps the operator's changes on top.
        let file2: Vec<IpNet> = vec![file[0], "198.19.9.0/24".parse().unwrap()];
        assert_eq!(st.effective_allowlist(&file2), vec![file2[1], a]);
        let e = st
            .allow_del("10.0.0.0/8".parse().unwrap(), &file)
            .unwrap_err();
        assert!(e.contains("not in the allowlist"), "{e}");
        assert!(st.allow_add(file[0], &file), "re-added");
        assert!(st.allow_del.is_empty());
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sub/state.json");
        st.blocks.push(ManualBlock {
            src: "198.18.1.9".parse().unwrap(),
            until_ns: 5,
            by: Operator {
                uid: Some(0),
                user: "root".into(),
                reason: "t".into(),
            },
        });
        st.save(&p).unwrap();
        assert_eq!(State::load(&p).unwrap(), st);
        st.prune(5);
        assert!(st.blocks.is_empty());
        assert_eq!(
            State::load(&dir.path().join("none")).unwrap(),
            State::default()
        );
    }
}
