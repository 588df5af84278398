//! `flowgate ctl` against `flowgate live` on the three-namespace rig:
//! unblock a flooder, block a quiet source, allowlist a flooder, SIGHUP
//! allowlist reload, `xdp unblock` through the socket, who may connect,
//! malformed requests, 1 000 block/unblock calls, restart with the state
//! file, and the operator metrics. Needs root; skipped otherwise.

mod rig;

use rig::{Rig, ATTACKER, GATEWAY, VICTIM};
use serde_json::Value;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

const FLOOD_A: &str = "198.18.1.11";
const QUIET: &str = "198.18.1.12";
const FLOOD_ALLOW: &str = "198.18.1.13";
const FLOOD_HUP: &str = "198.18.1.14";
const FLOOD_XDP: &str = "198.18.1.15";

fn hping_flood(rig: &Rig, src: &str) {
    let _ = rig.exec(
        ATTACKER,
        &[
            "hping3", "-q", "-1", "-i", "u1000", "-c", "300", "-a", src, VICTIM,
        ],
    );
}

/// `flowgate ctl --socket <rig's> ARGS` (from the host: a path socket
/// does not care about network namespaces).
fn ctl(rig: &Rig, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_flowgate"))
        .arg("ctl")
        .arg("--socket")
        .arg(rig.ctl_socket())
        .args(args)
        .output()
        .unwrap()
}

fn ctl_ok(rig: &Rig, args: &[&str]) -> String {
    let o = ctl(rig, args);
    assert!(
        o.status.success(),
        "ctl {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn blocks(rig: &Rig) -> Value {
    serde_json::from_str(&ctl_ok(rig, &["blocks", "--json"])).unwrap()
}

fn blocked_srcs(v: &Value) -> Vec<String> {
    v["blocks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["src"].as_str().unwrap().to_string())
        .collect()
}

/// One persistent connection speaking the protocol.
struct Conn(BufReader<UnixStream>);

impl Conn {
    fn open(rig: &Rig) -> Conn {
        let s = UnixStream::connect(rig.ctl_socket()).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        Conn(BufReader::new(s))
    }
    fn raw(&mut self, bytes: &[u8]) -> Value {
        self.0.get_mut().write_all(bytes).unwrap();
        let mut line = String::new();
        self.0.read_line(&mut line).unwrap();
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{line:?}: {e}"))
    }
    fn call(&mut self, v: Value) -> Value {
        self.raw(format!("{v}\n").as_bytes())
    }
}

fn eve_lines(rig: &Rig) -> Vec<Value> {
    std::fs::read_to_string(rig.path("live-alerts.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

fn block_end(rig: &Rig, src: &str) -> Option<Value> {
    eve_lines(rig)
        .into_iter()
        .rev()
        .find(|v| v["event_type"] == "flowgate_block" && v["src_ip"] == src)
}

fn wait_until(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let t = Instant::now();
    while t.elapsed() < limit {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// Time from `start` until one ping from `src` is answered (1 s each).
fn first_reply(rig: &Rig, src: &str, start: Instant) -> Option<Duration> {
    for _ in 0..5 {
        if rig
            .exec(
                ATTACKER,
                &["ping", "-n", "-q", "-c", "1", "-W", "1", "-I", src, VICTIM],
            )
            .status
            .success()
        {
            return Some(start.elapsed());
        }
    }
    None
}

#[test]
fn operator_controls_a_running_box() {
    let _serial = rig::serial();
    let Some(mut rig) = Rig::new("o", &[1, 11, 12, 13, 14, 15]) else {
        return;
    };
    let cfg = rig.path("flowgate.toml");
    std::fs::write(&cfg, "[block]\nttl = \"10m\"\n").unwrap();
    let live = rig.start_live(
        &[
            "-c",
            cfg.to_str().unwrap(),
            "--shards",
            "2",
            "--metrics-listen",
            "127.0.0.1:19464",
        ],
        "live.log",
    );
    assert!(ctl_ok(&rig, &["version"]).contains("flowgate"));

    // 1. Blocked by a flood, unblocked by the operator: pings pass within
    //    1 s and the episode's record says operator, who and why.
    hping_flood(&rig, FLOOD_A);
    assert_eq!(rig.ping(FLOOD_A, 2), 0, "flooder blocked (TTL 10 m)");
    let b = blocks(&rig);
    assert_eq!(blocked_srcs(&b), vec![FLOOD_A], "{b}");
    assert_eq!(b["blocks"][0]["rule"], 9100001);
    assert_eq!(b["blocks"][0]["kernel"], true, "{b}");
    let t = Instant::now();
    let out = ctl_ok(&rig, &["unblock", FLOOD_A, "--reason", "false positive"]);
    let ctl_took = t.elapsed();
    assert!(out.contains("1 episode(s) ended"), "{out}");
    let passed = first_reply(&rig, FLOOD_A, t).expect("pings pass after ctl unblock");
    eprintln!("ctl unblock answered in {ctl_took:?}; first ping reply {passed:?} after the call");
    assert!(passed < Duration::from_secs(1), "{passed:?}");
    assert_eq!(rig.ping(FLOOD_A, 3), 3);
    assert!(wait_until(Duration::from_secs(3), || block_end(
        &rig, FLOOD_A
    )
    .is_some()));
    let end = block_end(&rig, FLOOD_A).unwrap();
    assert_eq!(end["block"]["end_reason"], "operator", "{end}");
    assert_eq!(end["block"]["ended_by"]["reason"], "false positive");
    assert_eq!(end["block"]["ended_by"]["uid"], 0);
    assert!(blocked_srcs(&blocks(&rig)).is_empty());

    // 2. A quiet source blocked by hand: its next packets dropped by XDP.
    let drops0 = rig.counter("dropped_by_blocklist");
    let out = ctl_ok(
        &rig,
        &["block", QUIET, "--ttl", "10m", "--reason", "scanner"],
    );
    assert!(out.contains("in the kernel blocklist"), "{out}");
    assert_eq!(rig.ping(QUIET, 3), 0);
    assert!(
        rig.counter("dropped_by_blocklist") >= drops0 + 3,
        "dropped at XDP"
    );
    let b = blocks(&rig);
    assert_eq!(b["blocks"][0]["rule"], 9100099);
    assert_eq!(b["blocks"][0]["by"]["reason"], "scanner");

    // 3. A flooder allowlisted while blocked: the episode ends
    //    (allowlisted), it passes and a second flood does not block it.
    hping_flood(&rig, FLOOD_ALLOW);
    assert_eq!(rig.ping(FLOOD_ALLOW, 1), 0);
    let out = ctl_ok(
        &rig,
        &["allow", "add", FLOOD_ALLOW, "--reason", "monitoring box"],
    );
    assert!(out.contains("198.18.1.13/32"), "{out}");
    assert_eq!(rig.ping(FLOOD_ALLOW, 2), 2);
    let alerts_before = eve_lines(&rig)
        .iter()
        .filter(|v| v["event_type"] == "alert" && v["src_ip"] == FLOOD_ALLOW)
        .count();
    hping_flood(&rig, FLOOD_ALLOW);
    assert_eq!(rig.ping(FLOOD_ALLOW, 2), 2, "never re-blocked");
    let alerts_after = eve_lines(&rig)
        .iter()
        .filter(|v| v["event_type"] == "alert" && v["src_ip"] == FLOOD_ALLOW)
        .count();
    assert_eq!(alerts_before, alerts_after);
    assert_eq!(
        block_end(&rig, FLOOD_ALLOW).unwrap()["block"]["end_reason"],
        "allowlisted"
    );
    assert!(!blocked_srcs(&blocks(&rig)).contains(&FLOOD_ALLOW.to_string()));

    // 4. The allowlist from the file, reloaded by SIGHUP: the operator's
    //    change stays, the blocked source is released.
    hping_flood(&rig, FLOOD_HUP);
    assert_eq!(rig.ping(FLOOD_HUP, 1), 0);
    std::fs::write(
        &cfg,
        format!("[block]\nttl = \"10m\"\nallowlist = [\"{FLOOD_HUP}/32\"]\n"),
    )
    .unwrap();
    rig.signal(live, "HUP");
    assert!(rig.wait_for_log(
        "live.log",
        "reloaded: generation 1",
        Duration::from_secs(10)
    ));
    assert!(wait_until(Duration::from_secs(3), || rig
        .ping(FLOOD_HUP, 1)
        == 1));
    let list: Value = serde_json::from_str(&ctl_ok(&rig, &["allow", "list", "--json"])).unwrap();
    assert_eq!(
        list["allowlist"],
        serde_json::json!(["198.18.1.14/32", "198.18.1.13/32"]),
        "{list}"
    );
    assert_eq!(
        block_end(&rig, FLOOD_HUP).unwrap()["block"]["end_reason"],
        "allowlisted"
    );
    // Manual blocks survive the reload.
    assert!(blocked_srcs(&blocks(&rig)).contains(&QUIET.to_string()));

    // 5. `flowgate xdp unblock` while live owns the maps goes through the
    //    socket, and holds.
    hping_flood(&rig, FLOOD_XDP);
    assert_eq!(rig.ping(FLOOD_XDP, 1), 0);
    let o = rig.flowgate(&["xdp", "unblock", FLOOD_XDP]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success() && out.contains("unblocked") && out.contains("control socket"),
        "{out} {}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(rig.ping(FLOOD_XDP, 2), 2, "xdp unblock holds");

    // 6. Who may connect: not another user.
    let sock = rig.ctl_socket();
    let o = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(env!("CARGO_BIN_EXE_flowgate"))
        .args(["ctl", "--socket", sock.to_str().unwrap(), "unblock", QUIET])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("permission denied"),
        "{err}"
    );
    // Even with the file opened up, the server refuses the uid.
    let dir = rig.dir.path().to_path_buf();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&sock, std::fs::Permissions::from_mode(0o666)).unwrap();
    let o = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(env!("CARGO_BIN_EXE_flowgate"))
        .args(["ctl", "--socket", sock.to_str().unwrap(), "unblock", QUIET])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("uid 65534 may not use the control socket"),
        "{err}"
    );
    std::fs::set_permissions(&sock, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    assert!(blocked_srcs(&blocks(&rig)).contains(&QUIET.to_string()));

    // 7. Malformed requests: an error line each, the connection and the
    //    process carry on.
    let mut c = Conn::open(&rig);
    for (bad, needle) in [
        (&b"hello\n"[..], "not valid JSON"),
        (
            b"{\"cmd\":\"block\",\"ip\":\"300.1.1.1\"}\n",
            "not an IP address",
        ),
        (b"{\"cmd\":\"unblock\"}\n", "missing \"target\""),
        (b"{\"cmd\":\"rm -rf\"}\n", "unknown cmd"),
        (b"\xff\xfe\n", "not UTF-8"),
        (b"[]\n", "JSON object"),
        (
            b"{\"cmd\":\"block\",\"ip\":\"198.18.1.13\"}\n",
            "allowlisted",
        ),
        (
            b"{\"cmd\":\"allow\",\"op\":\"del\",\"net\":\"10.0.0.0/8\"}\n",
            "not in the allowlist",
        ),
    ] {
        let v = c.raw(bad);
        assert_eq!(v["ok"], false, "{v}");
        assert!(v["error"].as_str().unwrap().contains(needle), "{v}");
    }
    let v = c.call(serde_json::json!({"cmd": "version"}));
    assert_eq!(v["ok"], true, "{v}");
    let mut long = vec![b'x'; 70_000];
    long.push(b'\n');
    let v = c.raw(&long);
    assert!(v["error"].as_str().unwrap().contains("longer than"), "{v}");

    // 8. 1 000 block/unblock calls: mirror and kernel map stay identical.
    let mut c = Conn::open(&rig);
    let t = Instant::now();
    for i in 0..1000u32 {
        let ip = format!("198.18.{}.{}", 100 + i / 250, 1 + i % 250);
        let v = c.call(serde_json::json!({"cmd":"block","ip":ip,"ttl":"5m","reason":"loop"}));
        assert_eq!(v["ok"], true, "{v}");
        // Every fourth stays blocked.
        if i % 4 != 0 {
            let v = c.call(serde_json::json!({"cmd":"unblock","target":ip}));
            assert_eq!(v["ok"], true, "{v}");
        }
    }
    let took = t.elapsed();
    eprintln!("1000 block + 750 unblock calls in {took:?}");
    std::thread::sleep(Duration::from_millis(300));
    let b = blocks(&rig);
    let srcs = blocked_srcs(&b);
    assert_eq!(srcs.len(), 250 + 1, "250 from the loop and QUIET");
    assert_eq!(
        b["kernel_only"],
        serde_json::json!([]),
        "{}",
        b["kernel_only"]
    );
    assert!(
        b["blocks"]
            .as_array()
            .unwrap()
            .iter()
            .all(|x| x["kernel"] == true),
        "every mirror block is in the kernel"
    );
    assert_eq!(rig.status()["blocklist_active"], 251);
    let v = c.call(serde_json::json!({"cmd":"unblock","target":"198.18.100.0/22"}));
    assert_eq!(v["episodes_ended"], 250, "{v}");
    assert_eq!(rig.status()["blocklist_active"], 1);

    // 9. Metrics: operator actions by verb.
    let m = rig.exec(GATEWAY, &["curl", "-s", "127.0.0.1:19464/metrics"]);
    let m = String::from_utf8_lossy(&m.stdout);
    for needle in [
        "flowgate_operator_actions_total{verb=\"unblock\",result=\"ok\"}",
        "flowgate_operator_actions_total{verb=\"block\",result=\"ok\"}",
        "flowgate_operator_actions_total{verb=\"allow_add\",result=\"ok\"}",
        "flowgate_operator_actions_total{verb=\"invalid\",result=\"error\"}",
    ] {
        assert!(m.contains(needle), "{needle} missing");
    }
    assert!(ctl_ok(&rig, &["stats"]).contains("blocked sources 1"));

    // 10. Restart: the manual block and the allowlist change come back
    //     from the state file.
    rig.signal(live, "TERM");
    assert!(rig
        .wait(live, Duration::from_secs(20))
        .expect("stops")
        .success());
    assert!(!rig.ctl_socket().exists(), "socket removed on exit");
    let _live2 = rig.start_live(&["-c", cfg.to_str().unwrap(), "--no-metrics"], "live2.log");
    let b = blocks(&rig);
    assert_eq!(blocked_srcs(&b), vec![QUIET], "{b}");
    assert_eq!(b["blocks"][0]["by"]["reason"], "scanner");
    assert_eq!(rig.ping(QUIET, 2), 0);
    let list: Value = serde_json::from_str(&ctl_ok(&rig, &["allow", "list", "--json"])).unwrap();
    assert_eq!(list["added"], serde_json::json!(["198.18.1.13/32"]));
    ctl_ok(&rig, &["unblock", QUIET]);
    assert_eq!(rig.ping(QUIET, 2), 2);
}
