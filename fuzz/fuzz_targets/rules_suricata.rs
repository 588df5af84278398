//! `signature::suricata::parse` (the mapped subset of Suricata rules).

use flowgate::signature::suricata;

fn main() {
    afl::fuzz!(|data: &[u8]| {
        let text = String::from_utf8_lossy(data);
        let (ok, _rejected) = suricata::parse(&text, "fuzz.rules");
        for r in &ok {
            assert!(
                r.detect.as_ref().is_some_and(|d| !d.sections.is_empty()),
                "rule {} without conditions",
                r.meta.id
            );
        }
    });
}
