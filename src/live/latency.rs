//! Per-packet latency of the live path, kept by each I/O thread without
//! touching the metrics registry on the packet path: a log-linear
//! histogram (HDR-style: 16 linear sub-buckets per power of two, so any
//! reported quantile is within 1/16 = 6.25 % of the true value) of
//! nanoseconds, recorded once per returned batch with the batch's packet
//! count as the weight, and published as quantile gauges every
//! `metrics.interval`.

/// Sub-buckets per power of two (2^SUB_BITS).
const SUB_BITS: u32 = 4;
const SUB: usize = 1 << SUB_BITS;
/// Values up to 2^40 ns (about 18 minutes); larger ones land in the top bucket.
const MAX_BITS: u32 = 40;
const BUCKETS: usize = (MAX_BITS as usize - SUB_BITS as usize + 1) * SUB;

/// Counts of nanosecond values, cumulative since the thread started.
pub struct Histogram {
    counts: Box<[u64; BUCKETS]>,
    total: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: Box::new([0; BUCKETS]),
            total: 0,
        }
    }
}

/// Bucket of `ns`: values below 2^SUB_BITS exactly, above that the top
/// SUB_BITS+1 bits.
fn index(ns: u64) -> usize {
    let ns = ns.min((1u64 << MAX_BITS) - 1);
    if ns < SUB as u64 {
        return ns as usize;
    }
    let msb = 63 - ns.leading_zeros(); // >= SUB_BITS
    let shift = msb - SUB_BITS;
    let mantissa = (ns >> shift) as usize & (SUB - 1);
    (shift as usize + 1) * SUB + mantissa
}

/// Largest value that falls in bucket `i` (quantiles report the upper
/// edge: never optimistic).
fn upper(i: usize) -> u64 {
    if i < SUB {
        return i as u64;
    }
    let shift = (i / SUB - 1) as u32;
    let mantissa = (i % SUB) as u64;
    (((SUB as u64) | mantissa) << shift) + (1u64 << shift) - 1
}

impl Histogram {
    /// Records `n` packets that each took `ns`.
    pub fn record_n(&mut self, ns: u64, n: u64) {
        self.counts[index(ns)] += n;
        self.total += n;
    }

    /// Packets recorded.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// The value (ns) at quantile `q` (0..=1); 0 when empty.
    pub fn quantile(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.total as f64).ceil() as u64).max(1);
        let mut seen = 0u64;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return upper(i);
            }
        }
        upper(BUCKETS - 1)
    }
}

/// The quantiles published, with their label values.
pub const QUANTILES: [(f64, &str); 4] =
    [(0.5, "0.5"), (0.9, "0.9"), (0.99, "0.99"), (0.999, "0.999")];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_monotonic_and_tight() {
        let mut last = 0;
        for v in (0..100_000u64).chain([1 << 20, 123_456_789, 1 << 39]) {
            let i = index(v);
            assert!(upper(i) >= v, "{v} above its bucket {i} ({})", upper(i));
            assert!(i >= last || v < 100_000, "index not monotonic at {v}");
            last = i;
            // Relative error within 1/16 above SUB.
            if v >= SUB as u64 {
                assert!(
                    (upper(i) - v) as f64 <= v as f64 / 16.0 + 1.0,
                    "{v}: {}",
                    upper(i)
                );
            }
        }
    }

    #[test]
    fn quantiles_by_weight() {
        let mut h = Histogram::default();
        h.record_n(1_000, 990);
        h.record_n(100_000, 9);
        h.record_n(10_000_000, 1);
        assert_eq!(h.total(), 1000);
        let p50 = h.quantile(0.5);
        assert!((1_000..1_100).contains(&p50), "{p50}");
        let p99 = h.quantile(0.99);
        assert!((1_000..1_100).contains(&p99), "{p99}");
        let p999 = h.quantile(0.999);
        assert!((100_000..107_000).contains(&p999), "{p999}");
        assert!(h.quantile(1.0) >= 10_000_000);
        assert_eq!(Histogram::default().quantile(0.5), 0);
    }
}
