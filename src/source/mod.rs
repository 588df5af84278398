//! Packet sources. The engine does not know which one feeds it.

pub mod pcap;
