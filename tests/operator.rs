//! Operator actions on the engine, without sockets: block, unblock and the
//! allowlist driven deterministically with packet time (what `flowgate
//! ctl` does live, between batches).

mod common;
use common::*;
use flowgate::alert::{EndReason, Event, Operator};
use flowgate::engine::{OperatorError, RawFrame, ShardEngine, Verdict};
use flowgate::packet::LinkType;
use flowgate::rules;
use flowgate_synth::{self as synth, EPOCH, MS, SEC};
use std::net::IpAddr;
use std::sync::Arc;

fn ping(e: &mut ShardEngine, idx: u64, ts: u64, src: IpAddr) -> Verdict {
    let data = synth::echo_request(src, synth::v4(198, 19, 0, 1), 7, idx as u16, b"x");
    e.process(&RawFrame {
        idx,
        ts,
        link: LinkType::Ethernet,
        data: &data,
        wire_len: data.len() as u32,
    })
}

/// 150 echo requests 1 ms apart from `t`: blocked after the 100th.
fn flood(e: &mut ShardEngine, idx: &mut u64, t: u64, src: IpAddr) -> usize {
    let mut dropped = 0;
    for i in 0..150 {
        *idx += 1;
        dropped += (ping(e, *idx, t + i * MS, src) != Verdict::Allow) as usize;
    }
    dropped
}

fn ops(reason: &str) -> Arc<Operator> {
    Arc::new(Operator {
        uid: Some(0),
        user: "root".into(),
        reason: reason.into(),
    })
}

#[test]
fn unblock_block_and_allowlist_keep_episodes_consistent() {
    let cfg = config(&[]);
    let mut e = ShardEngine::new(Arc::new(cfg.clone()), rules(&cfg)).unwrap();
    let (a, b, c) = (
        synth::v4(198, 18, 1, 11),
        synth::v4(198, 18, 1, 12),
        synth::v4(198, 18, 1, 13),
    );
    let mut idx = 0;
    let t0 = EPOCH;
    assert_eq!(flood(&mut e, &mut idx, t0, a), 50, "blocked after 100");
    assert_eq!(e.blocks().len(), 1);
    assert_eq!(e.blocks()[0].rule, rules::ICMP_FLOOD);
    e.take_events();

    // Unblock: the episode ends now, says operator and who; the source passes.
    let t1 = t0 + SEC;
    let ended = e.operator_unblock("198.18.1.0/24".parse().unwrap(), t1, ops("false positive"));
    assert_eq!(ended.len(), 1);
    assert_eq!(ended[0].src, a);
    let ev = e.take_events();
    let Some(Event::BlockEnd(end)) = ev.first() else {
        panic!("{ev:?}")
    };
    assert_eq!(end.reason, EndReason::Operator);
    assert_eq!(end.ts, t1);
    let eve = ev[0].to_eve();
    assert_eq!(eve["block"]["end_reason"], "operator");
    assert_eq!(eve["block"]["ended_by"]["reason"], "false positive");
    assert_eq!(eve["block"]["ended_by"]["uid"], 0);
    assert_eq!(ping(&mut e, 1000, t1 + MS, a), Verdict::Allow);
    assert!(e.blocks().is_empty());

    // A manual block of a quiet source: one alert with block_until, its
    // next packet dropped under the operator rule, ended by its TTL.
    let until = t1 + 10 * SEC;
    let info = e.operator_block(b, t1, until, ops("scanner")).unwrap();
    assert_eq!((info.rule, info.until), (rules::OPERATOR_BLOCK, until));
    let ev = e.take_events();
    let Some(Event::Alert(al)) = ev.first() else {
        panic!("{ev:?}")
    };
    assert_eq!((al.src, al.block_until, al.blocked), (b, Some(until), true));
    assert!(al.reason.contains("root (uid 0): scanner"), "{}", al.reason);
    assert_eq!(
        ping(&mut e, 1001, t1 + MS, b),
        Verdict::Drop(rules::OPERATOR_BLOCK)
    );
    // Blocking it again moves the end, same episode, no second alert.
    e.operator_block(b, t1 + SEC, until + SEC, ops("longer"))
        .unwrap();
    assert!(e.take_events().is_empty());
    assert_eq!(e.blocks()[0].until, until + SEC);
    e.handle_timeout(until + SEC);
    let ev = e.take_events();
    assert!(
        matches!(ev.as_slice(), [Event::BlockEnd(x)] if x.reason == EndReason::Expired && x.packets == 1),
        "{ev:?}"
    );
    assert_eq!(
        e.operator_block(b, t1, t1, ops("")),
        Err(OperatorError::NoTime(b))
    );

    // Allowlist a blocked flooder: its episode ends (allowlisted), it
    // passes and is never blocked again; blocking it by hand is refused.
    let t2 = t0 + 20 * SEC;
    assert_eq!(flood(&mut e, &mut idx, t2, c), 50);
    e.take_events();
    let ended = e.set_allowlist(
        vec!["198.18.1.13/32".parse().unwrap()],
        t2 + SEC,
        Some(ops("lab")),
    );
    assert_eq!(ended.len(), 1);
    let ev = e.take_events();
    assert!(
        matches!(ev.as_slice(), [Event::BlockEnd(x)] if x.reason == EndReason::Allowlisted),
        "{ev:?}"
    );
    assert_eq!(
        flood(&mut e, &mut idx, t2 + 2 * SEC, c),
        0,
        "never re-blocked"
    );
    assert!(e.take_events().is_empty());
    assert_eq!(
        e.operator_block(c, t2, t2 + SEC, ops("")),
        Err(OperatorError::Allowlisted(c))
    );

    // A reloaded config with a new allowlist: cached bits re-evaluated at
    // once, open episodes ended at the next tick.
    let t3 = t0 + 40 * SEC;
    assert_eq!(flood(&mut e, &mut idx, t3, a), 50);
    e.take_events();
    let mut c2 = cfg.clone();
    c2.block.allowlist = vec!["198.18.1.11/32".parse().unwrap()];
    e.set_config(Arc::new(c2));
    e.handle_timeout(t3 + SEC);
    let ev = e.take_events();
    assert!(
        matches!(ev.as_slice(), [Event::BlockEnd(x)] if x.reason == EndReason::Allowlisted && x.by.is_none()),
        "{ev:?}"
    );
    assert_eq!(flood(&mut e, &mut idx, t3 + 2 * SEC, a), 0);
    // c is no longer allowlisted (the reload replaced the list): inspected again.
    assert_eq!(flood(&mut e, &mut idx, t3 + 4 * SEC, c), 50);
}
