//! Dropping privileges once `flowgate live` is set up.
//!
//! Attaching the XDP program (CAP_NET_ADMIN, CAP_BPF, CAP_PERFMON), binding
//! the AF_XDP sockets (CAP_NET_RAW) and registering their UMEM
//! (CAP_IPC_LOCK) happen once, at start. What the running process still
//! does with privilege is use the maps it already holds: kernel blocklist
//! inserts and sweeps, the program's counters (opened by their pin path),
//! XSKMAP removals at stop, and with `live.detach_on_exit` unpinning the
//! links. On kernels before 6.5 with `kernel.unprivileged_bpf_disabled` set
//! (Debian's default), every bpf() command needs CAP_BPF (CAP_SYS_ADMIN
//! before 5.8); on newer kernels an open map fd and the pin's file
//! permissions are enough. So the set kept is found by trying those very
//! calls without any capability, then with CAP_BPF alone: nothing else is
//! ever kept. SIGHUP (config and rules re-read, alert log reopened) needs
//! none. Re-attaching or re-binding needs a restart (the ports, queues and
//! pin dir are restart-only keys anyway).
//!
//! Capabilities are per thread: this runs on the main thread before any
//! other thread is started, so every thread started later inherits the
//! reduced sets. The bounding set is emptied too (but for the kept
//! capability) and no_new_privs set, so nothing executed later can get
//! privileges back.

use caps::{CapSet, Capability, CapsHashSet};

/// What was kept, for the log.
#[derive(Debug)]
pub struct Dropped {
    /// Capabilities left in the effective, permitted and bounding sets.
    pub kept: Vec<Capability>,
    /// The bounding set could not be reduced (no CAP_SETPCAP, e.g. under a
    /// systemd unit that already bounds it); no_new_privs still holds.
    pub bounding_kept: bool,
    /// Threads that already ran when the sets were reduced: they keep the
    /// old sets (expected: 1, this thread).
    pub threads: usize,
}

impl Dropped {
    /// `CAP_BPF` or `none`, for the log.
    pub fn kept_names(&self) -> String {
        if self.kept.is_empty() {
            return "none".into();
        }
        let v: Vec<String> = self.kept.iter().map(|c| c.to_string()).collect();
        v.join(", ")
    }
}

fn err(what: &str) -> impl FnOnce(caps::errors::CapsError) -> String + '_ {
    move |e| format!("{what}: {e}")
}

/// The capability bpf() checks for: CAP_BPF where the kernel knows it,
/// CAP_SYS_ADMIN before 5.8.
fn bpf_capability() -> Capability {
    match caps::runtime::thread_all_supported().contains(&Capability::CAP_BPF) {
        true => Capability::CAP_BPF,
        false => Capability::CAP_SYS_ADMIN,
    }
}

/// Drops every capability but those `probe` needs; `probe` makes the
/// privileged calls the running process will make (on maps it already
/// holds) and says whether they worked. Sets no_new_privs. Errs only if
/// the kernel refuses to change the sets.
pub fn drop_to_needed(mut probe: impl FnMut() -> bool) -> Result<Dropped, String> {
    nix::sys::prctl::set_no_new_privs().map_err(|e| format!("setting no_new_privs: {e}"))?;
    let permitted = caps::read(None, CapSet::Permitted).map_err(err("reading capabilities"))?;
    let effective = caps::read(None, CapSet::Effective).map_err(err("reading capabilities"))?;
    let bpf = bpf_capability();

    // Which capability the maps need: none, or the bpf one.
    let mut keep = CapsHashSet::new();
    caps::set(None, CapSet::Effective, &keep).map_err(err("lowering capabilities"))?;
    if !probe() {
        if permitted.contains(&bpf) {
            keep.insert(bpf);
        }
        caps::set(None, CapSet::Effective, &keep).map_err(err("raising capabilities"))?;
        if !probe() {
            // Not a capability question (a pin gone?); keep what the
            // process had so its later calls fail the way they would have.
            caps::set(None, CapSet::Effective, &effective).map_err(err("restoring"))?;
            return Err(format!(
                "the kernel blocklist maps are not usable even with {bpf}: capabilities kept"
            ));
        }
    }

    // Bounding set: dropping from it needs CAP_SETPCAP in the effective set.
    let mut bounding_kept = false;
    if permitted.contains(&Capability::CAP_SETPCAP) {
        let mut eff = keep.clone();
        eff.insert(Capability::CAP_SETPCAP);
        caps::set(None, CapSet::Effective, &eff).map_err(err("raising CAP_SETPCAP"))?;
        let bounding = caps::read(None, CapSet::Bounding).map_err(err("reading bounding"))?;
        for c in bounding.difference(&keep) {
            caps::drop(None, CapSet::Bounding, *c).map_err(err("reducing the bounding set"))?;
        }
    } else {
        bounding_kept = true;
    }
    let none = CapsHashSet::new();
    caps::clear(None, CapSet::Ambient).map_err(err("clearing ambient capabilities"))?;
    caps::set(None, CapSet::Inheritable, &none).map_err(err("clearing inheritable"))?;
    caps::set(None, CapSet::Effective, &keep).map_err(err("lowering effective"))?;
    caps::set(None, CapSet::Permitted, &keep).map_err(err("lowering permitted"))?;

    let threads = std::fs::read_dir("/proc/self/task")
        .map(|d| d.count())
        .unwrap_or(1);
    let mut kept: Vec<Capability> = keep.into_iter().collect();
    kept.sort_by_key(|c| c.index());
    Ok(Dropped {
        kept,
        bounding_kept,
        threads,
    })
}
