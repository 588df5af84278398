//! The XDP program on a real three-namespace line, attacker ⇄ gateway ⇄
//! victim, with addresses in 198.18.0.0/15, bounded pings, torn down after.
//! Attached alone, the program is a fail-open wire (devmap to the peer
//! port) whose kernel blocklist `flowgate xdp block` fills. Needs root;
//! skipped (with a message) otherwise.

mod rig;
use rig::{sh, Rig};

fn attach(rig: &Rig) {
    let o = rig.flowgate(&["xdp", "attach", "--ingress", "fgGA", "--egress", "fgGB"]);
    assert!(
        o.status.success(),
        "attach: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn xdp_wire_forwards_and_kernel_blocklist_drops() {
    let Some(rig) = Rig::new("w", &[1, 9]) else {
        return;
    };
    assert_eq!(
        rig.ping("198.18.1.1", 1),
        0,
        "no path before flowgate is attached"
    );

    attach(&rig);
    // attach exited: the pinned program keeps the wire up (fail-open).
    assert_eq!(rig.ping("198.18.1.1", 3), 3, "wire forwards both ways");

    let o = rig.flowgate(&["xdp", "block", "198.18.1.1", "--ttl", "60s"]);
    assert!(o.status.success());
    assert_eq!(
        rig.ping("198.18.1.1", 3),
        0,
        "blocked source dropped in the kernel"
    );
    assert_eq!(
        rig.ping("198.18.1.9", 2),
        2,
        "another source on the same host still passes"
    );
    let st = rig.status();
    assert!(
        st["counters"]["dropped_by_blocklist"].as_u64().unwrap() >= 3,
        "{st}"
    );
    assert!(
        st["counters"]["forwarded_by_fallback"].as_u64().unwrap() > 0,
        "{st}"
    );
    assert_eq!(st["blocklist_active"], 1);

    assert!(rig
        .flowgate(&["xdp", "unblock", "198.18.1.1"])
        .status
        .success());
    assert_eq!(rig.ping("198.18.1.1", 2), 2);
    // Unblocking what is not blocked says so (not an error).
    let o = rig.flowgate(&["xdp", "unblock", "198.18.1.1"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("was not blocked"),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );

    // A short TTL expires in the kernel by itself.
    assert!(rig
        .flowgate(&["xdp", "block", "198.18.1.1", "--ttl", "1s"])
        .status
        .success());
    assert_eq!(rig.ping("198.18.1.1", 1), 0);
    std::thread::sleep(std::time::Duration::from_millis(1200));
    assert_eq!(
        rig.ping("198.18.1.1", 2),
        2,
        "expired block lifted by the kernel"
    );

    let o = rig.flowgate(&["xdp", "detach"]);
    assert!(o.status.success());
    assert_eq!(rig.ping("198.18.1.1", 1), 0, "detached: no path again");
    let link = sh(&["ip", "-n", &rig.ns[1], "link", "show", "fgGA"]);
    assert!(
        !String::from_utf8_lossy(&link.stdout).contains("xdp"),
        "program removed"
    );
}

#[test]
fn stale_attachment_is_replaced_and_errors_are_clear() {
    let Some(rig) = Rig::new("s", &[1, 9]) else {
        return;
    };
    attach(&rig);
    // As after a crash: pins exist; attaching again replaces them cleanly.
    attach(&rig);
    assert_eq!(rig.ping("198.18.1.1", 2), 2);
    assert_eq!(rig.status()["ports"], serde_json::json!(["fgGA", "fgGB"]));

    let o = rig.flowgate(&["xdp", "attach", "--ingress", "nosuch0", "--egress", "fgGB"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("nosuch0"), "{err}");

    assert!(rig.flowgate(&["xdp", "detach"]).status.success());
    let o = rig.flowgate(&["xdp", "status"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("flowgate xdp attach"),
        "{err}"
    );
}
