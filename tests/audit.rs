//! SQLite audit log: same episodes as the JSONL log; a locked database is
//! reported and counted and never stops the analysis.

mod common;
use common::*;

fn json_lines(v: &[String]) -> Vec<serde_json::Value> {
    v.iter().map(|l| serde_json::from_str(l).unwrap()).collect()
}

#[test]
fn alerts_command_answers_with_the_jsonl_episodes() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("audit.db");
    let (code, stdout, err, alerts, _) = analyze_cli(
        &fixture("mixed.pcap"),
        &["--sqlite", db.to_str().unwrap(), "--shards", "2"],
    );
    assert_eq!(code, 0, "{err}");
    assert!(stdout.contains("events written, 0 dropped"), "{stdout}");
    let mut from_log: Vec<serde_json::Value> = json_lines(&alerts)
        .into_iter()
        .filter(|v| v["event_type"] == "alert")
        .collect();
    let out = flowgate(&["alerts", "--db", db.to_str().unwrap(), "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut from_db: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    let key = |v: &serde_json::Value| {
        (
            v["pcap_cnt"].as_u64(),
            v["src_ip"].as_str().map(String::from),
        )
    };
    from_log.sort_by_key(key);
    from_db.sort_by_key(key);
    assert_eq!(from_db, from_log, "SQLite alerts equal the JSONL alerts");

    // Filters and top offenders.
    let out = flowgate(&[
        "alerts",
        "--db",
        db.to_str().unwrap(),
        "--json",
        "--src",
        "198.18.66.2",
    ]);
    let v: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v.len(), 1);
    assert_eq!(v[0]["alert"]["signature_id"], 9100010);
    let out = flowgate(&[
        "alerts",
        "--db",
        db.to_str().unwrap(),
        "--json",
        "--top",
        "1",
    ]);
    let v: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v[0]["src_ip"], "198.18.66.2");
    let episodes = json_lines(&alerts)
        .iter()
        .filter(|v| v["event_type"] == "flowgate_block")
        .count();
    let conn = rusqlite::Connection::open(&db).unwrap();
    let n: i64 = conn
        .query_row("SELECT COUNT(*) FROM episodes", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n as usize, episodes);
}

#[test]
fn locked_database_is_counted_not_fatal() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("audit.db");
    flowgate::audit::open(&db).unwrap();
    let lock = rusqlite::Connection::open(&db).unwrap();
    lock.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let (code, stdout, err, alerts, _) =
        analyze_cli(&fixture("mixed.pcap"), &["--sqlite", db.to_str().unwrap()]);
    lock.execute_batch("ROLLBACK").unwrap();
    assert_eq!(code, 0, "{err}");
    assert!(!alerts.is_empty(), "the JSONL log is complete");
    let line = stdout.lines().find(|l| l.contains("sqlite audit")).unwrap();
    assert!(!line.contains(" 0 failed"), "{line}");
    assert!(err.contains("audit log"), "the failure is reported: {err}");
}
