//! The capture reader end to end: record sizes past the snaplen and up to
//! the hard limit, snaplen 0, standard input and FIFOs, and
//! `--write-allowed` (PCAPNG, per-interface link types, late errors).
//! Inputs are built in a tempdir; nothing large is committed.

mod common;
use common::*;
use flowgate::source::pcap::MAX_RECORD;
use flowgate_synth::{udp, v4};
use pcap_file::pcapng::blocks::enhanced_packet::EnhancedPacketBlock;
use pcap_file::pcapng::blocks::interface_description::{
    InterfaceDescriptionBlock, InterfaceDescriptionOption, InterfaceTsResolution,
};
use pcap_file::pcapng::{Block, PcapNgReader, PcapNgWriter};
use pcap_file::{DataLink, Endianness};
use std::borrow::Cow;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

/// A little-endian microsecond PCAP file header.
fn pcap_header(snaplen: u32, linktype: u32) -> Vec<u8> {
    let mut v = vec![0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0];
    v.extend_from_slice(&[0; 8]);
    v.extend_from_slice(&snaplen.to_le_bytes());
    v.extend_from_slice(&linktype.to_le_bytes());
    v
}

/// One PCAP record (little endian) claiming `incl_len` captured bytes.
fn pcap_record(sec: u32, incl_len: u32, data: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(16 + data.len());
    v.extend_from_slice(&sec.to_le_bytes());
    v.extend_from_slice(&0u32.to_le_bytes());
    v.extend_from_slice(&incl_len.to_le_bytes());
    v.extend_from_slice(&incl_len.max(data.len() as u32).to_le_bytes());
    v.extend_from_slice(data);
    v
}

/// A benign UDP frame padded (Ethernet trailer) to `len` bytes.
fn frame_of(len: usize, n: u8) -> Vec<u8> {
    let mut f = udp(v4(198, 18, 1, n), v4(198, 19, 0, 53), 40000, 53, b"hello");
    f.resize(len.max(f.len()), 0);
    f
}

fn summary(stdout: &str) -> serde_json::Value {
    serde_json::from_str(stdout).unwrap_or_else(|e| panic!("summary json: {e}\n{stdout}"))
}

fn stderr_lines(stderr: &str) -> Vec<&str> {
    stderr.lines().filter(|l| !l.trim().is_empty()).collect()
}

#[test]
fn records_past_the_snaplen_and_of_9_mb_are_read_whole() {
    let dir = tempfile::tempdir().unwrap();
    let sizes = [60usize, 70_000, 9 * 1024 * 1024, 100];
    // PCAP, snaplen 65535: the 70 kB and 9 MB records exceed it.
    let mut pcap = pcap_header(65_535, 1);
    for (i, len) in sizes.iter().enumerate() {
        let f = frame_of(*len, i as u8 + 1);
        pcap.extend(pcap_record(1_700_000_000 + i as u32, f.len() as u32, &f));
    }
    let p = dir.path().join("big.pcap");
    std::fs::write(&p, &pcap).unwrap();
    // PCAPNG, the same frames: a 9 MB block is past pcap-file's own buffer.
    let ng = dir.path().join("big.pcapng");
    {
        let mut w = PcapNgWriter::new(std::fs::File::create(&ng).unwrap()).unwrap();
        w.write_pcapng_block(InterfaceDescriptionBlock::new(DataLink::ETHERNET, 65_535))
            .unwrap();
        for (i, len) in sizes.iter().enumerate() {
            let f = frame_of(*len, i as u8 + 1);
            w.write_pcapng_block(EnhancedPacketBlock {
                interface_id: 0,
                timestamp: Duration::from_secs(1_700_000_000 + i as u64),
                original_len: f.len() as u32,
                data: Cow::Owned(f),
                options: vec![],
            })
            .unwrap();
        }
    }
    let total: u64 = sizes.iter().map(|s| *s as u64).sum();
    for input in [&p, &ng] {
        let (code, stdout, stderr, _, verdicts) =
            analyze_cli(input, &["--summary", "json", "--shards", "2"]);
        assert_eq!(code, 0, "{}: {stderr}", input.display());
        let v = summary(&stdout);
        assert_eq!(v["packets"], sizes.len() as u64, "{}", input.display());
        assert_eq!(v["bytes"], total, "{}", input.display());
        assert_eq!(verdicts.len(), sizes.len());
    }
}

#[test]
fn a_record_one_byte_over_the_limit_is_named_with_its_size() {
    let dir = tempfile::tempdir().unwrap();
    // PCAP: one good packet, then a record header claiming MAX_RECORD + 1
    // bytes in all (16-byte header + data); only a few bytes follow.
    let over = (MAX_RECORD + 1 - 16) as u32;
    let good = frame_of(60, 1);
    let mut pcap = pcap_header(65_535, 1);
    pcap.extend(pcap_record(1_700_000_000, good.len() as u32, &good));
    pcap.extend(pcap_record(1_700_000_001, over, &[0; 64]));
    let p = dir.path().join("over.pcap");
    std::fs::write(&p, &pcap).unwrap();
    // PCAPNG: a block whose length field is MAX_RECORD + 4.
    let mut ng = Vec::new();
    {
        let mut w = PcapNgWriter::with_endianness(&mut ng, Endianness::Little).unwrap();
        w.write_pcapng_block(InterfaceDescriptionBlock::new(DataLink::ETHERNET, 0))
            .unwrap();
        w.write_pcapng_block(EnhancedPacketBlock {
            interface_id: 0,
            timestamp: Duration::from_secs(1_700_000_000),
            original_len: good.len() as u32,
            data: Cow::Borrowed(&good),
            options: vec![],
        })
        .unwrap();
    }
    ng.extend_from_slice(&6u32.to_le_bytes());
    ng.extend_from_slice(&((MAX_RECORD + 4) as u32).to_le_bytes());
    ng.extend_from_slice(&[0; 64]);
    let n = dir.path().join("over.pcapng");
    std::fs::write(&n, &ng).unwrap();

    for (input, len) in [(&p, MAX_RECORD + 1), (&n, MAX_RECORD + 4)] {
        let (code, stdout, stderr, _, _) = analyze_cli(input, &["--summary", "json"]);
        assert_eq!(code, 2, "{}: {stderr}", input.display());
        let lines = stderr_lines(&stderr);
        assert_eq!(lines.len(), 1, "{stderr}");
        let want =
            format!("record of {len} bytes after packet 1 exceeds the limit of {MAX_RECORD} bytes");
        assert!(lines[0].contains(&want), "{}", lines[0]);
        assert!(!lines[0].contains("truncated"), "{}", lines[0]);
        assert_eq!(summary(&stdout)["packets"], 1);
    }
}

#[test]
fn snaplen_zero_means_no_limit() {
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = std::fs::read(fixture("mixed.pcap")).unwrap();
    // Little-endian file header: snaplen is bytes 16..20.
    bytes[16..20].copy_from_slice(&0u32.to_le_bytes());
    let p = dir.path().join("snaplen0.pcap");
    std::fs::write(&p, &bytes).unwrap();
    let (code, _, stderr, alerts, verdicts) = analyze_cli(&p, &[]);
    assert_eq!(code, 0, "{stderr}");
    let (_, _, _, want_alerts, want_verdicts) = analyze_cli(&fixture("mixed.pcap"), &[]);
    assert_eq!(alerts, want_alerts);
    assert_eq!(verdicts, want_verdicts);
}

/// `analyze <arg>` with `input` written to its standard input; returns
/// (exit code, stdout, stderr, sorted alert lines).
fn analyze_piped(arg: &str, input: Vec<u8>, extra: &[&str]) -> (i32, String, String, Vec<String>) {
    let dir = tempfile::tempdir().unwrap();
    let alerts = dir.path().join("alerts.jsonl");
    let mut child = Command::new(env!("CARGO_BIN_EXE_flowgate"))
        .args(["analyze", arg, "--alerts", alerts.to_str().unwrap()])
        .args(extra)
        .env_remove("FLOWGATE_CONFIG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    // Fed from a thread in small writes, so reads come back short.
    let feeder = std::thread::spawn(move || {
        for chunk in input.chunks(4093) {
            if stdin.write_all(chunk).is_err() {
                break; // flowgate stopped reading (an error test)
            }
        }
    });
    let out = child.wait_with_output().unwrap();
    feeder.join().unwrap();
    let mut lines: Vec<String> = std::fs::read_to_string(&alerts)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect();
    lines.sort();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
        lines,
    )
}

#[test]
fn standard_input_gives_the_same_alerts_as_the_file() {
    let bytes = std::fs::read(fixture("mixed.pcap")).unwrap();
    let (code, _, stderr, want, _) = analyze_cli(&fixture("mixed.pcap"), &["--shards", "2"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(!want.is_empty());
    for arg in ["-", "/dev/stdin"] {
        let (code, stdout, stderr, alerts) =
            analyze_piped(arg, bytes.clone(), &["--shards", "2", "--summary", "json"]);
        assert_eq!(code, 0, "{arg}: {stderr}");
        assert_eq!(alerts, want, "{arg}: alerts differ from the file's");
        if arg == "-" {
            assert_eq!(summary(&stdout)["input"], "<stdin>");
        }
    }
    // Empty standard input: the usual one-line error, exit 1.
    let (code, _, stderr, _) = analyze_piped("-", Vec::new(), &[]);
    assert_eq!(code, 1);
    let lines = stderr_lines(&stderr);
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(lines[0].contains("<stdin>: empty file"), "{stderr}");
}

#[test]
fn write_allowed_refuses_input_it_cannot_read_twice() {
    let bytes = std::fs::read(fixture("mixed.pcap")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("fwd.pcapng");
    let (code, stdout, stderr, _) =
        analyze_piped("-", bytes, &["--write-allowed", out.to_str().unwrap()]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stdout.is_empty(), "nothing analysed: {stdout}");
    let lines = stderr_lines(&stderr);
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(
        lines[0].contains("--write-allowed") && lines[0].contains("regular file"),
        "{stderr}"
    );
    // Nor may the output be the input.
    let copy = dir.path().join("in.pcap");
    std::fs::copy(fixture("mixed.pcap"), &copy).unwrap();
    let (code, _, stderr, _, _) = analyze_cli(&copy, &["--write-allowed", copy.to_str().unwrap()]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("is the input capture itself"), "{stderr}");
    assert_eq!(
        std::fs::read(&copy).unwrap(),
        std::fs::read(fixture("mixed.pcap")).unwrap(),
        "input untouched"
    );
}

#[test]
fn a_fifo_path_works() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("capture.fifo");
    nix::unistd::mkfifo(
        &fifo,
        nix::sys::stat::Mode::S_IRUSR | nix::sys::stat::Mode::S_IWUSR,
    )
    .unwrap();
    let bytes = std::fs::read(fixture("mixed.pcap")).unwrap();
    let writer = {
        let fifo = fifo.clone();
        std::thread::spawn(move || {
            // Opening blocks until flowgate opens the other end.
            let mut f = std::fs::OpenOptions::new().write(true).open(&fifo).unwrap();
            for chunk in bytes.chunks(10_000) {
                f.write_all(chunk).unwrap();
            }
        })
    };
    let (code, _, stderr, alerts, _) = analyze_cli(&fifo, &["--shards", "2"]);
    writer.join().unwrap();
    assert_eq!(code, 0, "{stderr}");
    let (_, _, _, want, _) = analyze_cli(&fixture("mixed.pcap"), &["--shards", "2"]);
    assert_eq!(alerts, want);
}

/// Writes a PCAPNG: one IDB per `(linktype, resolution)`, then the packets
/// `(interface, ts in ns, data)`.
fn write_pcapng(
    path: &Path,
    ifaces: &[(DataLink, InterfaceTsResolution)],
    packets: &[(u32, u64, Vec<u8>)],
) {
    let mut w = PcapNgWriter::new(std::fs::File::create(path).unwrap()).unwrap();
    for (lt, res) in ifaces {
        w.write_pcapng_block(InterfaceDescriptionBlock {
            linktype: *lt,
            snaplen: 0,
            options: vec![InterfaceDescriptionOption::IfTsResol(*res)],
        })
        .unwrap();
    }
    for (iface, ts, data) in packets {
        w.write_pcapng_block(EnhancedPacketBlock {
            interface_id: *iface,
            timestamp: Duration::from_nanos(*ts),
            original_len: data.len() as u32,
            data: Cow::Borrowed(data),
            options: vec![],
        })
        .unwrap();
    }
}

/// A packet read back: its interface's link type, ts in ns, data.
type Packet = (DataLink, u64, Vec<u8>);

/// Every packet of a PCAPNG, and the interfaces' link types.
fn read_pcapng(path: &Path) -> (Vec<Packet>, Vec<DataLink>) {
    let mut r = PcapNgReader::new(std::fs::File::open(path).unwrap()).unwrap();
    let mut out = Vec::new();
    while let Some(b) = r.next_block() {
        let (block, state) = b.unwrap();
        if let Block::EnhancedPacket(p) = block {
            let lt = state.interfaces()[p.interface_id as usize].linktype;
            out.push((lt, p.timestamp.as_nanos() as u64, p.data.to_vec()));
        }
    }
    let lts = r.interfaces().iter().map(|i| i.linktype).collect();
    (out, lts)
}

#[test]
fn write_allowed_keeps_each_interfaces_link_type() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("two_ifaces.pcapng");
    // Interface 0 raw IP (the Ethernet header stripped), interface 1
    // Ethernet; benign DNS-like UDP from a few sources, interleaved.
    let mut packets = Vec::new();
    for i in 0..40u64 {
        let f = udp(
            v4(198, 18, 2, (i % 5) as u8 + 1),
            v4(198, 19, 0, 53),
            40000,
            53,
            b"q",
        );
        let ts = 1_700_000_000_000_000_000 + i * 1_000_123;
        if i % 3 == 0 {
            packets.push((0, ts, f[14..].to_vec()));
        } else {
            packets.push((1, ts, f));
        }
    }
    write_pcapng(
        &input,
        &[
            (DataLink::RAW, InterfaceTsResolution::MICRO),
            (DataLink::ETHERNET, InterfaceTsResolution::NANO),
        ],
        &packets,
    );
    let out = dir.path().join("fwd.pcapng");
    let (code, stdout, stderr, _, verdicts) = analyze_cli(
        &input,
        &["--write-allowed", out.to_str().unwrap(), "--shards", "2"],
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("forwarded packets 40 ->"), "{stdout}");
    assert_eq!(
        verdicts.iter().filter(|l| l.ends_with("\tallow")).count(),
        40
    );
    let (got, lts) = read_pcapng(&out);
    assert_eq!(lts, vec![DataLink::RAW, DataLink::ETHERNET]);
    let want: Vec<Packet> = packets
        .iter()
        .map(|(iface, ts, data)| {
            let (lt, ts) = if *iface == 0 {
                (DataLink::RAW, ts - ts % 1000) // microsecond interface
            } else {
                (DataLink::ETHERNET, *ts)
            };
            (lt, ts, data.clone())
        })
        .collect();
    assert_eq!(got, want);
    // And it analyses like the input.
    let (code, stdout, stderr, _, _) = analyze_cli(&out, &["--summary", "json"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(summary(&stdout)["packets"], 40);
}

#[test]
fn a_timestamp_past_2106_is_written_and_the_summary_kept() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("future.pcapng");
    let late = ((1u64 << 32) + 7) * 1_000_000_000 + 123;
    let packets: Vec<(u32, u64, Vec<u8>)> = (0..3)
        .map(|i| {
            let f = udp(v4(198, 18, 3, 1), v4(198, 19, 0, 53), 40000, 53, b"q");
            (0, late + i * 1_000, f)
        })
        .collect();
    write_pcapng(
        &input,
        &[(DataLink::ETHERNET, InterfaceTsResolution::NANO)],
        &packets,
    );
    let out = dir.path().join("fwd.pcapng");
    let (code, stdout, stderr, _, _) = analyze_cli(
        &input,
        &[
            "--write-allowed",
            out.to_str().unwrap(),
            "--summary",
            "json",
        ],
    );
    assert_eq!(code, 0, "{stderr}");
    let v = summary(&stdout);
    assert_eq!(v["packets"], 3);
    assert_eq!(v["allowed_written"], 3);
    let (got, _) = read_pcapng(&out);
    let ts: Vec<u64> = got.iter().map(|p| p.1).collect();
    assert_eq!(ts, vec![late, late + 1_000, late + 2_000]);
}

#[test]
fn a_late_write_error_keeps_the_summary() {
    if !Path::new("/dev/full").exists() {
        eprintln!("no /dev/full here: skipped");
        return;
    }
    let (code, stdout, stderr, alerts, _) = analyze_cli(
        &fixture("mixed.pcap"),
        &["--write-allowed", "/dev/full", "--summary", "json"],
    );
    assert_eq!(code, 2, "{stderr}");
    let v = summary(&stdout);
    assert_eq!(v["packets"], flowgate_synth::mixed().len() as u64);
    assert!(v["write_allowed_error"].is_string(), "{v}");
    assert!(!alerts.is_empty(), "the alerts were still written");
    let lines = stderr_lines(&stderr);
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(
        lines[0].contains("--write-allowed /dev/full") && lines[0].contains("No space left"),
        "{stderr}"
    );
}
