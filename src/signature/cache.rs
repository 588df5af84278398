//! Compiled Hyperscan databases kept on disk between runs.
//!
//! Compiling the built-in rules costs about 2.7 G instructions (0.5–0.7 s
//! of CPU here), more than analysing a million packets; every `analyze`,
//! `replay`, `rules check` and `live` start paid it. A database is stored
//! under a key that covers everything its bytes depend on: each pattern
//! (expression, flags, id, extensions), the mode, the Hyperscan version and
//! the CPU (model and feature flags: Hyperscan builds for the host it runs
//! on). A changed rule is a different key, never a stale hit.
//!
//! Where: `$FLOWGATE_CACHE_DIR`, else systemd's `$CACHE_DIRECTORY`, else
//! `$XDG_CACHE_HOME/flowgate`, else `~/.cache/flowgate`. An empty
//! `FLOWGATE_CACHE_DIR` turns the cache off. The directory is created 0700
//! and a file is used only if it belongs to this user and nobody else can
//! write it (the bytes decide what is detected). Any failure to read or
//! write is logged at debug level and costs a compile, nothing else.

use hyperscan::{Database, Mode, Pattern, SerializedDatabase};
use siphasher::sip128::{Hasher128, SipHasher13};
use std::hash::Hasher;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::PathBuf;

/// The cache directory, or `None` when turned off or no home is known.
fn dir() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("FLOWGATE_CACHE_DIR") {
        return (!d.is_empty()).then(|| PathBuf::from(d));
    }
    if let Some(d) = std::env::var_os("CACHE_DIRECTORY") {
        // systemd may list several, colon-separated: the first is ours.
        let first = d.to_string_lossy().split(':').next().map(PathBuf::from);
        return first.filter(|p| !p.as_os_str().is_empty());
    }
    if let Some(d) = std::env::var_os("XDG_CACHE_HOME").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(d).join("flowgate"));
    }
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(|h| PathBuf::from(h).join(".cache").join("flowgate"))
}

/// The CPU Hyperscan compiles for: model name and feature flags. Read
/// once per process (every database's key needs it).
fn cpu() -> &'static str {
    static CPU: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    CPU.get_or_init(|| {
        let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let field = |name: &str| {
            info.lines()
                .find(|l| l.starts_with(name))
                .unwrap_or_default()
                .to_string()
        };
        format!("{}\n{}", field("model name"), field("flags"))
    })
}

/// The file name for a database of `pats` in mode `M`.
fn key<M: Mode>(pats: &[Pattern]) -> String {
    let mut h = SipHasher13::new_with_keys(0x666c_6f77_6761_7465, 0x6873_2d63_6163_6865);
    h.write(hyperscan::version_str().to_bytes());
    h.write(M::NAME.as_bytes());
    h.write(cpu().as_bytes());
    for p in pats {
        let d = format!("{p:?}");
        h.write_usize(d.len());
        h.write(d.as_bytes());
    }
    format!("{:032x}.{}.hsdb", h.finish128().as_u128(), M::NAME)
}

/// A database for `pats`: from the cache when it holds one, else built by
/// `build` and stored.
pub fn load_or_build<M: Mode>(
    pats: &[Pattern],
    build: impl FnOnce() -> Result<Database<M>, hyperscan::Error>,
) -> Result<Database<M>, hyperscan::Error> {
    let Some(dir) = dir() else {
        return build();
    };
    let path = dir.join(key::<M>(pats));
    if let Some(db) = load::<M>(&path) {
        return Ok(db);
    }
    let db = build()?;
    if let Err(e) = store(&dir, &path, &db) {
        tracing::debug!("hyperscan cache {}: not written: {e}", path.display());
    }
    Ok(db)
}

fn load<M: Mode>(path: &std::path::Path) -> Option<Database<M>> {
    let meta = std::fs::metadata(path).ok()?;
    // Only our own file that nobody else can change.
    if meta.uid() != nix::unistd::geteuid().as_raw() || meta.mode() & 0o022 != 0 {
        tracing::debug!("hyperscan cache {}: not ours, ignored", path.display());
        return None;
    }
    let bytes = std::fs::read(path).ok()?;
    match bytes.deserialize::<M>() {
        Ok(db) => Some(db),
        Err(e) => {
            // Corrupt or from another build: drop it, compile afresh.
            tracing::debug!("hyperscan cache {}: {e}; recompiling", path.display());
            let _ = std::fs::remove_file(path);
            None
        }
    }
}

fn store<M: Mode>(
    dir: &std::path::Path,
    path: &std::path::Path,
    db: &Database<M>,
) -> std::io::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let bytes = db.serialize().map_err(std::io::Error::other)?;
    // Written aside and renamed: a concurrent run reads a whole file or
    // none.
    let tmp = dir.join(format!(".{}.{}", std::process::id(), unique()));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)?;
    let r = f
        .write_all(&bytes)
        .and_then(|_| std::fs::rename(&tmp, path));
    if r.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    r
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyperscan::{BlockDatabase, Builder, Matching, Patterns};

    #[test]
    fn a_cached_database_matches_like_a_fresh_one_and_a_changed_rule_misses() {
        let dir = tempfile::tempdir().unwrap();
        std::env::set_var("FLOWGATE_CACHE_DIR", dir.path());
        let pats = vec![Pattern::new("union\\s+select").unwrap()];
        let build = |p: &[Pattern]| Patterns(p.to_vec()).build::<hyperscan::BlockMode>();
        let mut built = 0;
        let mut get = |p: &[Pattern]| -> BlockDatabase {
            load_or_build(p, || {
                built += 1;
                build(p)
            })
            .unwrap()
        };
        let a = get(&pats);
        let b = get(&pats);
        let other = vec![Pattern::new("union\\s+all").unwrap()];
        let _c = get(&other);
        assert_eq!(built, 2, "the second load came from the cache");
        for db in [&a, &b] {
            let s = db.alloc_scratch().unwrap();
            let mut hits = 0;
            db.scan("1 UNION  select 2", &s, |_, _, _, _| {
                hits += 1;
                Matching::Continue
            })
            .unwrap();
            db.scan("1 union  select 2", &s, |_, _, _, _| {
                hits += 1;
                Matching::Continue
            })
            .unwrap();
            assert_eq!(hits, 1);
        }
        // A corrupt file is dropped and rebuilt.
        let f = std::fs::read_dir(dir.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .find(|e| e.file_name().to_string_lossy().ends_with(".hsdb"))
            .unwrap()
            .path();
        std::fs::write(&f, b"not a database").unwrap();
        let mut n = 0;
        for p in [&pats, &other] {
            load_or_build(p, || {
                n += 1;
                build(p)
            })
            .unwrap();
        }
        assert_eq!(n, 1, "only the corrupted one was rebuilt");
        std::env::remove_var("FLOWGATE_CACHE_DIR");
    }
}
