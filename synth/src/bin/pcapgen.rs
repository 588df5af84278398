//! Writes the deterministic PCAPs: `fixtures` (small, committed) and `perf`
//! (large, for throughput runs). Same arguments, same bytes.

use clap::{Parser, Subcommand};
use flowgate_synth as synth;
use std::fs::File;
use std::io::BufWriter;
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "flowgate-pcapgen",
    about = "Generate flowgate's synthetic PCAPs"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Regenerate the generated fixtures into DIR (default fixtures/).
    Fixtures {
        #[arg(default_value = "fixtures")]
        dir: PathBuf,
    },
    /// Large mixed-traffic capture for throughput measurements.
    Perf {
        out: PathBuf,
        #[arg(long, default_value_t = 5_000_000)]
        packets: u64,
        #[arg(long, default_value_t = 20_000)]
        sources: u32,
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// HTTP-heavy capture: complete HTTP sessions, 2 % with SQL injection.
    PerfHttp {
        out: PathBuf,
        #[arg(long, default_value_t = 250_000)]
        sessions: u64,
        #[arg(long, default_value_t = 5_000)]
        clients: u32,
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Spoofed SYN flood: SPOOFED distinct sources at RATE SYN/s against one
    /// victim, one real attacker and one real client inside it.
    Spoofed {
        out: PathBuf,
        #[arg(long, default_value_t = 1_000_000)]
        spoofed: u32,
        #[arg(long, default_value_t = 50_000)]
        rate: u32,
    },
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().cmd {
        Cmd::Fixtures { dir } => {
            std::fs::create_dir_all(&dir)?;
            let write =
                |name: &str, frames: &[(u64, Vec<u8>)], nanos: bool| -> anyhow::Result<()> {
                    let p = dir.join(name);
                    synth::write_pcap(BufWriter::new(File::create(&p)?), frames, nanos)?;
                    println!("{} ({} packets)", p.display(), frames.len());
                    Ok(())
                };
            let mixed = synth::mixed();
            write("mixed.pcap", &mixed, false)?;
            write("mixed_nanos.pcap", &mixed, true)?;
            write("malformed.pcap", &synth::malformed(), false)?;
            write("http_sqli.pcap", &synth::http_cases().0, false)?;
        }
        Cmd::Perf {
            out,
            packets,
            sources,
            seed,
        } => {
            if let Some(d) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(d)?;
            }
            synth::perf_mix(
                BufWriter::with_capacity(1 << 20, File::create(&out)?),
                packets,
                sources,
                seed,
            )?;
            println!(
                "{} ({packets} packets, {sources} benign sources, seed {seed})",
                out.display()
            );
        }
        Cmd::PerfHttp {
            out,
            sessions,
            clients,
            seed,
        } => {
            if let Some(d) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(d)?;
            }
            synth::perf_http(
                BufWriter::with_capacity(1 << 20, File::create(&out)?),
                sessions,
                clients,
                seed,
            )?;
            println!(
                "{} ({sessions} HTTP sessions, {} packets, {clients} clients, seed {seed})",
                out.display(),
                sessions * 8
            );
        }
        Cmd::Spoofed { out, spoofed, rate } => {
            if let Some(d) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(d)?;
            }
            synth::spoofed_flood(
                BufWriter::with_capacity(1 << 20, File::create(&out)?),
                spoofed,
                rate,
            )?;
            println!(
                "{} ({spoofed} spoofed SYNs at {rate}/s, plus a real attacker and client)",
                out.display()
            );
        }
    }
    Ok(())
}
