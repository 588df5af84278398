//! Compiles the XDP program (bpf/flowgate_xdp.c) with clang for the bpf
//! target; the object is embedded in the binary.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let src = "bpf/flowgate_xdp.c";
    println!("cargo:rerun-if-changed={src}");
    println!("cargo:rerun-if-env-changed=CLANG");
    let clang = std::env::var("CLANG").unwrap_or_else(|_| "clang".into());
    let mut cmd = Command::new(&clang);
    cmd.args(["-O2", "-g", "-target", "bpf", "-Wall"]);
    // Debian keeps <asm/types.h> under the multiarch triplet.
    let arch = std::env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    for dir in [
        format!("/usr/include/{arch}-linux-gnu"),
        "/usr/include/x86_64-linux-gnu".into(),
    ] {
        if std::path::Path::new(&dir).is_dir() {
            cmd.arg(format!("-I{dir}"));
            break;
        }
    }
    cmd.args(["-c", src, "-o"]).arg(out.join("flowgate_xdp.o"));
    match cmd.status() {
        Ok(s) if s.success() => {}
        Ok(s) => panic!("{clang} failed to compile {src} ({s}): is libbpf-dev installed? (apt-get install clang libbpf-dev)"),
        Err(e) => panic!("cannot run {clang} to build the XDP program ({e}): install clang and libbpf-dev (apt-get install clang libbpf-dev), or set CLANG"),
    }
}
