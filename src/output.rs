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
    alerts: Option<AlertLog>,
    verdicts: Option<(PathBuf, BufWriter<File>)>,
    /// Alert events seen (counted with or without an alert file).
    pub alerts_written: u64,
    /// Episode-end events seen.
    pub episodes_ended: u64,
    offenders: HashMap<IpAddr, Offender>,
    /// One bit per packet (by pcap_cnt), set when allowed: kept only when
    /// asked for (`--write-allowed`).
    pub allowed: Option<Vec<u64>>,
    /// First write error, reported at the end of the run. Verdict lines
    /// stop there; alert lines are retried (their losses counted in
    /// `alert_faults`).
    pub error: Option<OutputError>,
    /// SQLite audit log, written on its own thread.
    pub audit: Option<crate::audit::AuditSink>,
    /// What went wrong with the alert log, and how often.
    pub alert_faults: AlertLogFaults,
}

/// Alert-log faults a run survived (live: the disk filled up, the file was
/// deleted); published as metrics by the live sink.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AlertLogFaults {
    /// Writes that failed (each loses the lines of that write).
    pub write_errors: u64,
    /// Alert-log lines not written because of them.
    pub lines_lost: u64,
    /// Times the file was found removed or replaced and reopened by path.
    pub reopened: u64,
}

/// Buffered alert-log lines not written through yet: past this they are
/// written out even before the next flush.
const ALERT_BUFFER: usize = 1 << 16;

/// The alert log: lines gathered and written through on flush. A write
/// that fails (disk full) loses that write's lines, counted, without
/// leaving a partial line behind where it can help it, and the next flush
/// tries again: a full disk is logged once when it starts failing and once
/// when it works again, never per line. The file is reopened by path if it
/// was removed or replaced while open ([`Recorder::check_alert_path`]).
struct AlertLog {
    path: PathBuf,
    file: File,
    /// Device and inode of the open file.
    id: (u64, u64),
    buf: Vec<u8>,
    /// Lines in `buf`.
    lines: u64,
    /// A failed write left a partial line the truncation could not take
    /// back: start the next write on a new line.
    torn: bool,
    /// The error of the failure in progress, if writes are failing.
    failing: Option<std::io::ErrorKind>,
    /// Lines lost since writes started failing (for the recovery message).
    lost_in_episode: u64,
}

fn file_id(f: &File) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    f.metadata().map(|m| (m.dev(), m.ino())).unwrap_or((0, 0))
}

impl AlertLog {
    fn open(path: &Path) -> Result<AlertLog, OutputError> {
        let file = open_append(path).map_err(|e| OutputError::new(path, e))?;
        Ok(AlertLog {
            path: path.to_path_buf(),
            id: file_id(&file),
            file,
            buf: Vec::with_capacity(ALERT_BUFFER),
            lines: 0,
            torn: false,
            failing: None,
            lost_in_episode: 0,
        })
    }

    /// Writes the buffered lines through; on failure they are lost
    /// (counted in `faults`) and the error returned.
    fn write_out(&mut self, faults: &mut AlertLogFaults) -> Result<(), OutputError> {
        if self.buf.is_empty() {
            return Ok(());
        }
        if self.torn {
            match self.file.write(b"\n") {
                Ok(1) => self.torn = false,
                Ok(_) => {}
                Err(e) => return Err(self.failed(0, e, faults)),
            }
        }
        let mut done = 0;
        while done < self.buf.len() {
            match self.file.write(&self.buf[done..]) {
                Ok(0) => {
                    let e = std::io::Error::from(std::io::ErrorKind::WriteZero);
                    return Err(self.failed(done, e, faults));
                }
                Ok(n) => done += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(self.failed(done, e, faults)),
            }
        }
        if let Some(kind) = self.failing.take() {
            tracing::warn!(
                "alert log {}: writing again after {kind}; {} line(s) were lost meanwhile",
                self.path.display(),
                self.lost_in_episode
            );
            self.lost_in_episode = 0;
        }
        self.buf.clear();
        self.lines = 0;
        Ok(())
    }

    /// A write failed after `done` bytes of `buf`: takes back a partial
    /// line, counts what is lost, logs the first failure of an episode.
    fn failed(
        &mut self,
        done: usize,
        e: std::io::Error,
        faults: &mut AlertLogFaults,
    ) -> OutputError {
        let whole = self.buf[..done]
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |i| i + 1);
        let partial = (done - whole) as u64;
        if partial > 0 {
            // Cut the partial line off, so the log holds whole lines only.
            let cut = self
                .file
                .metadata()
                .ok()
                .filter(|m| m.len() >= partial)
                .is_some_and(|m| self.file.set_len(m.len() - partial).is_ok());
            self.torn = !cut;
        }
        let written = self.buf[..whole].iter().filter(|&&b| b == b'\n').count() as u64;
        let lost = self.lines - written;
        faults.write_errors += 1;
        faults.lines_lost += lost;
        self.lost_in_episode += lost;
        if self.failing.is_none() {
            tracing::error!(
                "alert log {}: {e}; alerts are still counted (flowgate_alert_lines_lost_total) \
                 and writing is retried; logged once until it works again",
                self.path.display()
            );
            self.failing = Some(e.kind());
        }
        self.buf.clear();
        self.lines = 0;
        OutputError::new(&self.path, e)
    }

    /// The path no longer names the open file (deleted, or replaced):
    /// reopen it by path. Returns whether it did.
    fn check_path(&mut self, faults: &mut AlertLogFaults) -> bool {
        use std::os::unix::fs::MetadataExt;
        let now = std::fs::metadata(&self.path).map(|m| (m.dev(), m.ino()));
        if now.as_ref().is_ok_and(|id| *id == self.id) {
            return false;
        }
        match open_append(&self.path) {
            Ok(f) => {
                self.id = file_id(&f);
                self.file = f;
                self.torn = false;
                faults.reopened += 1;
                if now.is_ok() {
                    // logrotate's `create` before its SIGHUP, or a copy.
                    tracing::info!(
                        "alert log {} now names another file: reopened it",
                        self.path.display()
                    );
                } else {
                    tracing::warn!(
                        "alert log {} was deleted while open: created it again",
                        self.path.display()
                    );
                }
                true
            }
            Err(e) => {
                if self.failing.is_none() {
                    tracing::error!(
                        "alert log {} was removed and cannot be created again: {e} (retrying)",
                        self.path.display()
                    );
                    self.failing = Some(e.kind());
                }
                false
            }
        }
    }
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
            alerts: alerts.map(AlertLog::open).transpose()?,
            verdicts: verdicts.map(open).transpose()?,
            alert_faults: AlertLogFaults::default(),
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
        if let Err(e) = self.flush_alerts() {
            self.error.get_or_insert(e);
        }
        for (path, w) in self.verdicts.iter_mut() {
            w.flush().map_err(|e| OutputError::new(path, e))?;
        }
        match self.error.take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Writes buffered alert lines through to the file. On failure those
    /// lines are lost (counted in `alert_faults`), the error is returned,
    /// and the next call tries again with the lines gathered by then.
    pub fn flush_alerts(&mut self) -> Result<(), OutputError> {
        match self.alerts.as_mut() {
            Some(log) => log.write_out(&mut self.alert_faults),
            None => Ok(()),
        }
    }

    /// Reopens the alert log if its path no longer names the open file
    /// (deleted or replaced while running); counted in `alert_faults`.
    /// Returns whether it did.
    pub fn check_alert_path(&mut self) -> bool {
        match self.alerts.as_mut() {
            Some(log) => log.check_path(&mut self.alert_faults),
            None => false,
        }
    }

    /// Reopens the alert log by path (after logrotate moved it away); a
    /// failure keeps writing to the old file.
    pub fn reopen_alerts(&mut self) -> Result<(), OutputError> {
        let flushed = self.flush_alerts();
        if let Some(log) = self.alerts.as_mut() {
            let f = open_append(&log.path).map_err(|e| OutputError::new(&log.path, e))?;
            log.id = file_id(&f);
            log.file = f;
            log.torn = false;
            // A write error was about the old file.
            self.error = None;
        }
        flushed
    }

    /// Top `n` offenders by packets decided against them.
    pub fn top_offenders(&self, n: usize) -> Vec<Offender> {
        let mut v: Vec<Offender> = self.offenders.values().cloned().collect();
        v.sort_by(|a, b| b.packets.cmp(&a.packets).then_with(|| a.src.cmp(&b.src)));
        v.truncate(n);
        v
    }

    fn write_line(&mut self, line: &str, to_alerts: bool) {
        if to_alerts {
            let Some(log) = self.alerts.as_mut() else {
                return;
            };
            log.buf.extend_from_slice(line.as_bytes());
            log.lines += line.bytes().filter(|&b| b == b'\n').count() as u64;
            if log.buf.len() >= ALERT_BUFFER {
                if let Err(e) = log.write_out(&mut self.alert_faults) {
                    self.error.get_or_insert(e);
                }
            }
            return;
        }
        if self.error.is_some() {
            return;
        }
        if let Some((path, w)) = &mut self.verdicts {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(r: &mut Recorder, n: usize) {
        for i in 0..n {
            r.write_line(&format!("{{\"n\":{i}}}\n"), true);
        }
    }

    #[test]
    fn a_full_device_loses_lines_counted_and_keeps_retrying() {
        let mut r = Recorder::new(Some(Path::new("/dev/full")), None).unwrap();
        lines(&mut r, 3);
        let e = r.flush_alerts().unwrap_err();
        assert_eq!(e.source.raw_os_error(), Some(28), "ENOSPC: {e}");
        lines(&mut r, 2);
        assert!(r.flush_alerts().is_err());
        assert_eq!(
            r.alert_faults,
            AlertLogFaults {
                write_errors: 2,
                lines_lost: 5,
                reopened: 0
            }
        );
        // Nothing is kept for later: memory stays bounded.
        assert!(r.flush_alerts().is_ok());
        assert!(r.flush().is_ok());
    }

    #[test]
    fn a_deleted_log_is_created_again_and_written_to() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("alerts.jsonl");
        let mut r = Recorder::new(Some(&p), None).unwrap();
        lines(&mut r, 1);
        r.flush_alerts().unwrap();
        assert!(!r.check_alert_path());
        std::fs::remove_file(&p).unwrap();
        assert!(r.check_alert_path());
        assert!(!r.check_alert_path());
        lines(&mut r, 2);
        r.flush_alerts().unwrap();
        assert_eq!(
            std::fs::read_to_string(&p).unwrap(),
            "{\"n\":0}\n{\"n\":1}\n"
        );
        // Replaced by another file (logrotate's create): reopened too.
        std::fs::rename(&p, dir.path().join("old")).unwrap();
        std::fs::write(&p, "").unwrap();
        assert!(r.check_alert_path());
        assert_eq!(r.alert_faults.reopened, 2);
    }

    #[test]
    fn a_write_failing_mid_line_leaves_whole_lines_only() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("alerts.jsonl");
        let mut log = AlertLog::open(&p).unwrap();
        let mut faults = AlertLogFaults::default();
        log.buf.extend_from_slice(b"one\ntwo\nthree\n");
        log.lines = 3;
        // The disk took "one\ntw" and then filled up.
        log.file.write_all(b"one\ntw").unwrap();
        let full = std::io::Error::from_raw_os_error(28);
        log.failed(6, full, &mut faults);
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "one\n");
        assert_eq!((faults.write_errors, faults.lines_lost), (1, 2));
        assert!(!log.torn && log.buf.is_empty());
        log.buf.extend_from_slice(b"four\n");
        log.lines = 1;
        log.write_out(&mut faults).unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "one\nfour\n");
    }
}
