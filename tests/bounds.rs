//! State bounds: a spoofed flood from more sources than any table holds.

mod common;
use common::*;
use flowgate::alert::Event;
use flowgate::config::Config;
use flowgate::engine::{RawFrame, ShardEngine};
use flowgate::packet::LinkType;
use flowgate_synth::{self as synth, flags, EPOCH, MS};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

fn src(i: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(0xc612_0000 | (i & 0x1_ffff)))
}

#[test]
fn source_table_stays_within_capacity_under_spoofed_syn_flood() {
    let cfg: Config = config(&[("tables.sources", "4096")]);
    let mut eng = ShardEngine::new(Arc::new(cfg.clone()), rules(&cfg)).unwrap();
    let dst = synth::v4(198, 19, 0, 80);
    let n = 100_000u32;
    for i in 0..n {
        let f = synth::tcp(
            src(i),
            dst,
            1024 + (i % 50_000) as u16,
            80,
            flags::SYN,
            i,
            b"",
        );
        eng.process(&RawFrame {
            idx: i as u64 + 1,
            ts: EPOCH + i as u64 * 10_000,
            link: LinkType::Ethernet,
            data: &f,
            wire_len: f.len() as u32,
        });
        assert!(eng.tracked_sources() <= 4096);
    }
    let st = eng.stats();
    assert_eq!(st.sources_table.inserts, n as u64);
    assert!(
        st.sources_table.evictions > 90_000,
        "evictions counted: {:?}",
        st.sources_table
    );
    assert_eq!(
        eng.tracked_sources() as u64,
        st.sources_table.inserts - st.sources_table.evictions - st.sources_table.expirations
    );
}

#[test]
fn blocklist_stays_within_capacity_and_reports_evicted_episodes() {
    let cfg: Config = config(&[("block.capacity", "1024")]);
    let mut eng = ShardEngine::new(Arc::new(cfg.clone()), rules(&cfg)).unwrap();
    let dst = synth::v4(198, 19, 0, 80);
    let n = 50_000u32;
    for i in 0..n {
        // A NULL scan probe from a new source each time: every one blocks.
        let f = synth::tcp(src(i), dst, 1, 80, 0, 0, b"");
        eng.process(&RawFrame {
            idx: i as u64 + 1,
            ts: EPOCH + i as u64 * MS,
            link: LinkType::Ethernet,
            data: &f,
            wire_len: f.len() as u32,
        });
        assert!(eng.blocked_sources() <= 1024);
    }
    let events = eng.take_events();
    let alerts = events
        .iter()
        .filter(|e| matches!(e, Event::Alert(_)))
        .count();
    let evicted = events
        .iter()
        .filter(
            |e| matches!(e, Event::BlockEnd(b) if b.reason == flowgate::alert::EndReason::Evicted),
        )
        .count();
    assert_eq!(alerts, n as usize);
    assert_eq!(evicted as u64, eng.stats().blocklist_table.evictions);
    assert_eq!(evicted + eng.blocked_sources(), n as usize);
}

#[test]
fn idle_sources_are_forgotten() {
    let cfg: Config = config(&[
        ("tables.idle_timeout", "\"1s\""),
        ("tables.sources", "1024"),
    ]);
    let mut eng = ShardEngine::new(Arc::new(cfg.clone()), rules(&cfg)).unwrap();
    let dst = synth::v4(198, 19, 0, 80);
    for i in 0..20_000u32 {
        let f = synth::udp(src(i), dst, 5000, 53, b"q");
        // 10 ms apart: a source is idle past 1 s long before its bucket fills.
        eng.process(&RawFrame {
            idx: i as u64 + 1,
            ts: EPOCH + i as u64 * 10 * MS,
            link: LinkType::Ethernet,
            data: &f,
            wire_len: f.len() as u32,
        });
    }
    let st = eng.stats().sources_table;
    assert!(st.expirations > 0, "{st:?}");
    assert!(eng.tracked_sources() <= 1024);
}
