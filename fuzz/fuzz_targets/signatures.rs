//! The signature scanner with the built-in rules (`signature::Scanner`) on
//! arbitrary request bytes: framing, normalization, the Hyperscan scans and
//! the memos of bytes seen clean (`memo.rs`).
//!
//! Input: a byte stream of one or more requests, as `scan_requests` reads
//! a connection's client side.
//!
//! Checked beyond "no panic": the first hit (rule, buffer, excerpt) does
//! not depend on what the scanner saw before. Three scanners live for the
//! whole process (AFL's persistent mode runs thousands of inputs in it):
//! one keeps its memos across every input, one has them emptied before
//! each input (it remembers nothing), and one also has the literal
//! prefilter on. All three give the same hit, and the first gives it again
//! for the same input right after, every clean line of it just remembered.

use flowgate::config::Config;
use flowgate::ruleset::Ruleset;
use flowgate::signature::{Hit, Scanner};

fn key(h: Option<Hit>) -> Option<(u32, &'static str, String)> {
    h.map(|h| (h.meta.id, h.buffer.name(), h.excerpt))
}

fn main() {
    let rules = Ruleset::load(&Config::default().signatures).expect("built-in rules");
    let set = rules.signatures.clone().expect("signatures");
    let scanner = || Scanner::new(set.clone()).expect("scratch");
    let (mut remembers, mut forgets, mut pre) = (scanner(), scanner(), scanner());
    pre.set_prefilter(true);
    afl::fuzz!(|data: &[u8]| {
        let first = key(remembers.scan_requests(data));
        forgets.forget_clean();
        let fresh = key(forgets.scan_requests(data));
        assert_eq!(first, fresh, "a memo changed the hit");
        pre.forget_clean();
        assert_eq!(
            key(pre.scan_requests(data)),
            fresh,
            "the prefilter changed the hit"
        );
        let again = key(remembers.scan_requests(data));
        assert_eq!(
            again, fresh,
            "the same input, scanned again, hit differently"
        );
    });
}
