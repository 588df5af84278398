//! Shared by the profiling examples.

/// The environment variable `k` as a number, or `d` when it is unset or
/// not one.
pub fn env(k: &str, d: u64) -> u64 {
    std::env::var(k)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(d)
}
