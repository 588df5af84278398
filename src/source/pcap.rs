//! PCAP and PCAPNG files (pcap-file), micro- and nanosecond timestamps.
//!
//! Reading stops at the first record that cannot be read; every packet
//! before it has already been handed over, and the error says where and why.

use crate::packet::{LinkType, Ts};
use pcap_file::pcap::PcapReader;
use pcap_file::pcapng::{Block, PcapNgReader};
use std::fs::File;
use std::io::{BufReader, Read};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::time::Duration;

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
}

impl PcapError {
    /// Packets were read before this error (the input was partly usable).
    pub fn is_partial(&self) -> bool {
        matches!(
            self,
            PcapError::Truncated { .. } | PcapError::Corrupt { .. }
        )
    }
}

/// One record as read from the file.
pub struct Record<'a> {
    /// Record time, ns since the epoch (micro- and nanosecond files alike).
    pub ts: Ts,
    /// Link type of the file (PCAP) or of the record's interface (PCAPNG;
    /// `Unsupported` for a type we cannot decode).
    pub link: LinkType,
    /// The captured bytes, borrowed until the callback returns.
    pub data: &'a [u8],
    /// Length on the wire as recorded (PCAPNG: never below `data.len()`).
    pub wire_len: u32,
}

enum Reader {
    Pcap(PcapReader<BufReader<File>>, LinkType),
    Ng(Box<PcapNgReader<BufReader<File>>>),
}

/// An open capture, read front to back once with
/// [`for_each`](Self::for_each) or [`try_for_each`](Self::try_for_each).
pub struct PcapSource {
    path: PathBuf,
    reader: Reader,
    /// Size of the file, for progress reporting.
    pub file_len: u64,
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

impl PcapSource {
    /// Opens a PCAP or PCAPNG file, told apart by magic number. Fails on a
    /// missing, empty or non-capture file, a bad header, or a classic PCAP
    /// of a link type we cannot decode.
    pub fn open(path: &Path) -> Result<PcapSource, PcapError> {
        let p = path.to_path_buf();
        let open_err = |source| PcapError::Open {
            path: p.clone(),
            source,
        };
        let mut file = File::open(path).map_err(open_err)?;
        let file_len = file.metadata().map_err(open_err)?.len();
        if file_len == 0 {
            return Err(PcapError::Empty { path: p });
        }
        let mut magic = [0u8; 4];
        let n = file.read(&mut magic).map_err(open_err)?;
        let f = File::open(path).map_err(open_err)?;
        let buf = BufReader::with_capacity(1 << 20, f);
        let header_err = |e: &dyn std::fmt::Display| PcapError::Header {
            path: p.clone(),
            msg: e.to_string(),
        };
        let reader = if n == 4 && PCAP_MAGICS.contains(&magic) {
            let r = PcapReader::new(buf).map_err(|e| header_err(&e))?;
            let lt: u32 = r.header().datalink.into();
            let link = LinkType::from_linktype(lt).ok_or(PcapError::UnsupportedLink {
                path: p.clone(),
                linktype: lt,
            })?;
            Reader::Pcap(r, link)
        } else if n == 4 && magic == PCAPNG_MAGIC {
            Reader::Ng(Box::new(
                PcapNgReader::new(buf).map_err(|e| header_err(&e))?,
            ))
        } else {
            return Err(PcapError::NotPcap {
                path: p,
                magic: magic[..n]
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect::<Vec<_>>()
                    .join(" "),
            });
        };
        Ok(PcapSource {
            path: p,
            reader,
            file_len,
        })
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
        let mut packets = 0u64;
        match &mut self.reader {
            Reader::Pcap(r, link) => {
                let link = *link;
                while let Some(res) = r.next_packet() {
                    let pkt = res.map_err(|e| read_error(&self.path, packets, &e))?;
                    let flow = f(Record {
                        ts: ts_of(pkt.timestamp()),
                        link,
                        data: pkt.data(),
                        wire_len: pkt.orig_len(),
                    });
                    packets += 1;
                    if flow.is_break() {
                        break;
                    }
                }
            }
            Reader::Ng(r) => {
                let mut last_ts = 0;
                while let Some(res) = r.next_block() {
                    let (block, state) = res.map_err(|e| read_error(&self.path, packets, &e))?;
                    let (ts, iface, data, wire_len) = match &block {
                        Block::EnhancedPacket(p) => (
                            ts_of(p.timestamp),
                            p.interface_id as usize,
                            &p.data,
                            p.original_len,
                        ),
                        // No timestamp in a simple packet block: keep time still.
                        Block::SimplePacket(p) => (last_ts, 0, &p.data, p.original_len),
                        _ => continue,
                    };
                    last_ts = ts;
                    let lt = state.interfaces().get(iface).map(|i| u32::from(i.linktype));
                    let link = lt
                        .and_then(LinkType::from_linktype)
                        .unwrap_or(LinkType::Unsupported);
                    let flow = f(Record {
                        ts,
                        link,
                        data,
                        wire_len: wire_len.max(data.len() as u32),
                    });
                    packets += 1;
                    if flow.is_break() {
                        break;
                    }
                }
            }
        }
        Ok(packets)
    }
}

fn read_error(path: &Path, packets: u64, e: &(dyn std::error::Error + 'static)) -> PcapError {
    // pcap-file reports a record cut off by end of file as UnexpectedEof.
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::UnexpectedEof {
                return PcapError::Truncated {
                    path: path.to_path_buf(),
                    packets,
                };
            }
        }
        cur = err.source();
    }
    PcapError::Corrupt {
        path: path.to_path_buf(),
        packets,
        msg: e.to_string(),
    }
}
