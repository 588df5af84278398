//! Where a packet's shard is chosen.
//!
//! The shard key is the source address, hashed with SipHash-1-3 under a
//! per-deployment secret key ([`HashKey`]). SipHash is portable (the same
//! bucket on every CPU, unlike ahash, whose output follows CPU features) and
//! keyed: without the key an attacker cannot pick addresses that share a
//! bucket with its own and evict its state. Offline analysis given a live
//! box's key (`analyze --hash-key`) reproduces that box's decisions.
//!
//! The hash first picks one of `BUCKETS` fixed buckets; a bucket belongs to
//! exactly one shard (`bucket % shards`). Every bounded table sizes and evicts
//! per bucket, so which entries a full table evicts depends only on the
//! sources in that bucket, never on how many shards there are. That is what
//! keeps `--shards N` byte-identical to `--shards 1` even under table pressure.

use siphasher::sip::SipHasher13;
use std::hash::{Hash, Hasher};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Number of fixed buckets; also the upper bound on the shard count.
pub const BUCKETS: usize = 1024;

/// The 128-bit secret that keys the shard hash. Written as 32 hex digits
/// (`engine.hash_key`, `analyze --hash-key`, the key file `live` creates).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct HashKey(pub [u8; 16]);

impl HashKey {
    /// The key used when none is configured. It is public (it is in this
    /// source), so it is fine for offline analysis and tests and wrong for a
    /// box facing attackers: `flowgate live` generates a secret one instead.
    pub const DEFAULT: HashKey = HashKey(*b"flowgate-shard-0");

    /// A fresh random key from the kernel's CSPRNG.
    pub fn generate() -> std::io::Result<HashKey> {
        use std::io::Read;
        let mut k = [0u8; 16];
        std::fs::File::open("/dev/urandom")?.read_exact(&mut k)?;
        Ok(HashKey(k))
    }

    /// Parses 32 hex digits (surrounding whitespace allowed).
    pub fn parse(s: &str) -> Option<HashKey> {
        let s = s.trim();
        if s.len() != 32 || !s.is_ascii() {
            return None;
        }
        let mut k = [0u8; 16];
        for (i, b) in k.iter_mut().enumerate() {
            *b = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
        }
        Some(HashKey(k))
    }

    /// 32 lowercase hex digits.
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl std::fmt::Debug for HashKey {
    // Never print a secret into a log by accident.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if *self == HashKey::DEFAULT {
            "HashKey(default)"
        } else {
            "HashKey(secret)"
        })
    }
}

/// The keyed hash behind shard choice, table buckets and the detectors'
/// endpoint hashes. Cheap to copy; every thread holds its own.
#[derive(Clone, Copy, Debug)]
pub struct Sharder {
    k0: u64,
    k1: u64,
}

impl Default for Sharder {
    fn default() -> Self {
        Sharder::DEFAULT
    }
}

impl Sharder {
    /// The hash under [`HashKey::DEFAULT`].
    pub const DEFAULT: Sharder = Sharder::new(HashKey::DEFAULT);

    /// A hasher for `key`.
    pub const fn new(key: HashKey) -> Sharder {
        let (mut k0, mut k1, mut i) = (0u64, 0u64, 0);
        while i < 8 {
            k0 = k0 << 8 | key.0[i] as u64;
            k1 = k1 << 8 | key.0[i + 8] as u64;
            i += 1;
        }
        Sharder { k0, k1 }
    }

    /// Keyed, portable hash of a source.
    #[inline]
    pub fn hash_key(&self, key: SourceKey) -> u64 {
        let mut h = SipHasher13::new_with_keys(self.k0, self.k1);
        // Explicit byte order: the same bucket on big- and little-endian CPUs.
        h.write(&key.0.to_le_bytes());
        h.finish()
    }

    /// Keyed, portable hash of anything (detectors' endpoint sets).
    #[inline]
    pub fn hash_one(&self, v: impl Hash) -> u64 {
        // A different key from the shard hash: knowing which bucket a source
        // is in tells nothing about these.
        let mut h = SipHasher13::new_with_keys(self.k1, self.k0 ^ 0x9e37_79b9_7f4a_7c15);
        v.hash(&mut h);
        h.finish()
    }

    /// Keyed hash for identities that stay inside this process and are only
    /// ever compared for equality (the detectors' endpoint sets). aHash,
    /// seeded from the deployment key under yet another derivation: a
    /// fraction of SipHash's cost, secret like it, but not portable across
    /// builds, which such uses do not need (a 64-bit collision is their
    /// only way to affect a decision).
    #[inline]
    pub fn hash_local(&self, v: impl Hash) -> u64 {
        let seeds = (
            self.k1.rotate_left(17),
            !self.k0,
            self.k0 ^ 0x9e37_79b9_7f4a_7c15,
            !self.k1,
        );
        ahash::RandomState::with_seeds(seeds.0, seeds.1, seeds.2, seeds.3).hash_one(v)
    }

    /// The bucket a source belongs to, `0..BUCKETS`.
    #[inline]
    pub fn bucket_of(&self, key: SourceKey) -> usize {
        (self.hash_key(key) >> 48) as usize % BUCKETS
    }

    /// The shard owning a source.
    #[inline]
    pub fn shard_of(&self, ip: IpAddr, shards: usize) -> usize {
        shard_of_bucket(self.bucket_of(SourceKey::from(ip)), shards)
    }

    /// A `BuildHasher` for the tables' hash maps, seeded from the key (map
    /// layout never affects results; the seed keeps probe sequences secret).
    pub fn map_hasher(&self) -> ahash::RandomState {
        ahash::RandomState::with_seeds(self.k0, self.k1, !self.k0, self.k1.rotate_left(32))
    }
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

/// The shard owning a bucket.
#[inline]
pub fn shard_of_bucket(bucket: usize, shards: usize) -> usize {
    bucket % shards.max(1)
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
        let h = Sharder::default();
        let ip: IpAddr = "198.18.0.1".parse().unwrap();
        assert_eq!(h.shard_of(ip, 4), h.shard_of(ip, 4));
        let mut per = [0usize; 4];
        for i in 0..4096u32 {
            let ip = IpAddr::V4(Ipv4Addr::from(0xc612_0000 + i));
            per[h.shard_of(ip, 4)] += 1;
        }
        for n in per {
            assert!((800..1250).contains(&n), "unbalanced shards: {per:?}");
        }
    }

    #[test]
    fn portable_known_answers() {
        // Pinned values: the same on every CPU and build (SipHash-1-3 is
        // defined bit for bit). If these change, offline results under table
        // pressure stop matching earlier runs and live boxes.
        let k = SourceKey::from("198.18.0.1".parse::<IpAddr>().unwrap());
        let d = Sharder::default();
        assert_eq!(d.hash_key(k), 0x8599_e25a_39ad_6020);
        assert_eq!(d.bucket_of(k), 409);
        let other = Sharder::new(HashKey([7; 16]));
        assert_ne!(d.hash_key(k), other.hash_key(k));
    }

    #[test]
    fn local_hash_is_keyed_and_apart_from_the_portable_one() {
        let v = (0xffff_c612_0001u128, 80u16, 0u16);
        let d = Sharder::default();
        let other = Sharder::new(HashKey([7; 16]));
        assert_eq!(d.hash_local(v), d.hash_local(v));
        assert_ne!(d.hash_local(v), other.hash_local(v), "not keyed");
        assert_ne!(d.hash_local(v), d.hash_one(v));
        assert_ne!(d.hash_local(v), d.hash_local((v.0, 81u16, 0u16)));
    }

    #[test]
    fn key_hex_roundtrip() {
        let k = HashKey([0xab; 16]);
        assert_eq!(HashKey::parse(&k.to_hex()), Some(k));
        assert_eq!(
            HashKey::parse(" 000102030405060708090a0b0c0d0e0f\n").map(|k| k.0[15]),
            Some(15)
        );
        assert_eq!(HashKey::parse("xyz"), None);
        assert_eq!(HashKey::parse(&"g".repeat(32)), None);
        assert_eq!(
            format!("{:?}", HashKey::generate().unwrap()),
            "HashKey(secret)"
        );
    }
}
