//! Behavioural detection under crafted traffic: repeated attempts, timers
//! that end blocks without a packet, and an attacker who knows the shard
//! hash key trying to evict its own block.

mod common;
use common::*;
use flowgate::alert::Event;
use flowgate::engine::{RawFrame, ShardEngine, Verdict};
use flowgate::packet::LinkType;
use flowgate::rules;
use flowgate::shard::{Sharder, SourceKey};
use flowgate_synth::{self as synth, flags, EPOCH, MS, SEC};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

fn frame(idx: u64, ts: u64, data: &[u8]) -> RawFrame<'_> {
    RawFrame {
        idx,
        ts,
        link: LinkType::Ethernet,
        data,
        wire_len: data.len() as u32,
    }
}

fn alerts_of(events: &[String], rule: u32) -> usize {
    let needle = format!("\"signature_id\":{rule},");
    events
        .iter()
        .filter(|e| e.contains("\"event_type\":\"alert\"") && e.contains(&needle))
        .count()
}

#[test]
fn repeated_attempts_to_one_closed_port_fire_once_for_any_shard_count() {
    // The case: 200 SYNs at 50/s to one closed port, each answered
    // by a RST from the server (which belongs to another source's shard).
    let attacker = synth::v4(198, 18, 77, 1);
    let server = synth::v4(198, 19, 0, 23);
    let mut frames = Vec::new();
    for i in 0..200u32 {
        let t = EPOCH + i as u64 * 20 * MS;
        let sport = 40_000 + i as u16;
        frames.push((
            t,
            synth::tcp(attacker, server, sport, 23, flags::SYN, i, b""),
        ));
        frames.push((
            t + MS,
            synth::tcp(server, attacker, 23, sport, flags::RST | flags::ACK, 0, b""),
        ));
    }
    let cfg = config(&[]);
    let one = run_frames(&cfg, 1, &frames);
    assert_eq!(
        alerts_of(&one.events, rules::REPEATED_ATTEMPTS),
        1,
        "{:#?}",
        one.events
    );
    assert_eq!(alerts_of(&one.events, rules::SYN_FLOOD), 0);
    assert_eq!(alerts_of(&one.events, rules::PORT_SCAN), 0);
    let alert = one
        .events
        .iter()
        .find(|e| e.contains("9100040"))
        .expect("alert");
    assert!(
        alert.contains("21 connection attempts to 198.19.0.23:23"),
        "{alert}"
    );
    // The 21st SYN is the first one dropped; the rest of the source's
    // packets are dropped by its block.
    let dropped = one
        .verdicts
        .iter()
        .filter(|(_, v)| *v == Verdict::Drop(rules::REPEATED_ATTEMPTS))
        .count();
    assert_eq!(dropped, 200 - 20);
    for shards in [2, 3] {
        let n = run_frames(&cfg, shards, &frames);
        assert_eq!(n.events, one.events, "{shards} shards");
        assert_eq!(n.verdicts, one.verdicts, "{shards} shards");
    }
}

#[test]
fn a_client_retrying_a_down_server_is_not_flagged() {
    // A real connect(): Linux retransmits the SYN 6 times (1, 2, 4 … s).
    let client = synth::v4(198, 18, 77, 2);
    let server = synth::v4(198, 19, 0, 80);
    let mut frames = Vec::new();
    let mut t = EPOCH;
    for attempt in 0..2u32 {
        let mut gap = SEC;
        for _ in 0..7 {
            frames.push((
                t,
                synth::tcp(
                    client,
                    server,
                    50_000 + attempt as u16,
                    80,
                    flags::SYN,
                    1,
                    b"",
                ),
            ));
            t += gap;
            gap *= 2;
        }
    }
    let out = run_frames(&config(&[]), 1, &frames);
    assert!(out.events.is_empty(), "{:#?}", out.events);
}

#[test]
fn a_block_ends_on_time_without_a_packet_from_its_source() {
    let cfg = config(&[("block.ttl", "\"2s\"")]);
    let mut eng = ShardEngine::new(Arc::new(cfg.clone()), rules(&cfg)).unwrap();
    let a = synth::v4(198, 18, 78, 1);
    let v = synth::v4(198, 19, 0, 1);
    for i in 0..101u64 {
        let f = synth::echo_request(a, v, 1, i as u16, b"x");
        eng.process(&frame(i + 1, EPOCH + i * MS, &f));
    }
    assert_eq!(eng.blocked_sources(), 1);
    let until = EPOCH + 100 * MS + 2 * SEC;
    assert!(eng.poll_timeout() <= until, "a timer is due by the expiry");
    assert!(eng
        .take_events()
        .iter()
        .any(|e| matches!(e, Event::Alert(_))));
    eng.handle_timeout(until - 1);
    assert_eq!(eng.blocked_sources(), 1, "not before its time");
    assert!(eng.take_events().is_empty());
    eng.handle_timeout(until);
    assert_eq!(eng.blocked_sources(), 0);
    let ev = eng.take_events();
    let [Event::BlockEnd(end)] = ev.as_slice() else {
        panic!("one episode end: {ev:?}");
    };
    let eve = end.to_eve().to_string();
    assert!(eve.contains("\"end_reason\":\"expired\""), "{eve}");
    assert!(
        eve.contains("\"timestamp\":\"2026-01-01T00:00:02.100000+0000\""),
        "{eve}"
    );
}

#[test]
fn offline_timers_are_shard_identical() {
    // Blocks that expire while their sources are silent, amid other traffic
    // that keeps packet time moving: every shard count ends them alike.
    let cfg = config(&[("block.ttl", "\"3s\"")]);
    let v = synth::v4(198, 19, 0, 1);
    let mut frames = Vec::new();
    for s in 0..20u8 {
        let a = synth::v4(198, 18, 79, s);
        for i in 0..150u64 {
            let t = EPOCH + s as u64 * 300 * MS + i * MS;
            frames.push((t, synth::echo_request(a, v, 1, i as u16, b"x")));
        }
    }
    let bystander = synth::v4(198, 18, 80, 1);
    for i in 0..200u64 {
        frames.push((
            EPOCH + 8 * SEC + i * 100 * MS,
            synth::udp(bystander, v, 5000, 53, b"q"),
        ));
    }
    frames.sort_by_key(|(t, _)| *t);
    let one = run_frames(&cfg, 1, &frames);
    let ends = one
        .events
        .iter()
        .filter(|e| e.contains("\"end_reason\":\"expired\""))
        .count();
    assert_eq!(ends, 20, "{:#?}", one.events);
    for shards in [2, 4] {
        let n = run_frames(&cfg, shards, &frames);
        assert_eq!(n.events, one.events, "{shards} shards");
        assert_eq!(n.verdicts, one.verdicts, "{shards} shards");
    }
}

#[test]
fn an_attacker_who_knows_the_key_cannot_evict_its_own_block() {
    // Worst case: the attacker knows the hash key (here the public default)
    // and spoofs flag scans from addresses in its own bucket, each of which
    // is blocked at once, to push its block out of a full bucket.
    let cfg = config(&[("block.capacity", "4096")]); // 4 per bucket
    let mut eng = ShardEngine::new(Arc::new(cfg.clone()), rules(&cfg)).unwrap();
    let h = Sharder::DEFAULT;
    let attacker = IpAddr::V4(Ipv4Addr::new(198, 18, 90, 1));
    let bucket = h.bucket_of(SourceKey::from(attacker));
    let same: Vec<IpAddr> = (1..2_000_000u32)
        .map(|i| IpAddr::V4(Ipv4Addr::from(0xc612_0000 + i)))
        .filter(|ip| *ip != attacker && h.bucket_of(SourceKey::from(*ip)) == bucket)
        .take(200)
        .collect();
    let v = synth::v4(198, 19, 0, 1);
    let mut idx = 0;
    let mut t = EPOCH;
    let mut send = |eng: &mut ShardEngine, f: Vec<u8>| {
        idx += 1;
        t += MS;
        eng.process(&frame(idx, t, &f))
    };
    for i in 0..150u16 {
        send(&mut eng, synth::echo_request(attacker, v, 1, i, b"x"));
    }
    assert_eq!(eng.blocked_sources(), 1);
    for (i, ip) in same.iter().enumerate() {
        let f = synth::tcp(*ip, v, 1000, 80 + i as u16, 0, 1, b""); // NULL scan
        assert_eq!(send(&mut eng, f), Verdict::Drop(rules::SCAN_NULL));
    }
    // Still blocked: its next packet is dropped under the flood rule.
    let f = synth::echo_request(attacker, v, 1, 999, b"x");
    assert_eq!(send(&mut eng, f), Verdict::Drop(rules::ICMP_FLOOD));
    let evicted_self = eng.take_events().into_iter().any(|e| match e {
        Event::BlockEnd(b) => b.src == attacker,
        _ => false,
    });
    assert!(!evicted_self, "the attacker's block ended");
    assert!(eng.stats().blocklist_table.evictions >= 190);
}

#[test]
fn a_spoofed_syn_flood_alerts_on_the_victim_for_any_shard_count() {
    // 5000 SYN/s for 4 s to one victim, every SYN from a different random
    // source (each far under every per-source limit), and a real client
    // finishing handshakes with the same server meanwhile.
    let victim = synth::v4(198, 19, 0, 80);
    let client = synth::v4(198, 18, 5, 5);
    let mut frames = Vec::new();
    let mut x: u32 = 0x1234_5678;
    for i in 0..20_000u64 {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        let src = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 | (x & 0x00ff_ffff)));
        let f = synth::tcp(src, victim, (x >> 8) as u16 | 1024, 80, flags::SYN, x, b"");
        frames.push((EPOCH + i * 200_000, f));
    }
    for i in 0..40u64 {
        let t = EPOCH + i * 100 * MS + 50_000;
        let sport = 30_000 + i as u16;
        frames.push((t, synth::tcp(client, victim, sport, 80, flags::SYN, 1, b"")));
        frames.push((
            t + MS,
            synth::tcp(victim, client, 80, sport, flags::SYN | flags::ACK, 9, b""),
        ));
        frames.push((
            t + 2 * MS,
            synth::tcp(client, victim, sport, 80, flags::ACK, 2, b""),
        ));
    }
    frames.sort_by_key(|(t, _)| *t);
    let cfg = config(&[]);
    let one = run_frames(&cfg, 1, &frames);
    let victims: Vec<&String> = one
        .events
        .iter()
        .filter(|e| e.contains("\"signature_id\":9100050,"))
        .collect();
    assert_eq!(
        victims.len(),
        1,
        "one alert per flood episode: {victims:#?}"
    );
    let a = victims[0];
    assert!(
        a.contains("\"dest_ip\":\"198.19.0.80\"") && a.contains("\"src_ip\":\"0.0.0.0\""),
        "{a}"
    );
    // 5000 spoofed SYNs and the client's 10 in the second that crossed.
    assert!(
        a.contains("\"value\":5010,") && a.contains("\"threshold\":2000,"),
        "{a}"
    );
    let v: serde_json::Value = serde_json::from_str(a.split_once(' ').unwrap().1).unwrap();
    let est = v["flowgate"]["distinct_sources"].as_u64().unwrap();
    assert!(
        (2500..10_000).contains(&est),
        "distinct sources estimate {est} for 5001"
    );
    assert!(a.contains("distinct_sources"), "{a}");
    // Nothing else fired: no spoofed source is blocked, and the real
    // client's handshakes all pass.
    assert_eq!(one.events.len(), 1, "{:#?}", one.events);
    assert!(one.verdicts.iter().all(|(_, v)| *v == Verdict::Allow));
    for shards in [2, 3] {
        let n = run_frames(&cfg, shards, &frames);
        assert_eq!(n.events, one.events, "{shards} shards");
        assert_eq!(n.verdicts, one.verdicts, "{shards} shards");
    }
    // A single source at the same rate is the per-source rule's, not this.
    let single: Vec<(u64, Vec<u8>)> = (0..5000u64)
        .map(|i| {
            let f = synth::tcp(
                client,
                victim,
                1024 + (i % 60_000) as u16,
                80,
                flags::SYN,
                1,
                b"",
            );
            (EPOCH + i * 200_000, f)
        })
        .collect();
    let s = run_frames(&cfg, 1, &single);
    assert_eq!(
        alerts_of(&s.events, rules::VICTIM_SYN_FLOOD),
        0,
        "{:#?}",
        s.events
    );
    assert_eq!(alerts_of(&s.events, rules::SYN_FLOOD), 1);
}

#[test]
fn a_slow_spoofed_flood_is_half_open_and_a_busy_server_is_not() {
    // 1000 SYN/s for 4 s from random spoofed sources: under the victim SYN
    // rate (2000/s) but none completes, so the backlog fills.
    let victim = synth::v4(198, 19, 0, 81);
    let mut frames = Vec::new();
    let mut x: u32 = 0x0bad_cafe;
    for i in 0..4000u64 {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        let src = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 | (x & 0x00ff_ffff)));
        let f = synth::tcp(src, victim, (x >> 8) as u16 | 1024, 443, flags::SYN, x, b"");
        frames.push((EPOCH + i * MS, f));
    }
    let cfg = config(&[]);
    let one = run_frames(&cfg, 1, &frames);
    assert_eq!(alerts_of(&one.events, rules::VICTIM_SYN_FLOOD), 0);
    assert_eq!(
        alerts_of(&one.events, rules::VICTIM_HALF_OPEN),
        1,
        "{:#?}",
        one.events
    );
    let a = &one.events[0];
    assert!(
        a.contains("\"dest_ip\":\"198.19.0.81\"")
            && a.contains("\"value\":1000,")
            && a.contains("\"threshold\":500,")
            && a.contains("1000 SYNs, 0 handshakes completed"),
        "{a}"
    );
    for shards in [2, 3] {
        let n = run_frames(&cfg, shards, &frames);
        assert_eq!(n.events, one.events, "{shards} shards");
    }
    // A busy server: 1500 handshakes a second from 300 clients, every one
    // completed. Nothing is half-open, and 1500/s is under the SYN rate.
    let server = synth::v4(198, 19, 0, 82);
    let mut busy = Vec::new();
    for i in 0..4500u64 {
        let c = synth::v4(198, 18, 20 + (i % 300 / 250) as u8, (i % 250) as u8 + 1);
        let t = EPOCH + i * 2 * MS / 3;
        let sport = 20_000 + (i / 300) as u16;
        busy.push((t, synth::tcp(c, server, sport, 443, flags::SYN, 1, b"")));
        busy.push((
            t + 200_000,
            synth::tcp(server, c, 443, sport, flags::SYN | flags::ACK, 7, b""),
        ));
        busy.push((
            t + 400_000,
            synth::tcp(c, server, sport, 443, flags::ACK, 2, b""),
        ));
    }
    busy.sort_by_key(|(t, _)| *t);
    let b = run_frames(&cfg, 2, &busy);
    assert!(b.events.is_empty(), "{:#?}", b.events);
    // The same server with a third of its handshakes never finished: 500
    // open a second is the limit, not over it; 900 is.
    let mut lossy = Vec::new();
    for (i, (t, f)) in busy.iter().enumerate() {
        let handshake = i / 3;
        if i % 3 == 2 && handshake % 5 < 3 {
            continue; // 60 % of final ACKs missing: 900 half-open a second
        }
        lossy.push((*t, f.clone()));
    }
    let l = run_frames(&cfg, 2, &lossy);
    assert_eq!(
        alerts_of(&l.events, rules::VICTIM_HALF_OPEN),
        1,
        "{:#?}",
        l.events
    );
}

#[test]
fn a_distributed_ping_flood_alerts_on_the_victim() {
    let victim = synth::v4(198, 19, 0, 7);
    let mut frames = Vec::new();
    for i in 0..6000u64 {
        // 300 sources, 20 pings each over 3 s: 2000 echo requests/s.
        let src = synth::v4(198, 18, 100 + (i % 300 / 250) as u8, (i % 250) as u8 + 1);
        frames.push((
            EPOCH + i * 500_000,
            synth::echo_request(src, victim, 7, i as u16, b"x"),
        ));
    }
    let out = run_frames(&config(&[]), 2, &frames);
    assert_eq!(
        alerts_of(&out.events, rules::VICTIM_ICMP_FLOOD),
        1,
        "{:#?}",
        out.events
    );
    assert_eq!(alerts_of(&out.events, rules::ICMP_FLOOD), 0);
}
