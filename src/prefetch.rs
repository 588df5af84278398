//! Cache hints: ask for bytes before they are read, so a load that would
//! wait for memory finds them in cache. A hint never faults, never changes
//! what a program computes, and costs an instruction; on targets without
//! one it does nothing.

/// Hints that the cache line holding `bytes[at]` will be read soon. An `at`
/// past the end asks for nothing.
#[inline(always)]
pub fn read(bytes: &[u8], at: usize) {
    #[cfg(target_arch = "x86_64")]
    if let Some(b) = bytes.get(at) {
        use core::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        // SAFETY: PREFETCHT0 loads nothing into a register and cannot
        // fault (the CPU drops a hint for an unmapped address); the
        // pointer is in bounds anyway. SSE, which it needs, is part of
        // the x86_64 baseline.
        unsafe { _mm_prefetch::<_MM_HINT_T0>((b as *const u8).cast::<i8>()) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (bytes, at);
}
