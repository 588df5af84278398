//! The XDP program (`bpf/flowgate_xdp.c`) from Rust: load it, attach it to
//! both ports of an inline pair, pin program links and maps so the wire
//! survives the process, and manage the kernel blocklist.
//!
//! With no AF_XDP socket bound, the program forwards every frame to the
//! peer port through a devmap: attached alone, it is a fail-open wire whose
//! blocklist the kernel enforces at the driver. `flowgate live` binds the
//! sockets on top.

use crate::config::XdpAttachMode;
use aya::maps::{HashMap as BpfHashMap, LpmTrie, Map, MapData, PerCpuArray};
use aya::programs::links::{FdLink, PinnedLink};
use aya::programs::{Xdp, XdpMode};
use aya::{Ebpf, EbpfLoader};
use ipnet::IpNet;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The compiled program, built by build.rs with clang.
pub static OBJECT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/flowgate_xdp.o"));

/// The maps pinned under the pin dir (beside one `link_IFACE` per port).
pub const MAPS: [&str; 11] = [
    "blocklist_v4",
    "blocklist_v6",
    "allowlist_v4",
    "allowlist_v6",
    "xsks_map",
    "ifindex_offset",
    "peer_devmap",
    "counters",
    "syn_guard_v4",
    "syn_guard_v6",
    "syn_seen",
];

/// Per-CPU counter indices, summed (see the C file).
pub const COUNTER_NAMES: [&str; COUNTERS] = [
    "redirected_to_afxdp",
    "forwarded_by_fallback",
    "dropped_by_blocklist",
    "passed_to_stack",
    "dropped_fail_closed",
    "parse_errors",
    "expired_entries_deleted",
    "allowlist_overrides",
    "syn_guard_first_dropped",
    "syn_guard_passed",
    "syn_guard_rate_dropped",
];

/// Entries of the program's `counters` array.
pub const COUNTERS: usize = 11;

/// Why the XDP program or its maps could not be set up or used.
#[derive(Debug, thiserror::Error)]
pub enum XdpError {
    /// A precondition does not hold (capabilities, bpffs, interface,
    /// pins); the message says what to do.
    #[error("{0}")]
    Setup(String),
    /// A BPF operation failed.
    #[error("{what}: {source}")]
    Bpf {
        /// What was being done, e.g. `pinning map counters`.
        what: String,
        /// aya's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

fn bpf<E: std::error::Error + Send + Sync + 'static>(
    what: impl Into<String>,
) -> impl FnOnce(E) -> XdpError {
    let what = what.into();
    move |e| XdpError::Bpf {
        what,
        source: Box::new(e),
    }
}

/// What to attach.
pub struct AttachOptions<'a> {
    /// Port facing the untrusted side.
    pub ingress: &'a str,
    /// Port facing the protected side.
    pub egress: &'a str,
    /// bpffs directory the links and maps are pinned under (created).
    pub pin_dir: &'a Path,
    /// With no AF_XDP socket bound, drop frames instead of forwarding them
    /// to the peer port.
    pub fail_closed: bool,
    /// `Auto`: native (driver) mode, falling back to generic (skb) mode.
    pub mode: XdpAttachMode,
    /// Entries in each of the IPv4 and IPv6 blocklist maps.
    pub blocklist_capacity: u32,
    /// Networks whose sources the program never drops, even if blocklisted.
    pub allowlist: &'a [IpNet],
    /// Entries of the SYN guard's `syn_seen` LRU map
    /// (`detect.victim.guard_table`).
    pub syn_seen_capacity: u32,
}

/// Capabilities loading XDP and binding AF_XDP sockets needs that this
/// process lacks (from /proc/self/status `CapEff`). CAP_BPF may be
/// replaced by CAP_SYS_ADMIN on kernels before 5.8.
pub fn missing_capabilities(afxdp: bool) -> Vec<&'static str> {
    let eff = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapEff:"))
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        })
        .unwrap_or(0);
    let has = |bit: u32| eff & (1u64 << bit) != 0;
    let mut m = Vec::new();
    if !has(12) {
        m.push("CAP_NET_ADMIN");
    }
    if afxdp && !has(13) {
        m.push("CAP_NET_RAW");
    }
    if !has(39) && !has(21) {
        m.push("CAP_BPF (or CAP_SYS_ADMIN)");
    }
    let memlock_unlimited =
        nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_MEMLOCK)
            .map(|(soft, _)| soft == nix::sys::resource::RLIM_INFINITY)
            .unwrap_or(false);
    if !has(14) && !has(24) && !memlock_unlimited {
        m.push("CAP_IPC_LOCK or CAP_SYS_RESOURCE (locked memory for maps and UMEM)");
    }
    m
}

/// Explains a missing privilege or kernel feature in terms of what to do.
fn preflight(pin_dir: &Path, afxdp: bool) -> Result<(), XdpError> {
    let missing = missing_capabilities(afxdp);
    if !missing.is_empty() {
        return Err(XdpError::Setup(format!(
            "missing capabilities {}: run as root or grant them (the systemd unit in deploy/ does: \
             AmbientCapabilities=CAP_NET_ADMIN CAP_BPF CAP_PERFMON CAP_NET_RAW CAP_IPC_LOCK CAP_SYS_RESOURCE)",
            missing.join(", ")
        )));
    }
    let base = pin_dir.parent().unwrap_or(pin_dir);
    let is_bpffs = nix::sys::statfs::statfs(base)
        .map(|s| s.filesystem_type() == nix::sys::statfs::BPF_FS_MAGIC)
        .unwrap_or(false);
    if !is_bpffs {
        return Err(XdpError::Setup(format!(
            "{} is not a bpf filesystem: mount it with `mount -t bpf bpf {}`",
            base.display(),
            base.display()
        )));
    }
    Ok(())
}

fn ifindex(name: &str) -> Result<u32, XdpError> {
    nix::net::if_::if_nametoindex(name).map_err(|e| {
        XdpError::Setup(format!(
            "interface {name}: {e} (does it exist in this network namespace?)"
        ))
    })
}

fn link_pin(pin_dir: &Path, iface: &str) -> PathBuf {
    pin_dir.join(format!("link_{iface}"))
}

/// Loads the program, attaches it to both ports, fills the peer devmap both
/// ways and pins links and maps under `pin_dir`. A stale attachment from a
/// crashed run (pins present) is detached first.
pub fn attach(o: &AttachOptions) -> Result<(), XdpError> {
    preflight(o.pin_dir, false)?;
    if let Some(w) = crate::hints::private_pin_dir(o.pin_dir) {
        tracing::warn!("{w}");
    }
    for iface in [o.ingress, o.egress] {
        for w in crate::hints::veth(iface) {
            tracing::warn!("{w}");
        }
    }
    let (in_idx, out_idx) = (ifindex(o.ingress)?, ifindex(o.egress)?);
    if link_pin(o.pin_dir, o.ingress).exists() || link_pin(o.pin_dir, o.egress).exists() {
        tracing::warn!(
            "a previous attachment is pinned in {}: detaching it first",
            o.pin_dir.display()
        );
        detach(o.pin_dir)?;
    }
    std::fs::create_dir_all(o.pin_dir)
        .map_err(|e| XdpError::Setup(format!("{}: {e}", o.pin_dir.display())))?;
    // Locked memory for maps: old kernels charge it to RLIMIT_MEMLOCK.
    let _ = nix::sys::resource::setrlimit(
        nix::sys::resource::Resource::RLIMIT_MEMLOCK,
        nix::sys::resource::RLIM_INFINITY,
        nix::sys::resource::RLIM_INFINITY,
    );
    let fail_closed: u8 = o.fail_closed as u8;
    let mut loader = EbpfLoader::new();
    loader
        .override_global("fail_closed", &fail_closed, true)
        .map_max_entries("blocklist_v4", o.blocklist_capacity)
        .map_max_entries("blocklist_v6", o.blocklist_capacity)
        .map_max_entries("syn_seen", o.syn_seen_capacity);
    let mut ebpf = loader.load(OBJECT).map_err(bpf(
        "loading the XDP object (is the kernel built with BPF and BTF?)",
    ))?;
    for name in MAPS {
        let map = ebpf
            .map(name)
            .ok_or_else(|| XdpError::Setup(format!("map {name} missing from the object")))?;
        map.pin(o.pin_dir.join(name))
            .map_err(bpf(format!("pinning map {name}")))?;
    }
    {
        let mut peers: aya::maps::DevMapHash<_> = ebpf
            .map_mut("peer_devmap")
            .ok_or_else(|| XdpError::Setup("peer_devmap missing".into()))?
            .try_into()
            .map_err(bpf("peer_devmap"))?;
        peers
            .insert(in_idx, out_idx, None, 0)
            .map_err(bpf("peer_devmap insert"))?;
        peers
            .insert(out_idx, in_idx, None, 0)
            .map_err(bpf("peer_devmap insert"))?;
    }
    fill_allowlist(&mut ebpf, o.allowlist)?;
    let prog: &mut Xdp = ebpf
        .program_mut("flowgate_xdp")
        .ok_or_else(|| XdpError::Setup("program flowgate_xdp missing".into()))?
        .try_into()
        .map_err(bpf("program type"))?;
    prog.load().map_err(bpf("verifying the XDP program"))?;
    for iface in [o.ingress, o.egress] {
        let modes: &[XdpMode] = match o.mode {
            XdpAttachMode::Native => &[XdpMode::Driver][..],
            XdpAttachMode::Generic => &[XdpMode::Skb][..],
            XdpAttachMode::Auto => &[XdpMode::Driver, XdpMode::Skb][..],
        };
        let mut last = None;
        let mut id = None;
        for &m in modes {
            match prog.attach(iface, m) {
                Ok(l) => {
                    tracing::info!("XDP attached to {iface} ({m:?} mode)");
                    id = Some(l);
                    break;
                }
                Err(e) => last = Some(e),
            }
        }
        let id = match (id, last) {
            (Some(id), _) => id,
            (None, Some(e)) => return Err(bpf(format!("attaching XDP to {iface}"))(e)),
            (None, None) => return Err(XdpError::Setup(format!("no XDP mode to try for {iface}"))),
        };
        let link = prog.take_link(id).map_err(bpf("taking the XDP link"))?;
        let fd: FdLink = link.try_into().map_err(bpf(format!(
            "{iface}: the kernel attached XDP without a bpf_link (needs Linux >= 5.9) so it cannot be pinned"
        )))?;
        fd.pin(link_pin(o.pin_dir, iface))
            .map_err(bpf(format!("pinning the link on {iface}")))?;
    }
    Ok(())
}

fn fill_allowlist(ebpf: &mut Ebpf, nets: &[IpNet]) -> Result<(), XdpError> {
    for net in nets {
        match net {
            IpNet::V4(n) => {
                let mut t: LpmTrie<_, [u8; 4], u8> = ebpf
                    .map_mut("allowlist_v4")
                    .ok_or_else(|| XdpError::Setup("allowlist_v4 missing".into()))?
                    .try_into()
                    .map_err(bpf("allowlist_v4"))?;
                let key =
                    aya::maps::lpm_trie::Key::new(n.prefix_len() as u32, n.network().octets());
                t.insert(&key, 1, 0).map_err(bpf("allowlist_v4 insert"))?;
            }
            IpNet::V6(n) => {
                let mut t: LpmTrie<_, [u8; 16], u8> = ebpf
                    .map_mut("allowlist_v6")
                    .ok_or_else(|| XdpError::Setup("allowlist_v6 missing".into()))?
                    .try_into()
                    .map_err(bpf("allowlist_v6"))?;
                let key =
                    aya::maps::lpm_trie::Key::new(n.prefix_len() as u32, n.network().octets());
                t.insert(&key, 1, 0).map_err(bpf("allowlist_v6 insert"))?;
            }
        }
    }
    Ok(())
}

/// Unpins links (detaching the program) and removes map pins.
pub fn detach(pin_dir: &Path) -> Result<Vec<String>, XdpError> {
    let mut detached = Vec::new();
    let entries = match std::fs::read_dir(pin_dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(detached),
        Err(e) => return Err(XdpError::Setup(format!("{}: {e}", pin_dir.display()))),
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        if let Some(iface) = name.strip_prefix("link_") {
            let link =
                PinnedLink::from_pin(&path).map_err(bpf(format!("opening {}", path.display())))?;
            // Unpinning drops the last reference: the program detaches.
            drop(
                link.unpin()
                    .map_err(bpf(format!("unpinning {}", path.display())))?,
            );
            detached.push(iface.to_string());
        } else {
            let _ = std::fs::remove_file(&path);
        }
    }
    let _ = std::fs::remove_dir(pin_dir);
    Ok(detached)
}

/// Removes the pinned link of one port (a port that went away: its link
/// is defunct). Removing the pin file drops the pin's reference; no bpf()
/// call is needed, so this works after the capability drop too.
pub fn unpin_port(pin_dir: &Path, iface: &str) -> Result<(), XdpError> {
    let p = link_pin(pin_dir, iface);
    match std::fs::remove_file(&p) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(XdpError::Setup(format!("{}: {e}", p.display()))),
    }
}

fn pinned(pin_dir: &Path, name: &str) -> Result<MapData, XdpError> {
    let p = pin_dir.join(name);
    MapData::from_pin(&p).map_err(bpf(format!(
        "{} (is flowgate's XDP program attached? `flowgate xdp attach`)",
        p.display()
    )))
}

/// CLOCK_MONOTONIC now, the clock the XDP program compares expiries with.
pub fn monotonic_ns() -> u64 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .map(|t| t.tv_sec() as u64 * 1_000_000_000 + t.tv_nsec() as u64)
        .unwrap_or(0)
}

/// Handle on the pinned blocklist maps.
pub struct Blocklist {
    v4: BpfHashMap<MapData, [u8; 4], u64>,
    v6: BpfHashMap<MapData, [u8; 16], u64>,
}

impl Blocklist {
    /// Opens the blocklist maps [`attach`] pinned under `pin_dir`.
    pub fn open(pin_dir: &Path) -> Result<Blocklist, XdpError> {
        Ok(Blocklist {
            v4: BpfHashMap::try_from(Map::HashMap(pinned(pin_dir, "blocklist_v4")?))
                .map_err(bpf("blocklist_v4"))?,
            v6: BpfHashMap::try_from(Map::HashMap(pinned(pin_dir, "blocklist_v6")?))
                .map_err(bpf("blocklist_v6"))?,
        })
    }

    /// Blocks `ip` for `ttl` from now (monotonic clock).
    pub fn block(&mut self, ip: IpAddr, ttl: Duration) -> Result<(), XdpError> {
        let expiry = monotonic_ns().saturating_add(ttl.as_nanos() as u64);
        match canonical(ip) {
            IpAddr::V4(a) => self.v4.insert(a.octets(), expiry, 0),
            IpAddr::V6(a) => self.v6.insert(a.octets(), expiry, 0),
        }
        .map_err(bpf(format!("blocking {ip} (blocklist full?)")))
    }

    /// Writes and deletes an entry no source can match (0.0.0.0, expired):
    /// whether this process may still update the maps (after dropping
    /// capabilities).
    pub fn probe(&mut self) -> Result<(), XdpError> {
        self.v4
            .insert([0; 4], 0, 0)
            .map_err(bpf("probing blocklist_v4 (insert)"))?;
        self.v4
            .remove(&[0; 4])
            .map_err(bpf("probing blocklist_v4 (delete)"))
    }

    /// Removes `ip` from the kernel blocklist; `Ok(false)` if it was not
    /// there. An IPv4-mapped IPv6 address is looked up under IPv4, where
    /// [`block`](Self::block) files it. A shard's own block of the source
    /// is not touched (with `flowgate live` running, go through its control
    /// socket: `flowgate ctl unblock`).
    pub fn unblock(&mut self, ip: IpAddr) -> Result<bool, XdpError> {
        // Filed the way `block` files it (IPv4-mapped under IPv4).
        let r = match canonical(ip) {
            IpAddr::V4(a) => self.v4.remove(&a.octets()),
            IpAddr::V6(a) => self.v6.remove(&a.octets()),
        };
        match r {
            Ok(()) => Ok(true),
            Err(aya::maps::MapError::KeyNotFound) => Ok(false),
            // aya hands a delete of a missing key back as the syscall's
            // ENOENT.
            Err(aya::maps::MapError::SyscallError(e))
                if e.io_error.raw_os_error() == Some(nix::errno::Errno::ENOENT as i32) =>
            {
                Ok(false)
            }
            Err(e) => Err(bpf(format!("unblocking {ip}"))(e)),
        }
    }

    /// Deletes expired entries; returns how many. The program deletes an
    /// expired entry only when its source sends again, so without this a
    /// flood of one-shot spoofed sources would fill the map for good.
    pub fn sweep(&mut self) -> usize {
        let now = monotonic_ns();
        let old4: Vec<[u8; 4]> = self
            .v4
            .iter()
            .filter_map(Result::ok)
            .filter(|(_, exp)| *exp <= now)
            .map(|(k, _)| k)
            .collect();
        let old6: Vec<[u8; 16]> = self
            .v6
            .iter()
            .filter_map(Result::ok)
            .filter(|(_, exp)| *exp <= now)
            .map(|(k, _)| k)
            .collect();
        let mut n = 0;
        for k in &old4 {
            n += self.v4.remove(k).is_ok() as usize;
        }
        for k in &old6 {
            n += self.v6.remove(k).is_ok() as usize;
        }
        n
    }

    /// Unexpired entries: each source with its expiry (CLOCK_MONOTONIC
    /// ns), sorted by address.
    pub fn entries(&self) -> Vec<(IpAddr, u64)> {
        let now = monotonic_ns();
        let mut v: Vec<(IpAddr, u64)> = self
            .v4
            .iter()
            .filter_map(Result::ok)
            .map(|(k, e)| (IpAddr::from(k), e))
            .chain(
                self.v6
                    .iter()
                    .filter_map(Result::ok)
                    .map(|(k, e)| (IpAddr::from(k), e)),
            )
            .filter(|(_, e)| *e > now)
            .collect();
        v.sort_unstable();
        v
    }

    /// Removes every entry whose source is inside `net` (an IPv4 network
    /// also covers the IPv4-mapped IPv6 sources, which [`block`](Self::block)
    /// files under IPv4); returns how many.
    pub fn remove_within(&mut self, net: &IpNet) -> usize {
        let mut n = 0;
        match net {
            IpNet::V4(n4) => {
                let keys: Vec<[u8; 4]> = self
                    .v4
                    .keys()
                    .filter_map(Result::ok)
                    .filter(|k| n4.contains(&std::net::Ipv4Addr::from(*k)))
                    .collect();
                for k in &keys {
                    n += self.v4.remove(k).is_ok() as usize;
                }
            }
            IpNet::V6(n6) => {
                let keys: Vec<[u8; 16]> = self
                    .v6
                    .keys()
                    .filter_map(Result::ok)
                    .filter(|k| n6.contains(&std::net::Ipv6Addr::from(*k)))
                    .collect();
                for k in &keys {
                    n += self.v6.remove(k).is_ok() as usize;
                }
                // ::ffff:a.b.c.d/N covers IPv4 sources filed under IPv4.
                if let Some(v4) = n6.network().to_ipv4_mapped() {
                    if n6.prefix_len() >= 96 {
                        if let Ok(n4) = ipnet::Ipv4Net::new(v4, n6.prefix_len() - 96) {
                            n += self.remove_within(&IpNet::V4(n4));
                        }
                    }
                }
            }
        }
        n
    }

    /// Entries and how many have not expired.
    pub fn len(&self) -> (usize, usize) {
        let now = monotonic_ns();
        let mut total = 0;
        let mut live = 0;
        for exp in self
            .v4
            .iter()
            .filter_map(Result::ok)
            .map(|(_, e)| e)
            .chain(self.v6.iter().filter_map(Result::ok).map(|(_, e)| e))
        {
            total += 1;
            live += (exp > now) as usize;
        }
        (total, live)
    }
}

/// A victim's entry in `syn_guard_v4`/`syn_guard_v6`: `struct fg_guard` in
/// the C file, field for field.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GuardEntry {
    /// CLOCK_MONOTONIC ns; the guard is off at or after this.
    pub until: u64,
    /// The program's: start of its current one-second window.
    pub window: u64,
    /// SYNs the guard dropped (first attempts and over the cap).
    pub dropped: u64,
    /// Retransmitted SYNs it passed.
    pub passed_total: u64,
    /// SYNs passed per second; 0 = uncapped.
    pub limit: u32,
    /// The program's: passed in the current window.
    pub passed: u32,
}

// SAFETY: `GuardEntry` is `repr(C)`, made only of integers (any bit
// pattern is valid) and has no padding (4 × u64 + 2 × u32 = 40 bytes,
// 8-aligned), which aya needs to copy it to and from the kernel.
unsafe impl aya::Pod for GuardEntry {}

/// Handle on the pinned SYN guard maps: which victims' SYNs the program
/// admits only as retransmissions (see the C file, step 2b).
pub struct SynGuard {
    v4: BpfHashMap<MapData, [u8; 4], GuardEntry>,
    v6: BpfHashMap<MapData, [u8; 16], GuardEntry>,
}

impl SynGuard {
    /// Opens the guard maps [`attach`] pinned under `pin_dir`.
    pub fn open(pin_dir: &Path) -> Result<SynGuard, XdpError> {
        Ok(SynGuard {
            v4: BpfHashMap::try_from(Map::HashMap(pinned(pin_dir, "syn_guard_v4")?))
                .map_err(bpf("syn_guard_v4"))?,
            v6: BpfHashMap::try_from(Map::HashMap(pinned(pin_dir, "syn_guard_v6")?))
                .map_err(bpf("syn_guard_v6"))?,
        })
    }

    /// Guards `victim` until `hold` from now, passing at most `limit`
    /// retransmitted SYNs a second (0 = uncapped). Extending a live guard
    /// keeps the program's counters.
    pub fn arm(&mut self, victim: IpAddr, hold: Duration, limit: u32) -> Result<(), XdpError> {
        let until = monotonic_ns().saturating_add(hold.as_nanos() as u64);
        let victim = canonical(victim);
        let mut e = self.get(victim).unwrap_or_default();
        e.until = until;
        e.limit = limit;
        match victim {
            IpAddr::V4(a) => self.v4.insert(a.octets(), e, 0),
            IpAddr::V6(a) => self.v6.insert(a.octets(), e, 0),
        }
        .map_err(bpf(format!("guarding {victim} (syn_guard map full?)")))
    }

    /// The entry of `victim`, if guarded (live or expired).
    pub fn get(&self, victim: IpAddr) -> Option<GuardEntry> {
        match canonical(victim) {
            IpAddr::V4(a) => self.v4.get(&a.octets(), 0).ok(),
            IpAddr::V6(a) => self.v6.get(&a.octets(), 0).ok(),
        }
    }

    /// Every guarded victim with its entry.
    pub fn entries(&self) -> Vec<(IpAddr, GuardEntry)> {
        let v4 = self
            .v4
            .iter()
            .filter_map(Result::ok)
            .map(|(k, e)| (IpAddr::from(k), e));
        let v6 = self
            .v6
            .iter()
            .filter_map(Result::ok)
            .map(|(k, e)| (IpAddr::from(k), e));
        v4.chain(v6).collect()
    }

    /// Switches the guard off for `victim`.
    pub fn disarm(&mut self, victim: IpAddr) {
        let _ = match canonical(victim) {
            IpAddr::V4(a) => self.v4.remove(&a.octets()),
            IpAddr::V6(a) => self.v6.remove(&a.octets()),
        };
    }
}

/// IPv4-mapped IPv6 addresses as IPv4: the program files them that way.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(a) => a.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

/// The program's per-CPU counters, summed over CPUs.
pub fn counters(pin_dir: &Path) -> Result<[u64; COUNTERS], XdpError> {
    let arr: PerCpuArray<MapData, u64> =
        PerCpuArray::try_from(Map::PerCpuArray(pinned(pin_dir, "counters")?))
            .map_err(bpf("counters"))?;
    let mut out = [0u64; COUNTERS];
    for (i, slot) in out.iter_mut().enumerate() {
        if let Ok(v) = arr.get(&(i as u32), 0) {
            *slot = v.iter().sum();
        }
    }
    Ok(out)
}

/// Interfaces with a pinned flowgate link.
pub fn attached(pin_dir: &Path) -> Vec<String> {
    std::fs::read_dir(pin_dir)
        .map(|d| {
            let mut v: Vec<String> = d
                .flatten()
                .filter_map(|e| {
                    e.file_name()
                        .to_string_lossy()
                        .strip_prefix("link_")
                        .map(str::to_string)
                })
                .collect();
            v.sort();
            v
        })
        .unwrap_or_default()
}

/// Gap between the two ports' slots in `xsks_map`: ingress queues use keys
/// `0..QUEUE_STRIDE`, egress `QUEUE_STRIDE..2 * QUEUE_STRIDE` (the map
/// holds 64).
pub const QUEUE_STRIDE: u32 = 32;

/// Where `flowgate live` registers its AF_XDP sockets with the program.
pub struct XskRegistry {
    xsks: aya::maps::XskMap<MapData>,
    offsets: BpfHashMap<MapData, u32, u32>,
}

impl XskRegistry {
    /// Opens the socket map and port offsets [`attach`] pinned under
    /// `pin_dir`.
    pub fn open(pin_dir: &Path) -> Result<XskRegistry, XdpError> {
        Ok(XskRegistry {
            xsks: aya::maps::XskMap::try_from(Map::XskMap(pinned(pin_dir, "xsks_map")?))
                .map_err(bpf("xsks_map"))?,
            offsets: BpfHashMap::try_from(Map::HashMap(pinned(pin_dir, "ifindex_offset")?))
                .map_err(bpf("ifindex_offset"))?,
        })
    }

    /// Tells the program which slot range each port uses. `port` 0 is
    /// ingress, 1 egress.
    pub fn set_port(&mut self, iface: &str, port: u32) -> Result<(), XdpError> {
        let idx = ifindex(iface)?;
        self.offsets
            .insert(idx, port * QUEUE_STRIDE, 0)
            .map_err(bpf(format!("ifindex_offset insert for {iface}")))
    }

    /// Puts a bound socket at (port, queue). The kernel removes the entry
    /// itself when the socket closes, so a crashed process leaves no stale
    /// slot: the program falls back to the peer devmap.
    pub fn insert(
        &mut self,
        port: u32,
        queue: u32,
        fd: impl std::os::fd::AsRawFd,
    ) -> Result<(), XdpError> {
        if queue >= QUEUE_STRIDE {
            return Err(XdpError::Setup(format!(
                "queue {queue}: at most {QUEUE_STRIDE} queues per port are supported"
            )));
        }
        self.xsks
            .set(port * QUEUE_STRIDE + queue, fd, 0)
            .map_err(bpf(format!("xsks_map slot for port {port} queue {queue}")))
    }

    /// Removes a socket's slot (clean shutdown: the program falls back
    /// before the sockets close).
    pub fn remove(&mut self, port: u32, queue: u32) {
        let _ = self.xsks.unset(port * QUEUE_STRIDE + queue);
    }
}

/// RX queues of an interface (from sysfs), at least 1.
pub fn rx_queues(iface: &str) -> usize {
    std::fs::read_dir(format!("/sys/class/net/{iface}/queues"))
        .map(|d| {
            d.flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with("rx-"))
                .count()
        })
        .unwrap_or(1)
        .max(1)
}

/// Fails with what to do when the process may not load XDP programs and
/// bind AF_XDP sockets (`flowgate live`).
pub fn check_privileges(pin_dir: &Path) -> Result<(), XdpError> {
    preflight(pin_dir, true)
}

/// Handle on the pinned allowlist LPM maps, to change them while the
/// program runs (`flowgate ctl allow`, a reloaded `block.allowlist`).
pub struct Allowlist {
    v4: LpmTrie<MapData, [u8; 4], u8>,
    v6: LpmTrie<MapData, [u8; 16], u8>,
}

impl Allowlist {
    /// Opens the allowlist maps [`attach`] pinned under `pin_dir`.
    pub fn open(pin_dir: &Path) -> Result<Allowlist, XdpError> {
        Ok(Allowlist {
            v4: LpmTrie::try_from(Map::LpmTrie(pinned(pin_dir, "allowlist_v4")?))
                .map_err(bpf("allowlist_v4"))?,
            v6: LpmTrie::try_from(Map::LpmTrie(pinned(pin_dir, "allowlist_v6")?))
                .map_err(bpf("allowlist_v6"))?,
        })
    }

    /// Makes the maps hold exactly `nets`: inserts what is missing, then
    /// deletes what is no longer listed (so a network that stays listed is
    /// never absent meanwhile).
    pub fn set(&mut self, nets: &[IpNet]) -> Result<(), XdpError> {
        use aya::maps::lpm_trie::Key;
        let mut want4 = Vec::new();
        let mut want6 = Vec::new();
        for net in nets {
            match net.trunc() {
                IpNet::V4(n) => want4.push((n.prefix_len() as u32, n.network().octets())),
                IpNet::V6(n) => want6.push((n.prefix_len() as u32, n.network().octets())),
            }
        }
        for (len, addr) in &want4 {
            self.v4
                .insert(&Key::new(*len, *addr), 1, 0)
                .map_err(bpf(format!(
                    "allowlist_v4 insert {}/{len}",
                    std::net::Ipv4Addr::from(*addr)
                )))?;
        }
        for (len, addr) in &want6 {
            self.v6
                .insert(&Key::new(*len, *addr), 1, 0)
                .map_err(bpf(format!(
                    "allowlist_v6 insert {}/{len}",
                    std::net::Ipv6Addr::from(*addr)
                )))?;
        }
        let old4: Vec<Key<[u8; 4]>> = self.v4.keys().filter_map(Result::ok).collect();
        for k in old4 {
            if !want4.contains(&(k.prefix_len(), k.data())) {
                self.v4.remove(&k).map_err(bpf("allowlist_v4 remove"))?;
            }
        }
        let old6: Vec<Key<[u8; 16]>> = self.v6.keys().filter_map(Result::ok).collect();
        for k in old6 {
            if !want6.contains(&(k.prefix_len(), k.data())) {
                self.v6.remove(&k).map_err(bpf("allowlist_v6 remove"))?;
            }
        }
        Ok(())
    }

    /// The networks in the maps, IPv4 first.
    pub fn nets(&self) -> Vec<IpNet> {
        let mut v: Vec<IpNet> = Vec::new();
        for k in self.v4.keys().filter_map(Result::ok) {
            if let Ok(n) = ipnet::Ipv4Net::new(k.data().into(), k.prefix_len() as u8) {
                v.push(n.into());
            }
        }
        for k in self.v6.keys().filter_map(Result::ok) {
            if let Ok(n) = ipnet::Ipv6Net::new(k.data().into(), k.prefix_len() as u8) {
                v.push(n.into());
            }
        }
        v
    }
}

/// Other processes holding the blocklist map pinned under `pin_dir` open
/// (a running `flowgate live` does), by pid, from /proc/*/fdinfo. Empty
/// if the map is not pinned there.
pub fn map_owners(pin_dir: &Path) -> Vec<u32> {
    let Ok(info) = aya::maps::MapInfo::from_pin(pin_dir.join("blocklist_v4")) else {
        return Vec::new();
    };
    let want = format!("map_id:\t{}", info.id());
    let me = std::process::id();
    let mut pids = Vec::new();
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return pids;
    };
    for p in procs.flatten() {
        let Some(pid) = p.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        if pid == me {
            continue;
        }
        let Ok(fds) = std::fs::read_dir(p.path().join("fd")) else {
            continue;
        };
        let holds = fds.flatten().any(|fd| {
            let is_map = std::fs::read_link(fd.path())
                .map(|t| t.to_string_lossy().contains("bpf-map"))
                .unwrap_or(false);
            is_map
                && std::fs::read_to_string(p.path().join("fdinfo").join(fd.file_name()))
                    .map(|t| t.lines().any(|l| l == want))
                    .unwrap_or(false)
        });
        if holds {
            pids.push(pid);
        }
    }
    pids
}
