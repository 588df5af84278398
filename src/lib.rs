//! flowgate: an inline intrusion prevention system.
//!
//! Data flow (see `../shared/DESIGN.md`):
//! source (`source::pcap`, AF_XDP) → `packet::source_of` picks the shard
//! (`shard`) → `pipeline` batches → `engine::ShardEngine` parses
//! (`packet::parse`), runs `detect`, decides a `Verdict` → `output`.

#![warn(missing_docs)]
#![warn(clippy::undocumented_unsafe_blocks)]

pub mod alert;
pub mod analyze;
pub mod audit;
pub mod bgp;
pub mod cli;
pub mod config;
pub mod control;
pub mod detect;
pub mod engine;
pub mod frag;
pub mod hints;
pub mod http;
pub mod live;
pub mod memo;
pub mod metrics;
pub mod output;
pub mod packet;
pub mod pipeline;
pub mod prefetch;
pub mod replay;
pub mod rules;
pub mod ruleset;
pub mod shard;
pub mod signature;
pub mod source;
pub mod sqli;
pub mod stream;
pub mod table;
pub mod xdp;
pub mod xsk;
