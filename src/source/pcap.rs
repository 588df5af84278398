//! PCAP and PCAPNG captures, micro- and nanosecond timestamps, read as a
//! stream from a file, a FIFO or standard input (`-`).
//!
//! Nothing seeks. A regular file is mapped into memory (so shard workers
//! can be handed offsets into it, not copies); anything else is read as a
//! stream into a buffer.
//! Records are framed here and parsed with pcap-file: a record may be as
//! large as [`MAX_RECORD`], whatever the snaplen in the file header says
//! (snaplen 0, as libpcap allows, means no limit; it is not enforced at all).
//!
//! Reading stops at the first record that cannot be read; every packet
//! before it has already been handed over, and the error says where and why.

use crate::packet::{LinkType, Ts};
use pcap_file::pcap::{PcapPacket, PcapParser, PcapTsResolution};
use pcap_file::pcapng::{Block, PcapNgParseError, PcapNgParser};
use pcap_file::Endianness;
use std::fs::File;
use std::io::Read;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// The largest record read, header included (PCAP: the 16-byte record
/// header and the packet; PCAPNG: the whole block). A record claiming more
/// stops reading with [`PcapError::TooLarge`]. 256 MiB is above every
/// per-link-type snaplen libpcap knows (the largest, D-Bus, is 128 MiB)
/// while bounding the memory one lying length field can cost.
pub const MAX_RECORD: usize = 256 << 20;

/// The path that means standard input.
pub const STDIN: &str = "-";

/// How standard input is named in messages and summaries.
pub const STDIN_NAME: &str = "<stdin>";

/// Why a capture cannot be read, or stopped being readable; always names
/// the file. Only `Truncated` and `Corrupt` come after packets were handed
/// over ([`PcapError::is_partial`]).
#[derive(Debug, thiserror::Error)]
pub enum PcapError {
    /// The file could not be opened, or its size read.
    #[error("{path}: {source}")]
    Open {
        /// The capture.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file is empty.
    #[error("{path}: empty file, not a PCAP or PCAPNG capture")]
    Empty {
        /// The capture.
        path: PathBuf,
    },
    /// The file does not start with a PCAP or PCAPNG magic number.
    #[error("{path}: not a PCAP or PCAPNG file (starts with {magic})")]
    NotPcap {
        /// The file.
        path: PathBuf,
        /// Its first bytes (up to 4), in hex.
        magic: String,
    },
    /// A classic PCAP of a link type we cannot decode. (A PCAPNG interface
    /// of such a type is read; its frames count as malformed.)
    #[error("{path}: link type {linktype} is not supported (supported: Ethernet, Linux cooked SLL/SLL2, raw IP, BSD loopback)")]
    UnsupportedLink {
        /// The capture.
        path: PathBuf,
        /// The file's LINKTYPE_* number.
        linktype: u32,
    },
    /// The file header is invalid.
    #[error("{path}: bad file header: {msg}")]
    Header {
        /// The capture.
        path: PathBuf,
        /// The reader's message.
        msg: String,
    },
    /// The last record is cut off (the capture was cut short).
    #[error("{path}: truncated after packet {packets}: the last record is incomplete (capture cut short?); the {packets} packets before it were processed")]
    Truncated {
        /// The capture.
        path: PathBuf,
        /// Records read and handed over before it.
        packets: u64,
    },
    /// A record could not be parsed.
    #[error("{path}: corrupt record after packet {packets}: {msg}; the {packets} packets before it were processed")]
    Corrupt {
        /// The capture.
        path: PathBuf,
        /// Records read and handed over before it.
        packets: u64,
        /// The reader's message.
        msg: String,
    },
    /// A record claims more than [`MAX_RECORD`] bytes.
    #[error("{path}: record of {len} bytes after packet {packets} exceeds the limit of {limit} bytes per record (corrupt length field?); the {packets} packets before it were processed")]
    TooLarge {
        /// The capture.
        path: PathBuf,
        /// Packets handed over before it.
        packets: u64,
        /// The length the record claims.
        len: u64,
        /// [`MAX_RECORD`].
        limit: usize,
    },
    /// Reading failed part way (an I/O error, not bad data).
    #[error("{path}: read error after packet {packets}: {source}; the {packets} packets before it were processed")]
    Read {
        /// The capture.
        path: PathBuf,
        /// Packets handed over before it.
        packets: u64,
        /// The I/O error.
        source: std::io::Error,
    },
}

impl PcapError {
    /// Packets were read before this error (the input was partly usable).
    pub fn is_partial(&self) -> bool {
        matches!(
            self,
            PcapError::Truncated { .. }
                | PcapError::Corrupt { .. }
                | PcapError::TooLarge { .. }
                | PcapError::Read { .. }
        )
    }
}

/// One record as read from the capture.
pub struct Record<'a> {
    /// Record time, ns since the epoch (micro- and nanosecond files alike).
    pub ts: Ts,
    /// Link type of the file (PCAP) or of the record's interface (PCAPNG;
    /// `Unsupported` for a type we cannot decode).
    pub link: LinkType,
    /// The capture's LINKTYPE_* number for this packet (also when `link`
    /// is `Unsupported`), to write it back out unchanged.
    pub linktype: u32,
    /// The capture interface: 0 for PCAP; for PCAPNG the interface's
    /// position in the file, numbered on across sections.
    pub interface: u32,
    /// The captured bytes, borrowed until the callback returns.
    pub data: &'a [u8],
    /// Length on the wire as recorded (PCAPNG: never below `data.len()`).
    pub wire_len: u32,
}

/// Read size, and the buffer a stream of ordinary packets needs.
const CHUNK: usize = 1 << 20;

/// A capture file mapped into memory, shared by the threads that read
/// records from it (`Pipeline` hands shard workers offsets into it instead
/// of copies).
pub type Mapping = Arc<memmap2::Mmap>;

/// Where the bytes are: a growable read buffer over any `Read` (pipes,
/// FIFOs, standard input), or the whole file mapped (regular files).
enum Bytes {
    Buf(Vec<u8>, Box<dyn Read>),
    Map(Mapping),
}

/// The input: `fill(n)` makes the next `n` bytes contiguous (or says how
/// many there are before the input ends). A mapped file is all there from
/// the start; nothing is copied.
struct Input {
    bytes: Bytes,
    start: usize,
    end: usize,
    eof: bool,
}

impl Input {
    fn new(inner: Box<dyn Read>) -> Input {
        Input {
            bytes: Bytes::Buf(vec![0; CHUNK], inner),
            start: 0,
            end: 0,
            eof: false,
        }
    }

    fn mapped(map: Mapping) -> Input {
        Input {
            end: map.len(),
            bytes: Bytes::Map(map),
            start: 0,
            eof: true,
        }
    }

    fn available(&self) -> &[u8] {
        match &self.bytes {
            Bytes::Buf(b, _) => &b[self.start..self.end],
            Bytes::Map(m) => &m[self.start..self.end],
        }
    }

    /// Reads until `n` bytes are buffered or the input ends; returns how
    /// many are buffered. The buffer grows at most by doubling, so a
    /// length field that lies costs no more than twice the data behind it.
    fn fill(&mut self, n: usize) -> std::io::Result<usize> {
        while self.end - self.start < n && !self.eof {
            let Bytes::Buf(buf, inner) = &mut self.bytes else {
                break;
            };
            if self.end == buf.len() {
                if self.start > 0 {
                    buf.copy_within(self.start..self.end, 0);
                    self.end -= self.start;
                    self.start = 0;
                } else {
                    let grown = n.min(buf.len().saturating_mul(2));
                    buf.resize(grown, 0);
                }
            }
            match inner.read(&mut buf[self.end..]) {
                Ok(0) => self.eof = true,
                Ok(k) => self.end += k,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(self.end - self.start)
    }

    fn consume(&mut self, n: usize) {
        self.start = (self.start + n).min(self.end);
        if let Bytes::Buf(buf, _) = &mut self.bytes {
            if self.start == self.end {
                self.start = 0;
                self.end = 0;
                // Give back what one huge record took.
                if buf.len() > 4 * CHUNK {
                    *buf = vec![0; CHUNK];
                }
            }
        }
    }
}

/// Why the next record could not be framed.
enum FrameError {
    /// The input ended inside the record.
    End,
    TooLarge(u64),
    Io(std::io::Error),
}

/// Buffers the next record: `head` bytes are read first and `len_of` says
/// from them how long the whole record is. `Ok(0)` at a clean end of input.
fn frame(
    input: &mut Input,
    head: usize,
    len_of: impl Fn(&[u8]) -> u64,
) -> Result<usize, FrameError> {
    let n = input.fill(head).map_err(FrameError::Io)?;
    if n == 0 {
        return Ok(0);
    }
    if n < head {
        return Err(FrameError::End);
    }
    let len = len_of(&input.available()[..head]);
    if len > MAX_RECORD as u64 {
        return Err(FrameError::TooLarge(len));
    }
    // Within MAX_RECORD, so it fits a usize.
    let len = (len as usize).max(head);
    if input.fill(len).map_err(FrameError::Io)? < len {
        return Err(FrameError::End);
    }
    Ok(len)
}

fn u32_at(b: &[u8], at: usize, e: Endianness) -> u64 {
    let mut w = [0u8; 4];
    if let Some(s) = b.get(at..at + 4) {
        w.copy_from_slice(s);
    }
    u64::from(match e {
        Endianness::Big => u32::from_be_bytes(w),
        Endianness::Little => u32::from_le_bytes(w),
    })
}

/// PCAP record: 16-byte header whose third word is the captured length.
fn pcap_record_len(e: Endianness) -> impl Fn(&[u8]) -> u64 {
    move |h| 16 + u32_at(h, 8, e)
}

const SHB_TYPE: u64 = 0x0A0D_0D0A;

/// PCAPNG block: type, total length; a section header's byte order comes
/// from its own magic. Lengths the parser will refuse (short, unknown
/// magic) frame as the 12 bytes it needs to say why.
fn ng_block_len(section: Endianness) -> impl Fn(&[u8]) -> u64 {
    move |h| {
        let e = if u32_at(h, 0, Endianness::Big) == SHB_TYPE {
            match u32_at(h, 8, Endianness::Big) {
                0x1A2B_3C4D => Endianness::Big,
                0x4D3C_2B1A => Endianness::Little,
                _ => return 12,
            }
        } else {
            section
        };
        u32_at(h, 4, e).max(12)
    }
}

/// An error and its sources, one line.
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(err) = cur {
        let m = err.to_string();
        if !s.ends_with(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        cur = err.source();
    }
    s
}

enum Format {
    Pcap {
        parser: PcapParser,
        link: LinkType,
        linktype: u32,
    },
    Ng {
        parser: Box<PcapNgParser>,
        /// Interfaces of the sections before this one.
        base: u32,
        /// Interfaces of this section so far.
        in_section: u32,
        /// A simple packet block has no timestamp: time stands still.
        last_ts: Ts,
    },
}

/// An open capture, read front to back once with
/// [`for_each`](Self::for_each) or [`try_for_each`](Self::try_for_each).
pub struct PcapSource {
    /// Names the input in messages (`<stdin>` for `-`).
    name: PathBuf,
    input: Input,
    format: Format,
    /// Size of the input when it is a regular file (for progress); `None`
    /// for pipes, FIFOs and standard input.
    pub file_len: Option<u64>,
}

const PCAP_MAGICS: [[u8; 4]; 4] = [
    [0xd4, 0xc3, 0xb2, 0xa1],
    [0xa1, 0xb2, 0xc3, 0xd4],
    [0x4d, 0x3c, 0xb2, 0xa1],
    [0xa1, 0xb2, 0x3c, 0x4d],
];
const PCAPNG_MAGIC: [u8; 4] = [0x0a, 0x0d, 0x0d, 0x0a];

fn ts_of(d: Duration) -> Ts {
    d.as_nanos().min(u64::MAX as u128) as u64
}

/// `path` is `-`, standard input.
pub fn is_stdin(path: &Path) -> bool {
    path == Path::new(STDIN)
}

/// How `path` is named in messages.
pub fn display_name(path: &Path) -> PathBuf {
    if is_stdin(path) {
        PathBuf::from(STDIN_NAME)
    } else {
        path.to_path_buf()
    }
}

/// How far ahead of the record walk a mapped capture is asked into cache.
const READ_AHEAD: usize = 2048;

/// Maps a regular file read-only.
fn map(file: &File) -> std::io::Result<Mapping> {
    // SAFETY: the mapping is read-only and flowgate never writes the
    // capture it reads (`--write-allowed` refuses the input as its output),
    // so the bytes do not change under a borrow. What no code here can rule
    // out is another process truncating the file during the analysis: the
    // kernel then kills the process with SIGBUS when it touches the lost
    // pages. The README says so; `analyze - < capture` reads through a pipe
    // and copies instead. A file still being appended to is fine: only the
    // length at open is mapped.
    let m = unsafe { memmap2::Mmap::map(file)? };
    // Records are read front to back: read ahead aggressively. Advice
    // only; a kernel that ignores it reads the file all the same.
    let _ = m.advise(memmap2::Advice::Sequential);
    Ok(Arc::new(m))
}

impl PcapSource {
    /// Opens a capture file, FIFO or, for `-`, standard input, and reads
    /// its file header.
    pub fn open(path: &Path) -> Result<PcapSource, PcapError> {
        let p = display_name(path);
        let open_err = |source| PcapError::Open {
            path: p.clone(),
            source,
        };
        let (mut input, file_len) = if is_stdin(path) {
            (Input::new(Box::new(std::io::stdin())), None)
        } else {
            let file = File::open(path).map_err(open_err)?;
            let meta = file.metadata().map_err(open_err)?;
            if meta.is_file() && meta.len() > 0 {
                (
                    Input::mapped(map(&file).map_err(open_err)?),
                    Some(meta.len()),
                )
            } else {
                // A FIFO or a device (or an empty file, for its error).
                let len = meta.is_file().then_some(meta.len());
                (Input::new(Box::new(file)), len)
            }
        };
        let n = input.fill(4).map_err(open_err)?.min(4);
        if n == 0 {
            return Err(PcapError::Empty { path: p });
        }
        let header_err = |msg: String| PcapError::Header {
            path: p.clone(),
            msg,
        };
        let magic = &input.available()[..n];
        let format = if PCAP_MAGICS.iter().any(|m| m == magic) {
            let got = input.fill(24).map_err(open_err)?;
            if got < 24 {
                return Err(header_err(format!(
                    "the input ends after {got} bytes, inside the 24-byte PCAP file header"
                )));
            }
            let (_, parser) = PcapParser::new(&input.available()[..24])
                .map_err(|e| header_err(error_chain(&e)))?;
            input.consume(24);
            let linktype: u32 = parser.header().datalink.into();
            let link = LinkType::from_linktype(linktype).ok_or(PcapError::UnsupportedLink {
                path: p.clone(),
                linktype,
            })?;
            Format::Pcap {
                parser,
                link,
                linktype,
            }
        } else if magic == PCAPNG_MAGIC {
            let len = match frame(&mut input, 12, ng_block_len(Endianness::Big)) {
                Ok(len) => len,
                Err(FrameError::Io(e)) => return Err(open_err(e)),
                Err(FrameError::End) => {
                    return Err(header_err(
                        "the input ends inside the PCAPNG section header block".into(),
                    ))
                }
                Err(FrameError::TooLarge(len)) => {
                    return Err(header_err(format!(
                        "section header block of {len} bytes exceeds the limit of {MAX_RECORD} bytes per record"
                    )))
                }
            };
            let (_, parser) = PcapNgParser::new(&input.available()[..len])
                .map_err(|e| header_err(error_chain(&e)))?;
            input.consume(len);
            Format::Ng {
                parser: Box::new(parser),
                base: 0,
                in_section: 0,
                last_ts: 0,
            }
        } else {
            return Err(PcapError::NotPcap {
                path: p,
                magic: magic
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect::<Vec<_>>()
                    .join(" "),
            });
        };
        Ok(PcapSource {
            name: p,
            input,
            format,
            file_len,
        })
    }

    /// How the input is named in messages (`<stdin>` for `-`).
    pub fn name(&self) -> &Path {
        &self.name
    }

    /// The mapped file, when the input is a regular file: every record's
    /// `data` lies inside it, so readers on other threads can be handed
    /// offsets instead of copies. `None` for pipes, FIFOs, standard input.
    pub fn mapping(&self) -> Option<Mapping> {
        match &self.input.bytes {
            Bytes::Map(m) => Some(m.clone()),
            Bytes::Buf(..) => None,
        }
    }

    /// Hands every record to `f`, in file order. Returns the packet count,
    /// or the error that stopped reading (after the packets before it).
    pub fn for_each(&mut self, mut f: impl FnMut(Record<'_>)) -> Result<u64, PcapError> {
        self.try_for_each(|r| {
            f(r);
            ControlFlow::Continue(())
        })
    }

    /// As `for_each`, stopping early when `f` says `Break`.
    pub fn try_for_each(
        &mut self,
        mut f: impl FnMut(Record<'_>) -> ControlFlow<()>,
    ) -> Result<u64, PcapError> {
        let PcapSource {
            name,
            input,
            format,
            ..
        } = self;
        let mut packets = 0u64;
        let frame_err = |e: FrameError, packets: u64| match e {
            FrameError::End => PcapError::Truncated {
                path: name.clone(),
                packets,
            },
            FrameError::TooLarge(len) => PcapError::TooLarge {
                path: name.clone(),
                packets,
                len,
                limit: MAX_RECORD,
            },
            FrameError::Io(source) => PcapError::Read {
                path: name.clone(),
                packets,
                source,
            },
        };
        let corrupt = |msg: String, packets: u64| PcapError::Corrupt {
            path: name.clone(),
            packets,
            msg,
        };
        match format {
            Format::Pcap {
                parser,
                link,
                linktype,
            } => {
                let header = parser.header();
                if let Bytes::Map(map) = &input.bytes {
                    // The whole file is in memory: walk the record headers
                    // in place. The first record this does not take (the
                    // end, a cut-off or invalid record) is left to the
                    // general loop below, which reads it the same way and
                    // says what is wrong with it.
                    let map = map.clone();
                    let endian = header.endianness;
                    let micro = header.ts_resolution == PcapTsResolution::MicroSecond;
                    // Each record header is the first read of new memory:
                    // ask for the bytes ahead of the walk, across the page
                    // boundaries the hardware prefetcher stops at.
                    let mut ahead = input.start;
                    loop {
                        while ahead < input.start + READ_AHEAD {
                            crate::prefetch::read(&map, ahead);
                            ahead += 64;
                        }
                        let rest = map.get(input.start..input.end).unwrap_or(&[]);
                        let Some(h) = rest.first_chunk::<16>() else {
                            break;
                        };
                        let word = |i: usize| u32_at(h, i, endian);
                        let (sec, frac, incl, orig) = (word(0), word(4), word(8), word(12));
                        let len = 16 + incl as usize;
                        let frac_ok = frac < if micro { 1_000_000 } else { 1_000_000_000 };
                        if !frac_ok || len > MAX_RECORD || len > rest.len() {
                            break;
                        }
                        let ns = if micro { frac * 1000 } else { frac };
                        let flow = f(Record {
                            ts: sec * 1_000_000_000 + ns,
                            link: *link,
                            linktype: *linktype,
                            interface: 0,
                            data: &rest[16..len],
                            wire_len: orig as u32,
                        });
                        input.start += len;
                        packets += 1;
                        if flow.is_break() {
                            return Ok(packets);
                        }
                    }
                }
                let record_len = pcap_record_len(header.endianness);
                loop {
                    let len = match frame(input, 16, &record_len) {
                        Ok(0) => break,
                        Ok(len) => len,
                        Err(e) => return Err(frame_err(e, packets)),
                    };
                    let bytes = &input.available()[..len];
                    let (_, raw) = parser
                        .next_raw_packet(bytes)
                        .map_err(|e| corrupt(error_chain(&e), packets))?;
                    // No snaplen check: a record is read whole up to
                    // MAX_RECORD (libpcap reads snaplen 0 as no limit).
                    let pkt = PcapPacket::try_from_raw_packet(raw, header.ts_resolution, u32::MAX)
                        .map_err(|e| corrupt(error_chain(&e), packets))?;
                    let flow = f(Record {
                        ts: ts_of(pkt.timestamp()),
                        link: *link,
                        linktype: *linktype,
                        interface: 0,
                        data: pkt.data(),
                        wire_len: pkt.orig_len(),
                    });
                    drop(pkt);
                    input.consume(len);
                    packets += 1;
                    if flow.is_break() {
                        break;
                    }
                }
            }
            Format::Ng {
                parser,
                base,
                in_section,
                last_ts,
            } => loop {
                let len = match frame(input, 12, ng_block_len(parser.section().endianness)) {
                    Ok(0) => break,
                    Ok(len) => len,
                    Err(e) => return Err(frame_err(e, packets)),
                };
                let bytes = &input.available()[..len];
                let block = match parser.next_block(bytes) {
                    Ok((_, block)) => block,
                    // Cannot happen once framed; say so rather than guess.
                    Err(PcapNgParseError::IncompleteBuffer(need, got)) => {
                        return Err(corrupt(
                            format!("block of {got} bytes needs {need}"),
                            packets,
                        ))
                    }
                    Err(e) => return Err(corrupt(error_chain(&e), packets)),
                };
                let (ts, iface, data, wire_len) = match &block {
                    Block::EnhancedPacket(p) => {
                        (ts_of(p.timestamp), p.interface_id, &p.data, p.original_len)
                    }
                    // No timestamp in a simple packet block: keep time still.
                    Block::SimplePacket(p) => (*last_ts, 0, &p.data, p.original_len),
                    Block::SectionHeader(_) => {
                        *base = base.saturating_add(*in_section);
                        *in_section = 0;
                        drop(block);
                        input.consume(len);
                        continue;
                    }
                    Block::InterfaceDescription(_) => {
                        *in_section = in_section.saturating_add(1);
                        drop(block);
                        input.consume(len);
                        continue;
                    }
                    _ => {
                        drop(block);
                        input.consume(len);
                        continue;
                    }
                };
                *last_ts = ts;
                let linktype = parser
                    .interfaces()
                    .get(iface as usize)
                    .map(|i| u32::from(i.linktype));
                let link = linktype
                    .and_then(LinkType::from_linktype)
                    .unwrap_or(LinkType::Unsupported);
                let flow = f(Record {
                    ts,
                    link,
                    linktype: linktype.unwrap_or(u32::MAX),
                    interface: base.saturating_add(iface),
                    data,
                    wire_len: wire_len.max(data.len() as u32),
                });
                drop(block);
                input.consume(len);
                packets += 1;
                if flow.is_break() {
                    break;
                }
            },
        }
        Ok(packets)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader that hands out at most `step` bytes per call, like a pipe.
    struct Trickle(Vec<u8>, usize, usize);
    impl Read for Trickle {
        fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
            let n = out.len().min(self.2).min(self.0.len() - self.1);
            out[..n].copy_from_slice(&self.0[self.1..self.1 + n]);
            self.1 += n;
            Ok(n)
        }
    }

    #[test]
    fn fill_grows_by_doubling_and_frames_across_short_reads() {
        let data: Vec<u8> = (0..5 * CHUNK).map(|i| i as u8).collect();
        let mut input = Input::new(Box::new(Trickle(data.clone(), 0, 1000)));
        assert!(input.fill(10).unwrap() >= 10);
        input.consume(7);
        let want = 3 * CHUNK + 5;
        assert!(input.fill(want).unwrap() >= want);
        assert_eq!(&input.available()[..want], &data[7..7 + want]);
        input.consume(want);
        // Asking past the end returns what there is.
        let rest = data.len() - 7 - want;
        assert_eq!(input.fill(10 * CHUNK).unwrap(), rest);
        assert_eq!(input.available(), &data[7 + want..]);
    }

    #[test]
    fn error_chain_joins_sources_once() {
        let io = std::io::Error::other("disk on fire");
        let e = pcap_file::pcap::PcapWriteError::Io(io);
        assert_eq!(
            error_chain(&e),
            "I/O error while writing the pcap: disk on fire"
        );
    }
}
