//! A per-process scratch file for targets whose entry point takes a path.

use std::path::PathBuf;

/// `/dev/shm` (tmpfs) when there is one, else the temp dir; the process id
/// keeps parallel fuzzers apart. The file is rewritten for every input.
pub fn path(name: &str) -> PathBuf {
    let dir = if std::path::Path::new("/dev/shm").is_dir() {
        PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    };
    dir.join(format!("flowgate-fuzz-{}-{name}", std::process::id()))
}

/// Writes `data` to `p`, replacing what was there.
pub fn write(p: &std::path::Path, data: &[u8]) {
    std::fs::write(p, data).expect("scratch file for the fuzz input");
}
