//! Where a packet's shard is chosen.
//!
//! The shard key is the source address, hashed with ahash under fixed seeds
//! so a source lands on the same state in every run and every process.
//!
//! The hash first picks one of `BUCKETS` fixed buckets; a bucket belongs to
//! exactly one shard (`bucket % shards`). Every bounded table sizes and evicts
//! per bucket, so which entries a full table evicts depends only on the
//! sources in that bucket, never on how many shards there are. That is what
//! keeps `--shards N` byte-identical to `--shards 1` even under table pressure.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Number of fixed buckets; also the upper bound on the shard count.
pub const BUCKETS: usize = 1024;

// Arbitrary fixed seeds: changing them changes which sources share a bucket.
const SEEDS: [u64; 4] = [
    0x6a09_e667_f3bc_c908,
    0xbb67_ae85_84ca_a73b,
    0x3c6e_f372_fe94_f82b,
    0xa54f_f53a_5f1d_36f1,
];

fn hasher() -> ahash::RandomState {
    ahash::RandomState::with_seeds(SEEDS[0], SEEDS[1], SEEDS[2], SEEDS[3])
}

/// A source address as one 128-bit key. IPv4 is stored v4-mapped, so
/// `::ffff:198.18.0.1` and `198.18.0.1` are the same source.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SourceKey(pub u128);

impl SourceKey {
    /// The address back, for alerts and logs: IPv4 for a v4-mapped key
    /// (so an IPv4-mapped IPv6 source is reported as IPv4), else IPv6.
    pub fn ip(self) -> IpAddr {
        let v6 = Ipv6Addr::from(self.0);
        match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        }
    }
}

impl From<IpAddr> for SourceKey {
    fn from(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(v4) => SourceKey(u128::from(v4.to_ipv6_mapped())),
            IpAddr::V6(v6) => SourceKey(u128::from(v6)),
        }
    }
}

impl From<Ipv4Addr> for SourceKey {
    fn from(ip: Ipv4Addr) -> Self {
        SourceKey::from(IpAddr::V4(ip))
    }
}

/// Fixed-seed hash of a key. Also used by tables as their map hasher.
#[inline]
pub fn hash_key(key: SourceKey) -> u64 {
    thread_local! {
        static H: ahash::RandomState = hasher();
    }
    H.with(|h| h.hash_one(key.0))
}

/// The bucket a source belongs to, `0..BUCKETS`.
#[inline]
pub fn bucket_of(key: SourceKey) -> usize {
    // High bits: the low bits also index the table's hash map buckets.
    (hash_key(key) >> 48) as usize % BUCKETS
}

/// The shard owning a bucket.
#[inline]
pub fn shard_of_bucket(bucket: usize, shards: usize) -> usize {
    bucket % shards.max(1)
}

/// The shard owning a source.
#[inline]
pub fn shard_of(ip: IpAddr, shards: usize) -> usize {
    shard_of_bucket(bucket_of(SourceKey::from(ip)), shards)
}

/// A `BuildHasher` for maps keyed by `SourceKey` with the same fixed seeds.
pub fn build_hasher() -> ahash::RandomState {
    hasher()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v4_roundtrip_and_mapping() {
        let ip: IpAddr = "198.18.3.4".parse().unwrap();
        let k = SourceKey::from(ip);
        assert_eq!(k.ip(), ip);
        let mapped: IpAddr = "::ffff:198.18.3.4".parse().unwrap();
        assert_eq!(SourceKey::from(mapped), k);
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        assert_eq!(SourceKey::from(v6).ip(), v6);
    }

    #[test]
    fn stable_and_spread() {
        let ip: IpAddr = "198.18.0.1".parse().unwrap();
        assert_eq!(shard_of(ip, 4), shard_of(ip, 4));
        let mut per = [0usize; 4];
        for i in 0..4096u32 {
            let ip = IpAddr::V4(Ipv4Addr::from(0xc612_0000 + i));
            per[shard_of(ip, 4)] += 1;
        }
        for n in per {
            assert!((800..1250).contains(&n), "unbalanced shards: {per:?}");
        }
    }
}
