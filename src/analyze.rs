//! `flowgate analyze`: a PCAP through the same shard engine as live mode.

use crate::cli::SummaryFormat;
use crate::config::{Config, Mode};
use crate::engine::Stats;
use crate::output::{Offender, Recorder};
use crate::pipeline::Pipeline;
use crate::rules::Ruleset;
use crate::source::pcap::{PcapError, PcapSource};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

#[derive(Debug, thiserror::Error)]
pub enum AnalyzeError {
    #[error(transparent)]
    Input(#[from] PcapError),
    #[error("{0}")]
    Output(String),
    #[error("{0}")]
    Engine(String),
    #[error("rules: {0}")]
    Rules(String),
}

pub struct Options<'a> {
    pub pcap: &'a Path,
    pub verdicts: Option<&'a Path>,
    /// Write alerts to `cfg.output.alerts`.
    pub write_alerts: bool,
}

#[derive(Debug, Serialize)]
pub struct RuleLine {
    pub id: u32,
    pub name: String,
    pub packets: u64,
    pub bytes: u64,
    pub episodes: u64,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub input: PathBuf,
    pub shards: usize,
    pub mode: Mode,
    pub alerts_log: Option<PathBuf>,
    pub packets: u64,
    pub bytes: u64,
    pub allowed: u64,
    pub dropped: u64,
    pub alerts: u64,
    pub rules: Vec<RuleLine>,
    pub top_offenders: Vec<Offender>,
    pub stats: Stats,
    pub elapsed_seconds: f64,
    pub packets_per_second: f64,
    /// Set when reading stopped early; packets before it were analysed.
    pub input_error: Option<String>,
}

/// Runs the analysis. A read error part-way returns a report with
/// `input_error` set (the packets before it count); failing to open the
/// input or the outputs is an `Err`.
pub fn run(cfg: Config, opts: &Options) -> Result<Report, AnalyzeError> {
    let cfg = Arc::new(cfg);
    let mut source = PcapSource::open(opts.pcap)?;
    let rules = Arc::new(Ruleset::load(&cfg.signatures).map_err(AnalyzeError::Rules)?);
    for r in &rules.rejected {
        tracing::warn!("rule skipped: {r}");
    }
    let alerts_path = opts.write_alerts.then(|| cfg.output.alerts.clone());
    let recorder = Recorder::new(alerts_path.as_deref(), opts.verdicts)
        .map_err(|e| AnalyzeError::Output(e.to_string()))?;
    let started = Instant::now();
    let mut pipe = Pipeline::start(
        cfg.clone(),
        rules.clone(),
        recorder,
        opts.verdicts.is_some(),
    )
    .map_err(|e| AnalyzeError::Engine(format!("cannot start shard threads: {e}")))?;
    let shards = pipe.shards();
    let read = source.for_each(|r| pipe.push(r.ts, r.link, r.data, r.wire_len));
    let (stats, _per_shard, collector) = pipe.finish().map_err(AnalyzeError::Engine)?;
    let elapsed = started.elapsed().as_secs_f64();
    let input_error = match read {
        Ok(_) => None,
        Err(e) if e.is_partial() => Some(e.to_string()),
        Err(e) => return Err(e.into()),
    };
    let mut recorder = collector;
    recorder.flush().map_err(AnalyzeError::Output)?;
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
        input: opts.pcap.to_path_buf(),
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
        stats,
        input_error,
    })
}

impl Report {
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
        let _ = writeln!(s, "  allowed  {:>12}", self.allowed);
        let _ = writeln!(s, "  dropped  {:>12}", self.dropped);
        let st = &self.stats;
        let _ = writeln!(
            s,
            "  non-IP {}, fragments {}, allowlisted {}, snaplen-cut {}",
            st.non_ip, st.fragments, st.allowlisted, st.capture_truncated
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
        let t = &st.sources_table;
        let _ = writeln!(
            s,
            "  source table: {} inserted, {} evicted, {} expired; blocklist: {} evicted",
            t.inserts, t.evictions, t.expirations, st.blocklist_table.evictions
        );
        s
    }
}
