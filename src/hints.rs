//! What a new user trips on when trying an inline box, detected where we
//! can and reported as a warning that says the fix. None of these stop a
//! start: they are the setups that work but silently lose traffic or the
//! fail-open wire (README "Quick start" has the rig that avoids them).

use std::path::Path;
use std::process::Command;

/// A bpffs that exists only in this process's mount namespace (a fresh
/// /sys under `ip netns exec`) takes the pinned program, and with it the
/// fail-open wire, away when the namespace goes. `None` when the pin dir's
/// filesystem is also mounted in PID 1's namespace, or when that cannot be
/// told (no /proc/1 access: not root).
pub fn private_pin_dir(pin_dir: &Path) -> Option<String> {
    let ours = std::fs::read_link("/proc/self/ns/mnt").ok()?;
    let init = std::fs::read_link("/proc/1/ns/mnt").ok()?;
    if ours == init {
        return None;
    }
    let base = pin_dir.parent().unwrap_or(pin_dir);
    let base = base.canonicalize().ok()?;
    let mine = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    let (dev, fstype) = mount_of(&mine, &base)?;
    if fstype != "bpf" {
        return None;
    }
    let host = std::fs::read_to_string("/proc/1/mountinfo").ok()?;
    let shared = host
        .lines()
        .filter_map(parse_mountinfo)
        .any(|m| m.dev == dev && m.fstype == "bpf");
    (!shared).then(|| {
        format!(
            "{} is a bpf filesystem mounted only in this mount namespace (as `ip netns exec` \
             makes): the pinned XDP program and its fail-open wire go away with it. Mount a \
             bpffs on the host side (`mount -t bpf bpf DIR`) and pass `--pin-dir DIR/flowgate`",
            base.display()
        )
    })
}

/// Warnings for a port that is a veth: forwarded TCP is dropped unless the
/// sending ends have TX checksum offload off, and frames redirected into a
/// veth vanish unless its far end has GRO on (or an XDP program). Checks the
/// peer when it is in this namespace; otherwise says what to check.
pub fn veth(iface: &str) -> Vec<String> {
    if driver(iface).as_deref() != Some("veth") {
        return Vec::new();
    }
    let peer = sysfs(iface, "iflink")
        .and_then(|i| i.parse::<u32>().ok())
        .and_then(iface_by_index);
    let Some(peer) = peer else {
        return vec![format!(
            "{iface} is a veth whose peer is in another namespace: on the peer turn GRO on \
             (`ethtool -K PEER gro on`, or XDP redirects into it are dropped) and, on every \
             end that sends TCP, TX checksum offload off (`ethtool -K IF tx off`, or forwarded \
             TCP arrives with bad checksums and is dropped)"
        )];
    };
    let features = features(&peer);
    let mut out = Vec::new();
    if features
        .iter()
        .any(|(k, v)| k == "generic-receive-offload" && v == "off")
    {
        out.push(format!(
            "{iface} is a veth and its peer {peer} has GRO off: frames redirected into {iface} \
             are dropped by the kernel. Fix: `ethtool -K {peer} gro on`"
        ));
    }
    if features
        .iter()
        .any(|(k, v)| k == "tx-checksumming" && v == "on")
    {
        out.push(format!(
            "{iface} is a veth and its peer {peer} has TX checksum offload on: TCP it sends \
             leaves without a checksum and is dropped once forwarded. Fix: `ethtool -K {peer} tx off`"
        ));
    }
    out
}

fn driver(iface: &str) -> Option<String> {
    let out = Command::new("ethtool").arg("-i").arg(iface).output().ok()?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("driver:").map(|d| d.trim().to_string()))
}

/// `ethtool -k` as (feature, "on"/"off") pairs.
fn features(iface: &str) -> Vec<(String, String)> {
    let Ok(out) = Command::new("ethtool").arg("-k").arg(iface).output() else {
        return Vec::new();
    };
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(':')?;
            let v = v.split_whitespace().next()?;
            Some((k.trim().to_string(), v.to_string()))
        })
        .collect()
}

fn sysfs(iface: &str, attr: &str) -> Option<String> {
    std::fs::read_to_string(format!("/sys/class/net/{iface}/{attr}"))
        .ok()
        .map(|s| s.trim().to_string())
}

fn iface_by_index(index: u32) -> Option<String> {
    std::fs::read_dir("/sys/class/net")
        .ok()?
        .flatten()
        .find_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            (sysfs(&name, "ifindex")?.parse::<u32>().ok()? == index).then_some(name)
        })
}

struct Mount<'a> {
    dev: &'a str,
    point: &'a str,
    fstype: &'a str,
}

/// One /proc/PID/mountinfo line: `id parent major:minor root point opts
/// [optional...] - fstype source superopts`.
fn parse_mountinfo(line: &str) -> Option<Mount<'_>> {
    let (pre, post) = line.split_once(" - ")?;
    let f: Vec<&str> = pre.split(' ').collect();
    Some(Mount {
        dev: f.get(2)?,
        point: f.get(4)?,
        fstype: post.split(' ').next()?,
    })
}

/// The device and type of the mount that holds `path` (longest prefix).
fn mount_of<'a>(mountinfo: &'a str, path: &Path) -> Option<(&'a str, &'a str)> {
    mountinfo
        .lines()
        .filter_map(parse_mountinfo)
        .filter(|m| path.starts_with(m.point))
        .max_by_key(|m| m.point.len())
        .map(|m| (m.dev, m.fstype))
}

#[cfg(test)]
mod tests {
    use super::*;

    const INFO: &str = "\
22 1 0:21 / /sys rw,nosuid shared:7 - sysfs sysfs rw
30 22 0:26 / /sys/fs/bpf rw shared:12 - bpf bpf rw,mode=700
41 1 0:40 / /tmp/rig/bpf rw shared:20 - bpf bpf rw
";

    #[test]
    fn finds_the_mount_holding_a_path() {
        assert_eq!(
            mount_of(INFO, Path::new("/sys/fs/bpf/flowgate")),
            Some(("0:26", "bpf"))
        );
        assert_eq!(
            mount_of(INFO, Path::new("/sys/class")),
            Some(("0:21", "sysfs"))
        );
        assert_eq!(
            mount_of(INFO, Path::new("/tmp/rig/bpf")),
            Some(("0:40", "bpf"))
        );
    }

    #[test]
    fn a_plain_interface_gets_no_veth_hint() {
        assert!(veth("lo").is_empty());
        assert!(veth("no-such-if0").is_empty());
    }
}
