//! `flowgate analyze`: a PCAP through the same shard engine as live mode.

use crate::config::{Config, Mode};
use crate::engine::Stats;
use crate::output::{Offender, Recorder, SummaryFormat};
use crate::pipeline::Pipeline;
use crate::ruleset::Ruleset;
use crate::source::pcap::{PcapError, PcapSource};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

/// Why `flowgate analyze` produced no report.
#[derive(Debug, thiserror::Error)]
pub enum AnalyzeError {
    /// The capture could not be opened or is not a capture we read. (A
    /// read error after some packets gives a report with `input_error`.)
    #[error(transparent)]
    Input(#[from] PcapError),
    /// The alert or verdict log could not be opened or written.
    #[error(transparent)]
    Output(#[from] crate::output::OutputError),
    /// The SQLite audit log could not be opened.
    #[error(transparent)]
    Audit(#[from] crate::audit::AuditError),
    /// The shard pipeline did not start, or a thread of it panicked.
    #[error(transparent)]
    Engine(#[from] crate::pipeline::PipelineError),
    /// The configured rules did not load.
    #[error("rules: {0}")]
    Rules(#[from] crate::ruleset::RulesetError),
    /// `--write-allowed`: the output cannot be created (before analysing).
    #[error("--write-allowed {}: {message}", path.display())]
    WriteAllowed {
        /// The output capture.
        path: PathBuf,
        /// Why it cannot be created.
        message: String,
    },
    /// `--write-allowed` reads the input twice; a pipe can be read once.
    #[error("--write-allowed reads the capture a second time, so the input must be a regular file, and {} is not (standard input, a pipe or a FIFO): save the capture to a file first", input.display())]
    WriteAllowedNeedsFile {
        /// The input that can be read once only.
        input: PathBuf,
    },
    /// `--write-allowed` names the input itself.
    #[error("--write-allowed {}: is the input capture itself; choose another file", path.display())]
    WriteAllowedIsInput {
        /// The output path, which is the input.
        path: PathBuf,
    },
}

/// `--write-allowed` failed after the analysis: the report still stands.
#[derive(Debug, thiserror::Error)]
pub enum WriteAllowedError {
    /// Writing the output failed part way.
    #[error("--write-allowed {}: {message}; the file is incomplete (the error came after {written} allowed packets)", path.display())]
    Write {
        /// The output capture.
        path: PathBuf,
        /// Allowed packets written before the error.
        written: u64,
        /// The writer's message.
        message: String,
    },
    /// The second pass over the input failed.
    #[error("--write-allowed {}: second pass over the input: {source}", path.display())]
    Reread {
        /// The output capture.
        path: PathBuf,
        /// Why the input could not be read again.
        source: PcapError,
    },
    /// The input is not what the first pass read.
    #[error("--write-allowed {}: the input changed since it was analysed: {packets} packets analysed, the second pass read {reread}", path.display())]
    Changed {
        /// The output capture.
        path: PathBuf,
        /// Packets the analysis read.
        packets: u64,
        /// Packets the second pass read.
        reread: u64,
    },
}

/// What to analyse and which outputs to write; the configuration says the
/// rest (alert log path, SQLite, shards, mode).
pub struct Options<'a> {
    /// The capture, PCAP or PCAPNG.
    pub pcap: &'a Path,
    /// Per-packet verdict log to append to (`--verdicts`), if any.
    pub verdicts: Option<&'a Path>,
    /// Write alerts to `cfg.output.alerts`.
    pub write_alerts: bool,
    /// Write the packets that would be forwarded to this PCAPNG file
    /// (a second pass over the input, which must be a regular file).
    pub write_allowed: Option<&'a Path>,
    /// Show a progress bar on stderr.
    pub progress: bool,
}

/// One row of the summary's rule table: what one rule decided, over all
/// shards.
#[derive(Debug, Serialize)]
pub struct RuleLine {
    /// The rule's ID.
    pub id: u32,
    /// The rule's short name (`unknown` if the book lacks it).
    pub name: String,
    /// Packets decided against it (dropped, or would be in detect mode).
    pub packets: u64,
    /// Their wire bytes.
    pub bytes: u64,
    /// Alerts it raised (episodes started, signature matches).
    pub episodes: u64,
}

/// What an analysis did: the end-of-run summary (`--summary text|json`).
#[derive(Debug, Serialize)]
pub struct Report {
    /// The capture analysed.
    pub input: PathBuf,
    /// Shard workers used.
    pub shards: usize,
    /// The mode decisions were made in.
    pub mode: Mode,
    /// The alert log appended to, if alerts were written.
    pub alerts_log: Option<PathBuf>,
    /// Frames read.
    pub packets: u64,
    /// Their wire bytes.
    pub bytes: u64,
    /// Frames allowed (all of them in detect mode).
    pub allowed: u64,
    /// Frames dropped.
    pub dropped: u64,
    /// Alert events (not episode ends).
    pub alerts: u64,
    /// Every rule that decided anything, in ID order.
    pub rules: Vec<RuleLine>,
    /// Up to 10 sources with the most packets decided against them.
    pub top_offenders: Vec<Offender>,
    /// All engine counters, summed over shards.
    pub stats: Stats,
    /// SQLite audit log: events written, dropped (queue full), failed.
    pub audit: Option<(u64, u64, u64)>,
    /// Wall-clock seconds from starting the shards to the last one done.
    pub elapsed_seconds: f64,
    /// `packets / elapsed_seconds`.
    pub packets_per_second: f64,
    /// CPU seconds the reader thread spent framing records and handing
    /// them over (not loading rules).
    pub reader_cpu_seconds: f64,
    /// CPU seconds each shard worker spent. With the reader's, this says
    /// what the run needs from a machine whatever else was running: the
    /// wall time on enough idle cores is about the largest of them.
    pub shard_cpu_seconds: Vec<f64>,
    /// Packets each shard decided: how evenly the sources spread.
    pub shard_packets: Vec<u64>,
    /// Set when reading stopped early; packets before it were analysed.
    pub input_error: Option<String>,
    /// `--write-allowed`: the output and how many packets went into it.
    pub allowed_capture: Option<PathBuf>,
    /// Packets written to it.
    pub allowed_written: Option<u64>,
    /// `--write-allowed` failed after the analysis (which still stands).
    pub write_allowed_error: Option<String>,
}

/// Runs the analysis. A read error part-way returns a report with
/// `input_error` set (the packets before it count), and a `--write-allowed`
/// failure after the analysis one with `write_allowed_error` set; failing
/// to open the input or the outputs is an `Err`.
pub fn run(cfg: Config, opts: &Options) -> Result<Report, AnalyzeError> {
    let cfg = Arc::new(cfg);
    let mut source = PcapSource::open(opts.pcap)?;
    let rules = Arc::new(Ruleset::load(&cfg.signatures)?);
    for r in &rules.rejected {
        tracing::warn!("rule skipped: {r}");
    }
    // Checked and created before the analysis: a bad path costs nothing.
    let allowed_out = match opts.write_allowed {
        Some(out) => Some((out, create_allowed_output(opts.pcap, &source, out)?)),
        None => None,
    };
    let alerts_path = opts.write_alerts.then(|| cfg.output.alerts.clone());
    let mut recorder = Recorder::new(alerts_path.as_deref(), opts.verdicts)?;
    if opts.write_allowed.is_some() {
        recorder.allowed = Some(Vec::new());
    }
    if let Some(db) = &cfg.output.sqlite {
        recorder.audit = Some(crate::audit::AuditSink::start(db)?);
    }
    let record_verdicts = opts.verdicts.is_some() || opts.write_allowed.is_some();
    let started = Instant::now();
    let mut pipe = Pipeline::start(cfg.clone(), rules.clone(), recorder, record_verdicts)?;
    // A mapped file: shard workers read the records where they are.
    if let Some(map) = source.mapping() {
        pipe.share(map);
    }
    let shards = pipe.shards();
    // A bar needs a length: none for pipes and standard input.
    let bar = source.file_len.filter(|_| opts.progress).map(progress_bar);
    let mut read_bytes = 0u64;
    let reader_cpu0 = crate::pipeline::thread_cpu_seconds();
    let read = source.for_each(|r| {
        pipe.push(r.ts, r.link, r.data, r.wire_len);
        if let Some(b) = &bar {
            read_bytes += r.data.len() as u64 + 16;
            if pipe.packets() % 65_536 == 0 {
                b.set_position(read_bytes);
            }
        }
    });
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    let reader_cpu = crate::pipeline::thread_cpu_seconds() - reader_cpu0;
    let done = pipe.finish_timed()?;
    let elapsed = started.elapsed().as_secs_f64();
    let (stats, collector) = (done.total, done.collector);
    let shard_packets = done.per_shard.iter().map(|s| s.packets).collect();
    let input_error = match read {
        Ok(_) => None,
        Err(e) if e.is_partial() => Some(e.to_string()),
        Err(e) => return Err(e.into()),
    };
    let mut recorder = collector;
    recorder.flush()?;
    let mut allowed_written = None;
    let mut write_allowed_error = None;
    if let Some((out, file)) = allowed_out {
        let bits = recorder.allowed.as_deref().unwrap_or(&[]);
        match write_allowed(opts.pcap, out, file, bits, stats.packets) {
            Ok(n) => allowed_written = Some(n),
            Err(e) => write_allowed_error = Some(e.to_string()),
        }
    }
    let rule_lines = stats
        .rules
        .iter()
        .map(|(id, c)| RuleLine {
            id: *id,
            name: rules.book.name(*id).to_string(),
            packets: c.packets,
            bytes: c.bytes,
            episodes: c.episodes,
        })
        .collect();
    Ok(Report {
        input: source.name().to_path_buf(),
        shards,
        mode: cfg.engine.mode,
        alerts_log: alerts_path,
        packets: stats.packets,
        bytes: stats.bytes,
        allowed: stats.allowed,
        dropped: stats.dropped,
        alerts: recorder.alerts_written,
        rules: rule_lines,
        top_offenders: recorder.top_offenders(10),
        packets_per_second: if elapsed > 0.0 {
            stats.packets as f64 / elapsed
        } else {
            0.0
        },
        elapsed_seconds: elapsed,
        reader_cpu_seconds: reader_cpu,
        shard_cpu_seconds: done.shard_cpu,
        shard_packets,
        audit: recorder.audit.as_ref().map(|a| {
            use std::sync::atomic::Ordering::Relaxed;
            (
                a.stats.written.load(Relaxed),
                a.stats.dropped.load(Relaxed),
                a.stats.failed.load(Relaxed),
            )
        }),
        stats,
        input_error,
        allowed_capture: opts.write_allowed.map(Path::to_path_buf),
        allowed_written,
        write_allowed_error,
    })
}

fn progress_bar(len: u64) -> indicatif::ProgressBar {
    let b = indicatif::ProgressBar::new(len);
    b.set_style(
        indicatif::ProgressStyle::with_template(
            "{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    b
}

/// Checks that `--write-allowed` can work and creates its output, before
/// any analysis: the input must be re-readable (a regular file, not `-` or
/// a pipe) and must not be the output.
fn create_allowed_output(
    input: &Path,
    source: &PcapSource,
    out: &Path,
) -> Result<std::fs::File, AnalyzeError> {
    if crate::source::pcap::is_stdin(input) || source.file_len.is_none() {
        return Err(AnalyzeError::WriteAllowedNeedsFile {
            input: source.name().to_path_buf(),
        });
    }
    if let (Ok(a), Ok(b)) = (std::fs::metadata(input), std::fs::metadata(out)) {
        use std::os::unix::fs::MetadataExt;
        if (a.dev(), a.ino()) == (b.dev(), b.ino()) {
            return Err(AnalyzeError::WriteAllowedIsInput {
                path: out.to_path_buf(),
            });
        }
    }
    std::fs::File::create(out).map_err(|e| AnalyzeError::WriteAllowed {
        path: out.to_path_buf(),
        message: e.to_string(),
    })
}

/// Second pass: copies the allowed packets among the first `packets`, in
/// capture order, to a PCAPNG file: one interface per input interface with
/// its own link type, nanosecond timestamps (64-bit: no 2038/2106 limit),
/// original lengths kept. Returns how many were written.
fn write_allowed(
    input: &Path,
    out: &Path,
    file: std::fs::File,
    bits: &[u64],
    packets: u64,
) -> Result<u64, WriteAllowedError> {
    use crate::source::pcap::error_chain;
    use pcap_file::pcapng::blocks::enhanced_packet::EnhancedPacketBlock;
    use pcap_file::pcapng::blocks::interface_description::{
        InterfaceDescriptionBlock, InterfaceDescriptionOption, InterfaceTsResolution,
    };
    use pcap_file::pcapng::PcapNgWriter;
    use std::io::Write;
    use std::ops::ControlFlow;
    let mut written = 0u64;
    let werr = |written: u64, message: String| WriteAllowedError::Write {
        path: out.to_path_buf(),
        written,
        message,
    };
    let mut source = PcapSource::open(input).map_err(|source| WriteAllowedError::Reread {
        path: out.to_path_buf(),
        source,
    })?;
    let mut w = PcapNgWriter::new(std::io::BufWriter::with_capacity(1 << 20, file))
        .map_err(|e| werr(0, error_chain(&e)))?;
    if packets == 0 {
        // Nothing analysed: a valid capture with no packets.
        return w
            .get_mut()
            .flush()
            .map(|_| 0)
            .map_err(|e| werr(0, e.to_string()));
    }
    // Input interface -> output interface, in order of first use.
    let mut ifaces: std::collections::HashMap<u32, u32> = std::collections::HashMap::new();
    let mut idx = 0u64;
    let mut failure: Option<String> = None;
    let read = source.try_for_each(|r| {
        idx += 1;
        if crate::output::is_allowed(bits, idx) {
            let id = match ifaces.get(&r.interface) {
                Some(id) => *id,
                None => {
                    let id = ifaces.len() as u32;
                    let idb = InterfaceDescriptionBlock {
                        linktype: pcap_file::DataLink::from(r.linktype),
                        snaplen: 0,
                        options: vec![InterfaceDescriptionOption::IfTsResol(
                            InterfaceTsResolution::NANO,
                        )],
                    };
                    if let Err(e) = w.write_pcapng_block(idb) {
                        failure = Some(error_chain(&e));
                        return ControlFlow::Break(());
                    }
                    ifaces.insert(r.interface, id);
                    id
                }
            };
            let epb = EnhancedPacketBlock {
                interface_id: id,
                timestamp: std::time::Duration::from_nanos(r.ts),
                original_len: r.wire_len.max(r.data.len() as u32),
                data: std::borrow::Cow::Borrowed(r.data),
                options: Vec::new(),
            };
            match w.write_pcapng_block(epb) {
                Ok(_) => written += 1,
                Err(e) => {
                    failure = Some(error_chain(&e));
                    return ControlFlow::Break(());
                }
            }
        }
        // The first pass stopped here (a bad record, if any, comes next).
        if idx >= packets {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    });
    if let Some(e) = failure {
        return Err(werr(written, e));
    }
    match read {
        Ok(n) if n == packets => {}
        Ok(n) => {
            return Err(WriteAllowedError::Changed {
                path: out.to_path_buf(),
                packets,
                reread: n,
            })
        }
        Err(source) => {
            return Err(WriteAllowedError::Reread {
                path: out.to_path_buf(),
                source,
            })
        }
    }
    w.get_mut()
        .flush()
        .map_err(|e| werr(written, e.to_string()))?;
    Ok(written)
}

impl Report {
    /// The summary in `fmt`: a text table, pretty JSON, or nothing.
    pub fn render(&self, fmt: SummaryFormat) -> String {
        match fmt {
            SummaryFormat::None => String::new(),
            SummaryFormat::Json => serde_json::to_string_pretty(self).unwrap_or_default() + "\n",
            SummaryFormat::Text => self.text(),
        }
    }

    fn text(&self) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        let mode = match self.mode {
            Mode::Prevent => "prevent",
            Mode::Detect => "detect (nothing dropped)",
        };
        let _ = writeln!(s, "flowgate analyze: {}", self.input.display());
        let _ = writeln!(s, "  mode {mode}, {} shard(s)", self.shards);
        let _ = writeln!(
            s,
            "  packets  {:>12}   bytes {:>14}   {:.2} s, {:.0} pkts/s",
            self.packets, self.bytes, self.elapsed_seconds, self.packets_per_second
        );
        let cpu: Vec<String> = self
            .shard_cpu_seconds
            .iter()
            .zip(&self.shard_packets)
            .map(|(c, p)| format!("{c:.2} s/{p}"))
            .collect();
        let _ = writeln!(
            s,
            "  CPU      reader {:.2} s, shards {} (CPU/packets)",
            self.reader_cpu_seconds,
            cpu.join(", ")
        );
        let _ = writeln!(s, "  allowed  {:>12}", self.allowed);
        let _ = writeln!(s, "  dropped  {:>12}", self.dropped);
        let st = &self.stats;
        let _ = writeln!(
            s,
            "  non-IP {}, fragments {} ({} datagrams reassembled, {} timed out), allowlisted {}, snaplen-cut {}",
            st.non_ip,
            st.fragments,
            st.fragments_reassembled,
            st.fragments_timed_out,
            st.allowlisted,
            st.capture_truncated
        );
        if st.malformed_total() > 0 {
            let kinds: Vec<String> = st
                .malformed
                .iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect();
            let _ = writeln!(
                s,
                "  malformed {} ({})",
                st.malformed_total(),
                kinds.join(", ")
            );
        } else {
            let _ = writeln!(s, "  malformed 0");
        }
        if st.http_requests > 0 || !st.http_lost.is_empty() {
            let lost: Vec<String> = st
                .http_lost
                .iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect();
            let _ = writeln!(
                s,
                "  http requests {}, body bytes {}, not followed: {}{}",
                st.http_requests,
                st.http_body_bytes,
                if lost.is_empty() {
                    "none".to_string()
                } else {
                    lost.join(", ")
                },
                if st.ooo_overflow + st.http_evicted_busy > 0 {
                    format!(
                        "; out-of-order overflow {}, evicted mid-request {}",
                        st.ooo_overflow, st.http_evicted_busy
                    )
                } else {
                    String::new()
                }
            );
        }
        let sk = &st.skipped_clean;
        if sk.targets + sk.header_lines + sk.values > 0 {
            let _ = writeln!(
                s,
                "  seen clean before, not inspected again: targets {}, header lines {}, parameter values {}",
                sk.targets, sk.header_lines, sk.values
            );
        }
        if st.signature_scan_errors > 0 {
            let _ = writeln!(
                s,
                "  signature scan errors {} (request data not inspected)",
                st.signature_scan_errors
            );
        }
        let verb = if self.mode == Mode::Prevent {
            "dropped"
        } else {
            "matched"
        };
        if !self.rules.is_empty() {
            let _ = writeln!(
                s,
                "\n  {:<9} {:<24} {:>10} {:>12} {:>9}",
                "rule", "name", verb, "bytes", "episodes"
            );
            for r in &self.rules {
                let _ = writeln!(
                    s,
                    "  {:<9} {:<24} {:>10} {:>12} {:>9}",
                    r.id, r.name, r.packets, r.bytes, r.episodes
                );
            }
        }
        if !self.top_offenders.is_empty() {
            let _ = writeln!(s, "\n  top offenders ({verb} packets)");
            for o in &self.top_offenders {
                let rules: Vec<String> = o.rules.iter().map(|r| r.to_string()).collect();
                let _ = writeln!(
                    s,
                    "  {:<40} {:>10}  episodes {:<4} rules {}",
                    o.src,
                    o.packets,
                    o.episodes,
                    rules.join(",")
                );
            }
        }
        let _ = writeln!(
            s,
            "\n  alerts {}{}",
            self.alerts,
            self.alerts_log
                .as_ref()
                .map(|p| format!(" -> {}", p.display()))
                .unwrap_or_default()
        );
        if let Some(out) = &self.allowed_capture {
            let _ = match self.allowed_written {
                Some(n) => writeln!(s, "  forwarded packets {n} -> {}", out.display()),
                None => writeln!(s, "  forwarded packets -> {}: FAILED", out.display()),
            };
        }
        if let Some((w, d, f)) = self.audit {
            let _ = writeln!(
                s,
                "  sqlite audit: {w} events written, {d} dropped (queue full), {f} failed"
            );
        }
        let t = &st.sources_table;
        let _ = writeln!(
            s,
            "  source table: {} inserted, {} evicted, {} expired; blocklist: {} evicted",
            t.inserts, t.evictions, t.expirations, st.blocklist_table.evictions
        );
        s
    }
}
