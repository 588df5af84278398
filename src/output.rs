//! Where decisions go: the EVE JSONL alert log, the optional per-packet
//! verdict log, and the tallies behind the end-of-run summary.

use crate::alert::Event;
use crate::engine::Verdict;
use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

/// Most distinct offenders tallied for the summary; past this, new sources
/// are counted only in the totals (a spoofed flood must not grow memory).
const MAX_OFFENDERS: usize = 65_536;

/// What a shard worker reports after a batch.
pub struct ShardOutput {
    /// Alerts and episode ends, in the order the shard produced them.
    pub events: Vec<Event>,
    /// (pcap_cnt, verdict), if verdict recording is on.
    pub verdicts: Vec<(u64, Verdict)>,
    /// Per-destination counts handed over at a timer tick: the shard, a
    /// time before which every packet was handed to it, and its counts per
    /// epoch (`detect::victim`).
    pub victims: Option<VictimReport>,
}

/// One shard's per-destination counts: (shard, reported up to, per epoch).
pub type VictimReport = (
    usize,
    crate::packet::Ts,
    Vec<(crate::packet::Ts, crate::detect::victim::Partial)>,
);

/// Receives shard output on one thread (the offline collector, the live
/// sink): the one place decisions are written out.
pub trait Collector: Send + 'static {
    /// Takes one report. Called on the collector thread, reports from all
    /// shards interleaved in arrival order; a slow collector backs up the
    /// shards behind it.
    fn collect(&mut self, out: ShardOutput);
}

/// End-of-run summary format on stdout (`--summary`): `text` is a
/// human-readable table, `json` the report as one pretty-printed JSON
/// object, `none` prints nothing.
// Doc comments on the variants would become clap's possible-value help and
// change the `--help` layout; the enum doc above describes them instead.
#[allow(missing_docs)]
#[derive(Copy, Clone, Debug, clap::ValueEnum, PartialEq, Eq, Default)]
pub enum SummaryFormat {
    #[default]
    Text,
    Json,
    None,
}

/// An output file that could not be opened or written; names the file.
#[derive(Debug, thiserror::Error)]
#[error("{}: {source}", path.display())]
pub struct OutputError {
    /// The file.
    pub path: PathBuf,
    /// What the OS said.
    #[source]
    pub source: std::io::Error,
}

impl OutputError {
    fn new(path: &Path, source: std::io::Error) -> OutputError {
        OutputError {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// One source's tally for the top-offenders summary and metric.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Offender {
    /// The source address, as text.
    pub src: String,
    /// Alerts raised against it (episodes started, signature matches).
    pub episodes: u64,
    /// Packets decided against the source, including each episode's first.
    pub packets: u64,
    /// Wire bytes decided against it after each episode's first packet
    /// (alerts do not carry the first packet's length).
    pub bytes: u64,
    /// Rules that fired on it, in first-seen order.
    pub rules: Vec<u32>,
}

/// The one writer of decisions: appends EVE lines to the alert log and
/// lines to the verdict log, tallies offenders, and hands events to the
/// SQLite audit log. The offline collector thread and the live sink each
/// own one ([`Collector`]).
pub struct Recorder {
    alerts: Option<(PathBuf, BufWriter<File>)>,
    verdicts: Option<(PathBuf, BufWriter<File>)>,
    /// Alert events seen (counted with or without an alert file).
    pub alerts_written: u64,
    /// Episode-end events seen.
    pub episodes_ended: u64,
    offenders: HashMap<IpAddr, Offender>,
    /// One bit per packet (by pcap_cnt), set when allowed: kept only when
    /// asked for (`--write-allowed`).
    pub allowed: Option<Vec<u64>>,
    /// First write error; writing stops there and the run reports it.
    pub error: Option<OutputError>,
    /// SQLite audit log, written on its own thread.
    pub audit: Option<crate::audit::AuditSink>,
}

/// Opens for append, creating parent directories.
pub fn open_append(path: &Path) -> std::io::Result<File> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    OpenOptions::new().create(true).append(true).open(path)
}

impl Recorder {
    /// Opens the alert log and the verdict log
    /// (`pcap_cnt<TAB>allow|drop[<TAB>rule]` lines), each for append and
    /// creating parent directories; `None` means no such file. Fails
    /// naming the file.
    pub fn new(alerts: Option<&Path>, verdicts: Option<&Path>) -> Result<Recorder, OutputError> {
        let open = |p: &Path| -> Result<(PathBuf, BufWriter<File>), OutputError> {
            let f = open_append(p).map_err(|e| OutputError::new(p, e))?;
            Ok((p.to_path_buf(), BufWriter::with_capacity(1 << 16, f)))
        };
        Ok(Recorder {
            alerts: alerts.map(open).transpose()?,
            verdicts: verdicts.map(open).transpose()?,
            alerts_written: 0,
            episodes_ended: 0,
            offenders: HashMap::new(),
            allowed: None,
            error: None,
            audit: None,
        })
    }

    /// Flushes every output; returns the first write error of the run (once).
    pub fn flush(&mut self) -> Result<(), OutputError> {
        if let Some(a) = self.audit.as_mut() {
            a.finish();
        }
        for (path, w) in self.alerts.iter_mut().chain(self.verdicts.iter_mut()) {
            w.flush().map_err(|e| OutputError::new(path, e))?;
        }
        match self.error.take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Writes buffered alert lines through to the file.
    pub fn flush_alerts(&mut self) -> Result<(), OutputError> {
        if let Some((path, w)) = self.alerts.as_mut() {
            w.flush().map_err(|e| OutputError::new(path, e))?;
        }
        Ok(())
    }

    /// Reopens the alert log by path (after logrotate moved it away); a
    /// failure keeps writing to the old file.
    pub fn reopen_alerts(&mut self) -> Result<(), OutputError> {
        self.flush_alerts()?;
        if let Some((path, w)) = self.alerts.as_mut() {
            let f = open_append(path).map_err(|e| OutputError::new(path, e))?;
            *w = BufWriter::with_capacity(1 << 16, f);
            // A write error was about the old file.
            self.error = None;
        }
        Ok(())
    }

    /// Top `n` offenders by packets decided against them.
    pub fn top_offenders(&self, n: usize) -> Vec<Offender> {
        let mut v: Vec<Offender> = self.offenders.values().cloned().collect();
        v.sort_by(|a, b| b.packets.cmp(&a.packets).then_with(|| a.src.cmp(&b.src)));
        v.truncate(n);
        v
    }

    fn write_line(&mut self, line: &str, to_alerts: bool) {
        if self.error.is_some() {
            return;
        }
        let target = if to_alerts {
            &mut self.alerts
        } else {
            &mut self.verdicts
        };
        if let Some((path, w)) = target {
            if let Err(e) = w.write_all(line.as_bytes()) {
                self.error = Some(OutputError::new(path, e));
            }
        }
    }

    fn tally(&mut self, src: IpAddr, rule: u32, episodes: u64, packets: u64, bytes: u64) {
        if !self.offenders.contains_key(&src) && self.offenders.len() >= MAX_OFFENDERS {
            return;
        }
        let o = self.offenders.entry(src).or_insert_with(|| Offender {
            src: src.to_string(),
            ..Default::default()
        });
        o.episodes += episodes;
        o.packets += packets;
        o.bytes += bytes;
        if !o.rules.contains(&rule) {
            o.rules.push(rule);
        }
    }
}

impl Collector for Recorder {
    fn collect(&mut self, out: ShardOutput) {
        if let Some(a) = &self.audit {
            a.offer(&out.events);
        }
        for ev in &out.events {
            let mut line = ev.to_eve().to_string();
            line.push('\n');
            self.write_line(&line, true);
            match ev {
                Event::Alert(a) => {
                    self.alerts_written += 1;
                    // The packet that started the episode counts too. A
                    // victim alert names no source to tally.
                    if !a.src.is_unspecified() {
                        self.tally(a.src, a.rule.id, 1, 1, 0);
                    }
                }
                Event::BlockEnd(e) => {
                    self.episodes_ended += 1;
                    self.tally(e.src, e.rule.id, 0, e.packets, e.bytes);
                }
            }
        }
        if let Some(bits) = self.allowed.as_mut() {
            for (idx, v) in &out.verdicts {
                if *v == Verdict::Allow {
                    let (w, b) = ((*idx / 64) as usize, idx % 64);
                    if bits.len() <= w {
                        bits.resize(w + 1, 0);
                    }
                    bits[w] |= 1 << b;
                }
            }
        }
        if !out.verdicts.is_empty() && self.verdicts.is_some() {
            let mut s = String::with_capacity(out.verdicts.len() * 16);
            for (idx, v) in &out.verdicts {
                match v {
                    Verdict::Allow => s.push_str(&format!("{idx}\tallow\n")),
                    Verdict::Drop(r) => s.push_str(&format!("{idx}\tdrop\t{r}\n")),
                }
            }
            self.write_line(&s, false);
        }
    }
}

/// Was packet `idx` allowed, per a bitset filled by `Recorder`?
pub fn is_allowed(bits: &[u64], idx: u64) -> bool {
    bits.get((idx / 64) as usize)
        .is_some_and(|w| w & (1 << (idx % 64)) != 0)
}
