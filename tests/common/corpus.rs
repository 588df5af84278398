//! The labelled HTTP request corpus in `tests/corpus/` (see its README):
//! one JSON request per line. Shared by the corpus tests and the
//! signature benchmarks (`benches/engine.rs` includes this file).

use serde::Deserialize;
use std::path::Path;

/// One request of the corpus.
#[derive(Deserialize)]
pub struct Req {
    pub id: String,
    pub family: String,
    pub method: String,
    pub uri: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Req {
    /// The request as it goes on the wire (HTTP/1.1, CRLF).
    pub fn bytes(&self) -> Vec<u8> {
        let mut s = format!("{} {} HTTP/1.1\r\n", self.method, self.uri);
        for (k, v) in &self.headers {
            s.push_str(&format!("{k}: {v}\r\n"));
        }
        s.push_str("\r\n");
        s.push_str(&self.body);
        s.into_bytes()
    }
}

/// Every request of `tests/corpus/NAME` under the repository `root`.
pub fn load(root: &Path, name: &str) -> Vec<Req> {
    let path = root.join("tests/corpus").join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("corpus file {}: {e}", path.display()));
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{name}: {e}: {l}")))
        .collect()
}
