//! A real Prometheus server scrapes `flowgate live` while `flowgate replay`
//! drives the fixture attack through the gateway; then every PromQL
//! expression of the Grafana dashboard must return data, the per-rule
//! alert counters must equal the alert log, and `flowgate alerts` must
//! answer from the SQLite audit log with the same alerts. Needs root and
//! the Debian `prometheus` package; skipped (with a message) otherwise.

mod rig;

use rig::{Rig, ATTACKER, ATTACKER_IF, GATEWAY};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

const PROM: &str = "127.0.0.1:9090";
const METRICS: &str = "127.0.0.1:9464";

fn query(rig: &Rig, expr: &str) -> serde_json::Value {
    let o = rig.exec(
        GATEWAY,
        &[
            "curl",
            "-s",
            "-m",
            "5",
            "-G",
            &format!("http://{PROM}/api/v1/query"),
            "--data-urlencode",
            &format!("query={expr}"),
        ],
    );
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("{expr}: {e}: {}", String::from_utf8_lossy(&o.stdout)))
}

fn result(rig: &Rig, expr: &str) -> Vec<serde_json::Value> {
    let v = query(rig, expr);
    assert_eq!(v["status"], "success", "{expr}: {v}");
    v["data"]["result"].as_array().cloned().unwrap_or_default()
}

/// `{label value: sample value}` of an instant vector.
fn by_label(rig: &Rig, expr: &str, label: &str) -> BTreeMap<String, f64> {
    result(rig, expr)
        .iter()
        .map(|r| {
            (
                r["metric"][label].as_str().unwrap_or("").to_string(),
                r["value"][1].as_str().unwrap().parse::<f64>().unwrap(),
            )
        })
        .collect()
}

fn dashboard_exprs() -> Vec<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/grafana/flowgate.json");
    let d: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut out = Vec::new();
    for p in d["panels"].as_array().unwrap() {
        for t in p["targets"].as_array().into_iter().flatten() {
            if let Some(e) = t["expr"].as_str() {
                // BGP is off on this rig (no gobgpd): its panels have no
                // series here; tests/bgp.rs checks those metrics.
                if e.contains("flowgate_bgp_") {
                    continue;
                }
                out.push(e.replace("$__rate_interval", "1m"));
            }
        }
    }
    out
}

fn alerts_per_rule(lines: &str) -> BTreeMap<String, f64> {
    let mut m = BTreeMap::new();
    for l in lines.lines() {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        if v["event_type"] == "alert" {
            *m.entry(v["alert"]["signature_id"].to_string())
                .or_insert(0.0) += 1.0;
        }
    }
    m
}

#[test]
fn prometheus_scrapes_every_dashboard_query_and_counts_match_the_alert_log() {
    if !rig::is_root() {
        eprintln!("skipping: needs root");
        return;
    }
    if std::process::Command::new("prometheus")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("skipping: no prometheus binary (apt install prometheus)");
        return;
    }
    let Some(mut rig) = Rig::new("p", &[1]) else {
        return;
    };
    let prom_cfg = rig.path("prometheus.yml");
    std::fs::write(
        &prom_cfg,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
             scrape_configs:\n  - job_name: flowgate\n    static_configs:\n      - targets: ['{METRICS}']\n"
        ),
    )
    .unwrap();
    let tsdb = rig.path("tsdb");
    let db = rig.path("audit.sqlite");
    let live = rig.start_live(
        &[
            "--metrics-listen",
            METRICS,
            "--sqlite",
            db.to_str().unwrap(),
        ],
        "live.log",
    );
    rig.spawn(
        GATEWAY,
        &[
            "prometheus",
            &format!("--config.file={}", prom_cfg.display()),
            &format!("--storage.tsdb.path={}", tsdb.display()),
            &format!("--web.listen-address={PROM}"),
        ],
        "prometheus.log",
    );
    let t = Instant::now();
    loop {
        let o = rig.exec(GATEWAY, &["curl", "-sf", &format!("http://{PROM}/-/ready")]);
        if o.status.success() {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "{}",
            rig.log("prometheus.log")
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // The attack fixture, through the gateway at four times recorded speed.
    let pcap = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/mixed.pcap");
    let o = rig.exec(
        ATTACKER,
        &[
            env!("CARGO_BIN_EXE_flowgate"),
            "replay",
            pcap.to_str().unwrap(),
            "--iface",
            ATTACKER_IF,
            "--speed",
            "4",
            "--summary",
            "json",
        ],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let rep: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(rep["packets"], 5871, "{rep}");
    assert_eq!(rig.ping("198.18.1.1", 2), 2);
    // An operator request, for the operator-actions panel.
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_flowgate"))
        .arg("ctl")
        .arg("--socket")
        .arg(rig.ctl_socket())
        .arg("stats")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    // Until shards have published and Prometheus scraped the last counts.
    let log_alerts = || {
        alerts_per_rule(&std::fs::read_to_string(rig.path("live-alerts.jsonl")).unwrap_or_default())
    };
    let t = Instant::now();
    while by_label(&rig, "sum by (rule) (flowgate_alerts_total)", "rule") != log_alerts()
        && t.elapsed() < Duration::from_secs(30)
    {
        std::thread::sleep(Duration::from_millis(500));
    }
    // Two more scrapes so every rate() has two samples after the traffic.
    std::thread::sleep(Duration::from_secs(2));

    let exprs = dashboard_exprs();
    assert!(exprs.len() >= 15, "{exprs:?}");
    for e in &exprs {
        assert!(
            !result(&rig, e).is_empty(),
            "no data for dashboard query {e}"
        );
    }

    // Drops by rule match the alert log.
    let log = std::fs::read_to_string(rig.path("live-alerts.jsonl")).unwrap();
    let from_log = alerts_per_rule(&log);
    assert!(
        from_log.len() >= 8,
        "the fixture fires most rules: {from_log:?}"
    );
    let from_prom = by_label(&rig, "sum by (rule) (flowgate_alerts_total)", "rule");
    assert_eq!(
        from_prom, from_log,
        "alerts by rule: Prometheus vs alert log"
    );
    let dropped = by_label(
        &rig,
        "sum by (rule) (flowgate_packets_dropped_total)",
        "rule",
    );
    for rule in from_log.keys() {
        assert!(
            dropped.get(rule).copied().unwrap_or(0.0) >= 1.0,
            "{rule}: {dropped:?}"
        );
    }
    // Every replayed frame reached userspace or was dropped by the kernel
    // blocklist first.
    let seen = by_label(
        &rig,
        "sum(flowgate_rx_packets_total{interface=\"fgGA\"}) + \
         sum(flowgate_xdp_packets_total{action=\"dropped_by_blocklist\"})",
        "",
    );
    assert!(seen[""] >= 5871.0, "{seen:?}");

    rig.signal(live, "TERM");
    assert!(rig
        .wait(live, Duration::from_secs(20))
        .expect("stops")
        .success());

    // The audit log holds the same alerts as the JSONL log.
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_flowgate"))
        .args(["alerts", "--db", db.to_str().unwrap(), "--json"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let key = |v: &serde_json::Value| {
        (
            v["timestamp"].as_str().unwrap_or("").to_string(),
            v["src_ip"].as_str().unwrap_or("").to_string(),
            v["alert"]["signature_id"].as_u64().unwrap_or(0),
        )
    };
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&o.stdout).unwrap();
    let mut from_db: Vec<_> = rows.iter().map(key).collect();
    let log = std::fs::read_to_string(rig.path("live-alerts.jsonl")).unwrap();
    let mut from_jsonl: Vec<_> = log
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["event_type"] == "alert")
        .map(|v| key(&v))
        .collect();
    from_db.sort();
    from_jsonl.sort();
    assert_eq!(from_db, from_jsonl);
}
