//! The live test rig: a three-namespace line, attacker ⇄ gateway ⇄ victim,
//! with addresses in 198.18.0.0/15, made by the test and torn down by Drop.
//!
//! ```text
//!  attacker ns            gateway ns                 victim ns
//!  fgA0 198.18.1.x/15 ── fgGA  [flowgate]  fgGB ── fgV0 198.19.1.2/15
//! ```
//! Needs root; `Rig::new` returns None (and the test says it skipped)
//! otherwise.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const VICTIM: &str = "198.19.1.2";
pub const INGRESS: &str = "fgGA";
pub const EGRESS: &str = "fgGB";
pub const ATTACKER_IF: &str = "fgA0";
pub const VICTIM_IF: &str = "fgV0";

pub struct Rig {
    pub ns: [String; 3],
    pub bpffs: PathBuf,
    pub dir: tempfile::TempDir,
    children: Vec<Child>,
}

pub fn sh(cmd: &[&str]) -> Output {
    Command::new(cmd[0])
        .args(&cmd[1..])
        .output()
        .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"))
}

pub fn ok(cmd: &[&str]) {
    let o = sh(cmd);
    assert!(
        o.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

pub fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout.starts_with(b"0\n"))
        .unwrap_or(false)
}

pub const ATTACKER: usize = 0;
pub const GATEWAY: usize = 1;
pub const VICTIM_NS: usize = 2;

impl Rig {
    /// `sources`: host parts of the attacker's 198.18.1.x addresses.
    pub fn new(tag: &str, sources: &[u8]) -> Option<Rig> {
        if !is_root() {
            eprintln!("skipping: live tests need root");
            return None;
        }
        let id = std::process::id() % 100_000;
        let ns = [
            format!("fg{id}{tag}a"),
            format!("fg{id}{tag}g"),
            format!("fg{id}{tag}v"),
        ];
        let bpffs = std::env::temp_dir().join(format!("fgbpf-{id}-{tag}"));
        // Built first, so a failure below still tears down what exists.
        let rig = Rig {
            ns,
            bpffs,
            dir: tempfile::tempdir().unwrap(),
            children: Vec::new(),
        };
        std::fs::create_dir_all(&rig.bpffs).unwrap();
        for n in &rig.ns {
            let _ = sh(&["ip", "netns", "del", n]);
            ok(&["ip", "netns", "add", n]);
            ok(&["ip", "-n", n, "link", "set", "lo", "up"]);
        }
        let [a, g, v] = &rig.ns;
        ok(&[
            "ip",
            "link",
            "add",
            ATTACKER_IF,
            "netns",
            a,
            "type",
            "veth",
            "peer",
            "name",
            INGRESS,
            "netns",
            g,
        ]);
        ok(&[
            "ip", "link", "add", EGRESS, "netns", g, "type", "veth", "peer", "name", VICTIM_IF,
            "netns", v,
        ]);
        for s in sources {
            let addr = format!("198.18.1.{s}/15");
            ok(&["ip", "-n", a, "addr", "add", &addr, "dev", ATTACKER_IF]);
        }
        ok(&[
            "ip",
            "-n",
            v,
            "addr",
            "add",
            "198.19.1.2/15",
            "dev",
            VICTIM_IF,
        ]);
        for (n, i) in [(a, ATTACKER_IF), (g, INGRESS), (g, EGRESS), (v, VICTIM_IF)] {
            ok(&["ip", "-n", n, "link", "set", i, "up"]);
        }
        // A devmap redirect into a veth needs GRO (or XDP) on the far end;
        // TCP generated on a veth leaves its checksum to offload, which a
        // frame forwarded by XDP never gets: compute it on the sender.
        for (n, i) in [(a, ATTACKER_IF), (v, VICTIM_IF)] {
            ok(&[
                "ip", "netns", "exec", n, "ethtool", "-K", i, "gro", "on", "tx", "off",
            ]);
        }
        // A bpffs outside the namespaces' fresh /sys, so pins outlive each
        // `ip netns exec`, as /sys/fs/bpf does on a real gateway.
        ok(&["mount", "-t", "bpf", "bpf", rig.bpffs.to_str().unwrap()]);
        Some(rig)
    }

    pub fn pin_dir(&self) -> PathBuf {
        self.bpffs.join("flowgate")
    }

    /// The control socket `start_live` configures.
    pub fn ctl_socket(&self) -> PathBuf {
        self.path("ctl.sock")
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn in_ns(&self, ns: usize, args: &[&str]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.ns[ns]]).args(args);
        c
    }

    /// Runs a command in a namespace and waits.
    pub fn exec(&self, ns: usize, args: &[&str]) -> Output {
        self.in_ns(ns, args)
            .output()
            .unwrap_or_else(|e| panic!("{args:?}: {e}"))
    }

    /// Starts a command in a namespace; killed on Drop if still running.
    pub fn spawn(&mut self, ns: usize, args: &[&str], log: &str) -> usize {
        let out = std::fs::File::create(self.path(log)).unwrap();
        let err = out.try_clone().unwrap();
        let child = self
            .in_ns(ns, args)
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .spawn()
            .unwrap_or_else(|e| panic!("{args:?}: {e}"));
        self.children.push(child);
        self.children.len() - 1
    }

    pub fn child(&mut self, i: usize) -> &mut Child {
        &mut self.children[i]
    }

    pub fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.path(name)).unwrap_or_default()
    }

    /// Sends `sig` to a spawned child (through `ip netns exec`, which execs,
    /// so the pid is the command's).
    pub fn signal(&mut self, i: usize, sig: &str) {
        let pid = self.children[i].id().to_string();
        ok(&["kill", &format!("-{sig}"), &pid]);
    }

    /// Waits for a spawned child to exit, at most `limit`.
    pub fn wait(&mut self, i: usize, limit: Duration) -> Option<std::process::ExitStatus> {
        let t = Instant::now();
        while t.elapsed() < limit {
            if let Ok(Some(s)) = self.children[i].try_wait() {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    /// Waits until `log` contains `needle`.
    pub fn wait_for_log(&self, log: &str, needle: &str, limit: Duration) -> bool {
        let t = Instant::now();
        while t.elapsed() < limit {
            if self.log(log).contains(needle) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    /// `flowgate ARGS --pin-dir <rig's>` in the gateway namespace.
    pub fn flowgate(&self, args: &[&str]) -> Output {
        let pin = self.pin_dir();
        let mut a = vec![env!("CARGO_BIN_EXE_flowgate")];
        a.extend_from_slice(args);
        a.extend_from_slice(&["--pin-dir", pin.to_str().unwrap()]);
        self.exec(GATEWAY, &a)
    }

    /// Starts `flowgate live` inline between the gateway's ports.
    pub fn start_live(&mut self, extra: &[&str], log: &str) -> usize {
        self.start_live_with(extra, &[], log)
    }

    /// As [`Rig::start_live`], with environment variables for flowgate
    /// (`env NAME=VALUE flowgate ...`); an `--alerts` in `extra` replaces
    /// the rig's alert log.
    pub fn start_live_with(&mut self, extra: &[&str], env: &[(&str, &str)], log: &str) -> usize {
        let pin = self.pin_dir();
        let alerts = self.path("live-alerts.jsonl");
        // The box's own key file, kept in the test's directory (never
        // /var/lib on the machine running the tests).
        let key = format!("live.hash_key_file={}", self.path("hash.key").display());
        // The control socket and its state file too (never /run or /var/lib).
        let sock = format!("control.socket={}", self.ctl_socket().display());
        let state = format!(
            "control.state_file={}",
            self.path("ctl-state.json").display()
        );
        let mut a = vec![
            env!("CARGO_BIN_EXE_flowgate"),
            "live",
            "--ingress",
            INGRESS,
            "--egress",
            EGRESS,
            "--pin-dir",
            pin.to_str().unwrap(),
            "--alerts",
            alerts.to_str().unwrap(),
            "--set",
            &key,
            "--set",
            &sock,
            "--set",
            &state,
        ];
        if extra.contains(&"--alerts") {
            a.retain(|x| *x != "--alerts" && *x != alerts.to_str().unwrap());
        }
        a.extend_from_slice(extra);
        let mut a: Vec<String> = a.iter().map(|s| s.to_string()).collect();
        if !env.is_empty() {
            let mut e = vec!["env".to_string()];
            e.extend(env.iter().map(|(k, v)| format!("{k}={v}")));
            a.splice(0..0, e);
        }
        let a: Vec<&str> = a.iter().map(|s| s.as_str()).collect();
        let i = self.spawn(GATEWAY, &a, log);
        assert!(
            self.wait_for_log(log, "inline between", Duration::from_secs(20)),
            "flowgate live did not come up: {}",
            self.log(log)
        );
        i
    }

    /// Pings the victim from `src`: how many of `n` replies came back.
    pub fn ping(&self, src: &str, n: u32) -> u32 {
        let o = self.exec(
            ATTACKER,
            &[
                "ping",
                "-n",
                "-q",
                "-c",
                &n.to_string(),
                "-i",
                "0.2",
                "-W",
                "1",
                "-I",
                src,
                VICTIM,
            ],
        );
        let text = String::from_utf8_lossy(&o.stdout);
        text.split(',')
            .find_map(|p| {
                p.trim()
                    .strip_suffix(" received")
                    .and_then(|x| x.trim().parse().ok())
            })
            .unwrap_or(0)
    }

    pub fn status(&self) -> serde_json::Value {
        let o = self.flowgate(&["xdp", "status", "--json"]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        serde_json::from_slice(&o.stdout).unwrap()
    }

    pub fn counter(&self, name: &str) -> u64 {
        self.status()["counters"][name].as_u64().unwrap_or(0)
    }
}

/// Runs a command, ignoring every failure (for Drop: never panic there).
fn quietly(cmd: &mut Command) {
    let _ = cmd.stdout(Stdio::null()).stderr(Stdio::null()).status();
}

impl Drop for Rig {
    fn drop(&mut self) {
        for c in self.children.iter_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
        quietly(
            Command::new("ip")
                .args(["netns", "exec", &self.ns[GATEWAY]])
                .arg(env!("CARGO_BIN_EXE_flowgate"))
                .args(["xdp", "detach", "--pin-dir"])
                .arg(self.pin_dir()),
        );
        quietly(Command::new("umount").arg(&self.bpffs));
        let _ = std::fs::remove_dir(&self.bpffs);
        for n in &self.ns {
            quietly(Command::new("ip").args(["netns", "del", n]));
        }
    }
}

/// Live tests share two cores: run them one at a time so rates and
/// thresholds do not depend on what the other tests are doing.
pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}
