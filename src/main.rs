use clap::Parser;
use flowgate::cli::{Cli, Command, ConfigCommand, RulesCommand};
use flowgate::{analyze, config, rules};
use std::io::Write;
use std::process::ExitCode;

/// Writes to stdout; a closed pipe (`| head`) ends output quietly.
fn emit(s: &str) {
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_all(s.as_bytes()).and_then(|_| out.flush()) {
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            eprintln!("flowgate: error: stdout: {e}");
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_new(&cli.log)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    match run(cli.command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("flowgate: error: {e}");
            ExitCode::from(1)
        }
    }
}

fn run(cmd: Command) -> anyhow::Result<ExitCode> {
    match cmd {
        Command::Analyze(args) => {
            let cfg = args.load_config()?;
            let report = analyze::run(
                cfg,
                &analyze::Options {
                    pcap: &args.pcap,
                    verdicts: args.verdicts.as_deref(),
                    write_alerts: true,
                },
            )?;
            emit(&report.render(args.summary));
            if let Some(e) = &report.input_error {
                eprintln!("flowgate: error: {e}");
                return Ok(ExitCode::from(2));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Config { command } => match command {
            ConfigCommand::Check(a) => {
                let cfg = config::Config::load(&a.sources()?)?;
                let from = a
                    .config
                    .as_ref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_else(|| "built-in defaults".into());
                emit(&format!(
                    "config OK ({from}; {} shard(s), mode {:?})\n",
                    cfg.shards(),
                    cfg.engine.mode
                ));
                Ok(ExitCode::SUCCESS)
            }
            ConfigCommand::Show(a) => {
                emit(&config::Config::load(&a.sources()?)?.to_toml());
                Ok(ExitCode::SUCCESS)
            }
        },
        Command::Rules {
            command: RulesCommand::List { config, json },
        } => {
            let cfg = config::Config::load(&config.sources()?)?;
            let set = rules::Ruleset::load(&cfg.signatures).map_err(anyhow::Error::msg)?;
            if json {
                let v: Vec<_> = set
                    .book
                    .iter()
                    .map(|r| {
                        serde_json::json!({"id": r.id, "rev": r.rev, "name": r.name, "signature": r.msg,
                            "category": r.category, "severity": r.severity, "fires_when": r.fires_when})
                    })
                    .collect();
                emit(&(serde_json::to_string_pretty(&v)? + "\n"));
            } else {
                let mut s = String::new();
                for r in set.book.iter() {
                    s += &format!("{:<8} {:<24} {}\n", r.id, r.name, r.msg);
                }
                emit(&s);
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Rules {
            command: RulesCommand::Check { files },
        } => rules_check(&files),
    }
}

/// `flowgate rules check`: exit 0 if every rule maps and compiles, 1 if
/// the files cannot be used, 2 if some rules were skipped.
fn rules_check(files: &[std::path::PathBuf]) -> anyhow::Result<ExitCode> {
    use flowgate::signature::{self, SignatureSet};
    let mut all = Vec::new();
    let mut rejected = Vec::new();
    for f in files {
        let (ok, bad) = signature::load_file(f).map_err(anyhow::Error::msg)?;
        emit(&format!(
            "{}: {} rule(s) map, {} do not\n",
            f.display(),
            ok.len(),
            bad.len()
        ));
        all.extend(ok);
        rejected.extend(bad);
    }
    for r in &rejected {
        emit(&format!("  skipped {r}\n"));
    }
    let mut book = rules::RuleBook::builtin();
    let mut metas = Vec::new();
    for r in &all {
        metas.push(
            book.insert(r.meta.clone())
                .map_err(|id| anyhow::anyhow!("rule id {id} is defined twice"))?,
        );
    }
    let n = all.len();
    let started = std::time::Instant::now();
    SignatureSet::compile(all, metas)?;
    emit(&format!(
        "compiled {n} rule(s) in {:.2} s\n",
        started.elapsed().as_secs_f64()
    ));
    Ok(if rejected.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    })
}
