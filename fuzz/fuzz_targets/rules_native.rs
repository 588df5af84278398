//! `signature::native::parse` (flowgate's TOML rule format).

use flowgate::signature::native;

fn main() {
    afl::fuzz!(|data: &[u8]| {
        let text = String::from_utf8_lossy(data);
        if let Ok(rules) = native::parse(&text, "fuzz.toml") {
            for r in &rules {
                assert!(!r.conds.is_empty(), "rule {} without conditions", r.meta.id);
            }
        }
    });
}
