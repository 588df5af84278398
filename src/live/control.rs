//! The control socket of `flowgate live` (protocol in `crate::control`).
//!
//! ```text
//!  client ── unix socket ──► listener thread ──(request, peer uid)──► control loop (Controller)
//!                              one thread per connection                │
//!             shards: ToShard::Control between batches ◄────────────────┤  (engine operator_* methods)
//!             sink:   ToSink::Kernel (blocklist / allowlist maps) ◄─────┘  waits for both, then answers
//! ```
//!
//! The controller runs on the thread that handles SIGHUP, so socket
//! requests and reloads never interleave. Each change reaches the shards
//! (their mirror, episodes, alerts) and the kernel maps before the answer
//! is written; manual blocks and allowlist changes go to the state file.

use super::sink::ToSink;
use super::worker::ToShard;
use crate::alert::{eve_time, Operator};
use crate::config::{Config, Mode, Sources};
use crate::control::{error_line, AllowOp, ManualBlock, Request, State, MAX_LINE};
use crate::engine::{BlockInfo, OperatorError, ShardEngine, Stats};
use crate::packet::Ts;
use crate::ruleset::Ruleset;
use crate::xdp::{Allowlist, Blocklist};
use crossbeam_channel::{bounded, Receiver, Sender};
use ipnet::IpNet;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::IpAddr;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// How long a shard or the sink may take to answer a control command.
const ANSWER_WITHIN: Duration = Duration::from_secs(5);
/// Most connections served at once.
const MAX_CONNECTIONS: usize = 16;
/// An idle connection is closed after this.
const IDLE: Duration = Duration::from_secs(30);

/// A command for one shard, run between batches.
pub enum ShardCmd {
    Block {
        src: IpAddr,
        now: Ts,
        until: Ts,
        by: Arc<Operator>,
    },
    Unblock {
        net: IpNet,
        now: Ts,
        by: Arc<Operator>,
    },
    Allowlist {
        nets: Vec<IpNet>,
        now: Ts,
        by: Arc<Operator>,
    },
    Blocks,
    Stats,
}

/// A shard's answer.
pub enum ShardReply {
    Block(Result<BlockInfo, OperatorError>),
    Ended(Vec<BlockInfo>),
    Blocks(Vec<BlockInfo>),
    Stats(Box<Stats>, usize),
}

/// Runs a command on a shard's engine (the worker calls this between
/// batches).
pub fn apply(engine: &mut ShardEngine, cmd: ShardCmd) -> ShardReply {
    match cmd {
        ShardCmd::Block {
            src,
            now,
            until,
            by,
        } => ShardReply::Block(engine.operator_block(src, now, until, by)),
        ShardCmd::Unblock { net, now, by } => {
            ShardReply::Ended(engine.operator_unblock(net, now, by))
        }
        ShardCmd::Allowlist { nets, now, by } => {
            ShardReply::Ended(engine.set_allowlist(nets, now, Some(by)))
        }
        ShardCmd::Blocks => ShardReply::Blocks(engine.blocks()),
        ShardCmd::Stats => ShardReply::Stats(Box::new(engine.stats()), engine.blocked_sources()),
    }
}

/// A change to (or a look at) the kernel maps, made by the sink.
pub enum KernelOp {
    Block {
        src: IpAddr,
        until: Ts,
    },
    /// Remove every blocklist entry inside `net`; `at` is when the
    /// operator asked, so a detector alert from before it in flight does
    /// not put a source back.
    Unblock {
        net: IpNet,
        at: Ts,
    },
    Allowlist(Vec<IpNet>),
    List,
}

/// Networks unblocked by an operator recently, with when: an alert older
/// than that for a source inside must not re-insert it into the kernel.
#[derive(Default)]
pub struct Cleared(Vec<(IpNet, Ts)>);

impl Cleared {
    /// Whether a block decided at `ts` for `src` was undone since.
    pub fn covers(&self, src: IpAddr, ts: Ts) -> bool {
        self.0
            .iter()
            .any(|(n, at)| *at >= ts && crate::engine::net_contains(n, src))
    }

    fn add(&mut self, net: IpNet, at: Ts) {
        // Verdicts in flight are decided within a few batches: a minute
        // of memory is plenty, and bounds the list.
        let horizon = at.saturating_sub(60 * crate::packet::NANOS_PER_SEC);
        self.0.retain(|(_, t)| *t > horizon);
        if self.0.len() >= 4096 {
            self.0.remove(0);
        }
        self.0.push((net, at));
    }
}

/// Applies a kernel-map change (on the sink thread).
pub fn kernel(
    bl: Option<&mut Blocklist>,
    al: Option<&mut Allowlist>,
    cleared: &mut Cleared,
    op: KernelOp,
) -> Result<Value, String> {
    let no_map = || "the kernel blocklist is not open".to_string();
    match op {
        KernelOp::Block { src, until } => {
            let bl = bl.ok_or_else(no_map)?;
            let left = Duration::from_nanos(until.saturating_sub(super::wall_ns()));
            bl.block(src, left)
                .map_err(|e| format!("kernel blocklist: {e}"))?;
            Ok(json!({"kernel": true}))
        }
        KernelOp::Unblock { net, at } => {
            cleared.add(net, at);
            let bl = bl.ok_or_else(no_map)?;
            Ok(json!({"kernel_entries_removed": bl.remove_within(&net)}))
        }
        KernelOp::Allowlist(nets) => {
            let al = al.ok_or_else(|| "the kernel allowlist maps are not open".to_string())?;
            al.set(&nets)
                .map_err(|e| format!("kernel allowlist: {e}"))?;
            Ok(json!({"kernel_allowlist": al.nets().len()}))
        }
        KernelOp::List => {
            let bl = bl.ok_or_else(no_map)?;
            let now = crate::xdp::monotonic_ns();
            let v: Vec<Value> = bl
                .entries()
                .into_iter()
                .map(|(ip, exp)| json!({"src": ip.to_string(), "expires_in_ms": exp.saturating_sub(now) / 1_000_000}))
                .collect();
            Ok(Value::Array(v))
        }
    }
}

/// A request from a connection, for the controller.
pub struct CtlMsg {
    pub req: Request,
    pub by: Operator,
    pub reply: Sender<Value>,
}

/// The listening socket and its thread; removes the socket file on drop.
pub struct Server {
    path: PathBuf,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Binds the control socket at `path` (mode 0600; its directory created
/// 0700 if missing) and serves it on a thread, handing parsed requests to
/// `tx`. Refuses if another process answers on `path`; a stale socket
/// file is replaced.
pub fn serve(path: &Path, tx: Sender<CtlMsg>) -> Result<Server, String> {
    let at = path.display();
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if !dir.exists() {
            std::fs::create_dir_all(dir)
                .and_then(|_| std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)))
                .map_err(|e| format!("control socket directory {}: {e}", dir.display()))?;
        }
    }
    if path.exists() {
        if UnixStream::connect(path).is_ok() {
            return Err(format!(
                "control socket {at}: another process answers there (another flowgate live?); \
                 give this one its own control.socket"
            ));
        }
        std::fs::remove_file(path)
            .map_err(|e| format!("removing stale control socket {at}: {e}"))?;
    }
    // Sockets are created with the umask's mode; it is narrowed at once,
    // and the server checks every peer's uid anyway (a socket's
    // permissions are the first gate, not the only one). Bound at its
    // final name so /proc/net/unix shows it (how `flowgate xdp` finds it).
    let listener = UnixListener::bind(path).map_err(|e| format!("control socket {at}: {e}"))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(|e| {
        let _ = std::fs::remove_file(path);
        format!("control socket {at}: {e}")
    })?;
    listener
        .set_nonblocking(true)
        .map_err(|e| format!("control socket {at}: {e}"))?;
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = stop.clone();
    let thread = std::thread::Builder::new()
        .name("control".into())
        .spawn(move || accept_loop(listener, tx, stop2))
        .map_err(|e| format!("control thread: {e}"))?;
    Ok(Server {
        path: path.to_path_buf(),
        stop,
        thread: Some(thread),
    })
}

fn accept_loop(listener: UnixListener, tx: Sender<CtlMsg>, stop: Arc<AtomicBool>) {
    let active = Arc::new(AtomicUsize::new(0));
    while !stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((mut conn, _)) => {
                let _ = conn.set_nonblocking(false);
                if active.load(Ordering::Relaxed) >= MAX_CONNECTIONS {
                    let _ = writeln!(
                        conn,
                        "{}",
                        error_line(format!(
                            "too many control connections (at most {MAX_CONNECTIONS}); try again"
                        ))
                    );
                    continue;
                }
                active.fetch_add(1, Ordering::Relaxed);
                let (tx, active2) = (tx.clone(), active.clone());
                let spawned = std::thread::Builder::new()
                    .name("control-conn".into())
                    .spawn(move || {
                        connection(conn, &tx);
                        active2.fetch_sub(1, Ordering::Relaxed);
                    });
                if spawned.is_err() {
                    active.fetch_sub(1, Ordering::Relaxed);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => {
                tracing::warn!("control socket accept: {e}");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

/// Who is on the other end (SO_PEERCRED), or why they may not ask.
fn peer(conn: &UnixStream) -> Result<Operator, String> {
    use nix::sys::socket::{getsockopt, sockopt::PeerCredentials};
    let cred = getsockopt(conn, PeerCredentials)
        .map_err(|e| format!("cannot read the peer's credentials (SO_PEERCRED): {e}"))?;
    let uid = cred.uid();
    let me = nix::unistd::geteuid().as_raw();
    if uid != 0 && uid != me {
        return Err(format!(
            "uid {uid} may not use the control socket (only root and uid {me}, which runs flowgate live)"
        ));
    }
    let user = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
        .ok()
        .flatten()
        .map(|u| u.name)
        .unwrap_or_else(|| format!("uid{uid}"));
    Ok(Operator {
        uid: Some(uid),
        user,
        reason: String::new(),
    })
}

/// Serves one connection: one answer line per request line.
fn connection(conn: UnixStream, tx: &Sender<CtlMsg>) {
    let _ = conn.set_read_timeout(Some(IDLE));
    let _ = conn.set_write_timeout(Some(ANSWER_WITHIN));
    let Ok(mut out) = conn.try_clone() else {
        return;
    };
    let mut send = |v: Value| -> bool {
        let mut line = v.to_string();
        line.push('\n');
        out.write_all(line.as_bytes()).is_ok()
    };
    let who = match peer(&conn) {
        Ok(w) => w,
        Err(e) => {
            tracing::warn!("control socket: refused: {e}");
            send(error_line(e));
            return;
        }
    };
    let mut reader = BufReader::new(conn);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match (&mut reader)
            .take(MAX_LINE as u64 + 1)
            .read_until(b'\n', &mut buf)
        {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        if buf.last() != Some(&b'\n') && buf.len() > MAX_LINE {
            send(error_line(format!(
                "request line longer than {MAX_LINE} bytes; closing the connection"
            )));
            return;
        }
        let Ok(line) = std::str::from_utf8(&buf) else {
            if !send(error_line("request is not UTF-8")) {
                return;
            }
            continue;
        };
        if line.trim().is_empty() {
            continue;
        }
        let answer = match crate::control::parse_request(line.trim()) {
            Err(e) => {
                crate::metrics::operator_action("invalid", false);
                error_line(e)
            }
            Ok(req) => {
                let (rtx, rrx) = bounded(1);
                let msg = CtlMsg {
                    req,
                    by: who.clone(),
                    reply: rtx,
                };
                if tx.send(msg).is_err() {
                    send(error_line("flowgate live is stopping"));
                    return;
                }
                // The controller answers every request it takes; a reload
                // compiling big rule sets may take a while.
                rrx.recv_timeout(Duration::from_secs(120))
                    .unwrap_or_else(|_| error_line("no answer from the control loop in 120 s"))
            }
        };
        if !send(answer) {
            return;
        }
    }
}

/// The one place a running `flowgate live` changes: SIGHUP reloads and
/// control requests.
pub struct Controller {
    pub to_shard: Vec<Sender<ToShard>>,
    pub sink: Sender<ToSink>,
    pub sharder: crate::shard::Sharder,
    pub current: Arc<Config>,
    /// `block.allowlist` as the configuration sources say (before the
    /// operator's changes).
    pub file_allowlist: Vec<IpNet>,
    pub state: State,
    pub sources: Sources,
    pub generation: u64,
    pub shared: Arc<super::Shared>,
    pub started: std::time::Instant,
}

fn ns(d: Duration) -> Ts {
    d.as_nanos().min(u64::MAX as u128) as Ts
}

impl Controller {
    fn shards(&self) -> usize {
        self.to_shard.len()
    }

    /// Sends `cmd(i)` to each of `which` and collects the answers.
    fn ask(&self, which: &[usize], cmd: impl Fn() -> ShardCmd) -> Result<Vec<ShardReply>, String> {
        let mut waits = Vec::new();
        for &i in which {
            let (tx, rx) = bounded(1);
            self.to_shard[i]
                .send_timeout(ToShard::Control(cmd(), tx), ANSWER_WITHIN)
                .map_err(|_| format!("shard {i} did not take the command within 5 s"))?;
            waits.push((i, rx));
        }
        waits
            .into_iter()
            .map(|(i, rx)| {
                rx.recv_timeout(ANSWER_WITHIN)
                    .map_err(|_| format!("shard {i} did not answer within 5 s"))
            })
            .collect()
    }

    fn all(&self) -> Vec<usize> {
        (0..self.shards()).collect()
    }

    fn kernel(&self, op: KernelOp) -> Result<Value, String> {
        let (tx, rx) = bounded(1);
        self.sink
            .send_timeout(ToSink::Kernel(op, tx), ANSWER_WITHIN)
            .map_err(|_| "the sink did not take the kernel change within 5 s".to_string())?;
        rx.recv_timeout(ANSWER_WITHIN)
            .map_err(|_| "the sink did not answer within 5 s".to_string())?
    }

    fn save(&mut self) -> Result<(), String> {
        self.state.prune(super::wall_ns());
        let path = &self.current.control.state_file;
        if path.as_os_str().is_empty() {
            return Ok(());
        }
        self.state.save(path).map_err(|e| {
            format!(
                "the change holds now but was not saved to {} ({e}): it will not survive a restart",
                path.display()
            )
        })
    }

    /// Handles one request: the answer line.
    pub fn handle(&mut self, req: Request, mut by: Operator) -> Value {
        let verb = req.verb();
        let result = match req {
            Request::Block { ip, ttl, reason } => {
                by.reason = reason;
                let ttl = ttl.unwrap_or(self.current.block.ttl);
                self.block(ip, ttl, by.clone())
            }
            Request::Unblock { net, reason } => {
                by.reason = reason;
                self.unblock(net, by.clone())
            }
            Request::Allow { op, net, reason } => {
                by.reason = reason;
                self.allow(op, net, by.clone())
            }
            Request::Blocks => self.blocks(),
            Request::Reload => self.reload().map(|g| json!({"generation": g})),
            Request::Stats => self.stats(),
            Request::Version => Ok(json!({
                "version": env!("CARGO_PKG_VERSION"),
                "pid": std::process::id(),
                "generation": self.generation,
            })),
        };
        crate::metrics::operator_action(verb, result.is_ok());
        let mutating = matches!(verb, "block" | "unblock" | "allow_add" | "allow_del");
        match result {
            Ok(Value::Object(m)) => {
                if mutating {
                    tracing::info!(
                        "ctl {verb} by {}: {}",
                        by.describe(),
                        serde_json::Value::Object(m.clone())
                    );
                }
                let mut out = serde_json::Map::new();
                out.insert("ok".into(), true.into());
                out.extend(m);
                Value::Object(out)
            }
            Ok(other) => json!({"ok": true, "result": other}),
            Err(e) => {
                if mutating {
                    tracing::warn!("ctl {verb} by {} refused: {e}", by.describe());
                }
                error_line(e)
            }
        }
    }

    fn block(&mut self, ip: IpAddr, ttl: Duration, by: Operator) -> Result<Value, String> {
        let now = super::wall_ns();
        let until = now.saturating_add(ns(ttl));
        self.block_until(ip, now, until, by)
    }

    fn block_until(
        &mut self,
        ip: IpAddr,
        now: Ts,
        until: Ts,
        by: Operator,
    ) -> Result<Value, String> {
        let shard = self.sharder.shard_of(ip, self.shards());
        let by_arc = Arc::new(by.clone());
        let reply = self.ask(&[shard], || ShardCmd::Block {
            src: ip,
            now,
            until,
            by: by_arc.clone(),
        })?;
        let info = match reply.into_iter().next() {
            Some(ShardReply::Block(r)) => r.map_err(|e| e.to_string())?,
            _ => return Err(format!("shard {shard} gave no block answer")),
        };
        let enforced = self.current.engine.mode == Mode::Prevent;
        if enforced {
            self.kernel(KernelOp::Block { src: ip, until })?;
        }
        self.state.blocks.retain(|b| b.src != ip);
        self.state.blocks.push(ManualBlock {
            src: ip,
            until_ns: until,
            by,
        });
        let saved = self.save();
        let mut v = json!({
            "blocked": ip.to_string(),
            "rule": info.rule,
            "until": eve_time(until),
            "until_ns": until,
            "kernel": enforced,
        });
        if !enforced {
            v["note"] = "detect mode: the block is logged and counted, nothing is dropped".into();
        }
        saved?;
        Ok(v)
    }

    fn unblock(&mut self, net: IpNet, by: Operator) -> Result<Value, String> {
        let now = super::wall_ns();
        let by = Arc::new(by);
        let replies = self.ask(&self.all(), || ShardCmd::Unblock {
            net,
            now,
            by: by.clone(),
        })?;
        let ended = ended_of(replies);
        let k = self.kernel(KernelOp::Unblock { net, at: now })?;
        self.state
            .blocks
            .retain(|b| !crate::engine::net_contains(&net, b.src));
        self.save()?;
        Ok(json!({
            "unblocked": ended.iter().map(|b| b.src.to_string()).collect::<Vec<_>>(),
            "episodes_ended": ended.len(),
            "kernel_entries_removed": k["kernel_entries_removed"],
        }))
    }

    fn allow(&mut self, op: AllowOp, net: Option<IpNet>, by: Operator) -> Result<Value, String> {
        let file = self.file_allowlist.clone();
        let net = match (op, net) {
            (AllowOp::List, _) => {
                return Ok(json!({
                    "allowlist": self.current.block.allowlist.iter().map(|n| n.to_string()).collect::<Vec<_>>(),
                    "from_config": file.iter().map(|n| n.to_string()).collect::<Vec<_>>(),
                    "added": self.state.allow_add.iter().map(|n| n.to_string()).collect::<Vec<_>>(),
                    "removed": self.state.allow_del.iter().map(|n| n.to_string()).collect::<Vec<_>>(),
                }))
            }
            (_, None) => return Err("allow: missing network".into()),
            (_, Some(n)) => n,
        };
        let before = self.state.clone();
        match op {
            AllowOp::Add => {
                self.state.allow_add(net, &file);
            }
            _ => self.state.allow_del(net, &file)?,
        }
        let nets = self.state.effective_allowlist(&file);
        if let Err(e) = self.apply_allowlist(nets.clone(), Arc::new(by)) {
            self.state = before;
            return Err(e);
        }
        let ended = match op {
            AllowOp::Add => {
                let now = super::wall_ns();
                self.kernel(KernelOp::Unblock { net, at: now })?;
                // Manual blocks inside are over too.
                self.state
                    .blocks
                    .retain(|b| !crate::engine::net_contains(&net, b.src));
                true
            }
            _ => false,
        };
        self.save()?;
        Ok(json!({
            "allowlist": nets.iter().map(|n| n.to_string()).collect::<Vec<_>>(),
            "blocks_ended": ended,
        }))
    }

    /// Kernel LPM maps first (the program passes the sources at once),
    /// then every shard (bits re-evaluated, episodes ended).
    fn apply_allowlist(
        &mut self,
        nets: Vec<IpNet>,
        by: Arc<Operator>,
    ) -> Result<Vec<BlockInfo>, String> {
        self.kernel(KernelOp::Allowlist(nets.clone()))?;
        let now = super::wall_ns();
        let replies = self.ask(&self.all(), || ShardCmd::Allowlist {
            nets: nets.clone(),
            now,
            by: by.clone(),
        })?;
        let mut cfg = (*self.current).clone();
        cfg.block.allowlist = nets;
        self.current = Arc::new(cfg);
        Ok(ended_of(replies))
    }

    fn blocks(&self) -> Result<Value, String> {
        let mut all: Vec<BlockInfo> = Vec::new();
        for r in self.ask(&self.all(), || ShardCmd::Blocks)? {
            if let ShardReply::Blocks(v) = r {
                all.extend(v);
            }
        }
        all.sort_unstable_by_key(|a| a.src);
        let kernel = self.kernel(KernelOp::List)?;
        let in_kernel: std::collections::BTreeSet<String> = kernel
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|e| e["src"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        let mirror: std::collections::BTreeSet<String> =
            all.iter().map(|b| b.src.to_string()).collect();
        let blocks: Vec<Value> = all
            .iter()
            .map(|b| {
                json!({
                    "src": b.src.to_string(),
                    "rule": b.rule,
                    "name": b.name,
                    "since": eve_time(b.since),
                    "until": eve_time(b.until),
                    "since_ns": b.since,
                    "until_ns": b.until,
                    "packets": b.packets,
                    "bytes": b.bytes,
                    "by": b.by.as_ref().map(|o| o.to_eve()),
                    "kernel": in_kernel.contains(&b.src.to_string()),
                })
            })
            .collect();
        let kernel_only: Vec<&String> = in_kernel.difference(&mirror).collect();
        Ok(json!({"blocks": blocks, "kernel_only": kernel_only}))
    }

    fn stats(&self) -> Result<Value, String> {
        let mut total = Stats::default();
        let mut blocked = 0;
        for r in self.ask(&self.all(), || ShardCmd::Stats)? {
            if let ShardReply::Stats(s, b) = r {
                total.add(&s);
                blocked += b;
            }
        }
        Ok(json!({
            "uptime_s": self.started.elapsed().as_secs_f64(),
            "generation": self.generation,
            "shards": self.shards(),
            "blocked_sources": blocked,
            "stats": total,
        }))
    }

    /// Re-reads config and rules (SIGHUP, `ctl reload`): the operator's
    /// allowlist changes are applied on top of the new `block.allowlist`,
    /// the kernel allowlist refilled if it changed; blocks are kept.
    pub fn reload(&mut self) -> Result<u64, String> {
        let result = super::reload(&self.current, &self.sources);
        let _ = self.sink.send(ToSink::Reopen);
        let (new_cfg, new_rules): (Arc<Config>, Arc<Ruleset>) = match result {
            Ok(r) => r,
            Err(e) => {
                crate::metrics::reload(false, self.generation);
                tracing::error!("reload refused, the running configuration stays: {e}");
                return Err(format!(
                    "reload refused, the running configuration stays: {e}"
                ));
            }
        };
        let mut cfg = (*new_cfg).clone();
        self.file_allowlist = cfg.block.allowlist.clone();
        cfg.block.allowlist = self.state.effective_allowlist(&self.file_allowlist);
        if cfg.block.allowlist != self.current.block.allowlist {
            if let Err(e) = self.kernel(KernelOp::Allowlist(cfg.block.allowlist.clone())) {
                tracing::error!("reload: {e}; the kernel allowlist keeps its old entries");
            }
        }
        let cfg = Arc::new(cfg);
        for tx in &self.to_shard {
            let _ = tx.send(ToShard::Reload(cfg.clone(), new_rules.clone()));
        }
        // The victim merge and the SYN guards run in the sink.
        let _ = self.sink.send(ToSink::Victim(cfg.detect.victim.clone()));
        self.current = cfg;
        self.generation += 1;
        self.shared
            .generation
            .store(self.generation, Ordering::Relaxed);
        crate::metrics::reload(true, self.generation);
        tracing::info!("reloaded: generation {}", self.generation);
        Ok(self.generation)
    }

    /// Puts the manual blocks of the state file back (at start).
    pub fn restore(&mut self) {
        let now = super::wall_ns();
        let blocks: Vec<ManualBlock> = std::mem::take(&mut self.state.blocks)
            .into_iter()
            .filter(|b| b.until_ns > now)
            .collect();
        for b in blocks {
            match self.block_until(b.src, now, b.until_ns, b.by.clone()) {
                Ok(_) => tracing::info!(
                    "restored the manual block of {} until {} ({})",
                    b.src,
                    eve_time(b.until_ns),
                    b.by.describe()
                ),
                Err(e) => tracing::warn!("manual block of {} not restored: {e}", b.src),
            }
        }
        let _ = self.save();
    }
}

fn ended_of(replies: Vec<ShardReply>) -> Vec<BlockInfo> {
    let mut v = Vec::new();
    for r in replies {
        if let ShardReply::Ended(e) = r {
            v.extend(e);
        }
    }
    v.sort_unstable_by_key(|a| a.src);
    v
}

/// Serves control requests until `timeout` passes without one (the
/// control loop calls this instead of sleeping).
pub fn serve_for(ctl: &mut Controller, rx: &Receiver<CtlMsg>, timeout: Duration) {
    if let Ok(m) = rx.recv_timeout(timeout) {
        let answer = ctl.handle(m.req, m.by);
        let _ = m.reply.send(answer);
        // More may be waiting: take them without sleeping again.
        while let Ok(m) = rx.try_recv() {
            let answer = ctl.handle(m.req, m.by);
            let _ = m.reply.send(answer);
        }
    }
}
