use clap::Parser;
use flowgate::cli::{Cli, Command, ConfigCommand, RulesCommand};
use flowgate::{analyze, config, rules};
use std::process::ExitCode;

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
            print!("{}", report.render(args.summary));
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
                println!(
                    "config OK ({from}; {} shard(s), mode {:?})",
                    cfg.shards(),
                    cfg.engine.mode
                );
                Ok(ExitCode::SUCCESS)
            }
            ConfigCommand::Show(a) => {
                print!("{}", config::Config::load(&a.sources()?)?.to_toml());
                Ok(ExitCode::SUCCESS)
            }
        },
        Command::Rules {
            command: RulesCommand::List { json },
        } => {
            let book = rules::RuleBook::builtin();
            if json {
                let v: Vec<_> = book
                    .iter()
                    .map(|r| {
                        serde_json::json!({"id": r.id, "rev": r.rev, "name": r.name, "signature": r.msg,
                            "category": r.category, "severity": r.severity, "fires_when": r.fires_when})
                    })
                    .collect();
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                for r in book.iter() {
                    println!("{:<8} {:<14} {}", r.id, r.name, r.msg);
                    println!("{:<8} {:<14} fires when {}", "", "", r.fires_when);
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
