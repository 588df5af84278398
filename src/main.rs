use clap::Parser;
use flowgate::cli::{Cli, Command, ConfigCommand, RulesCommand, XdpCommand};
use flowgate::ruleset::Ruleset;
use flowgate::{analyze, config, control, xdp};
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
    let fmt = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match cli.log_format {
        flowgate::cli::LogFormat::Json => fmt.json().init(),
        flowgate::cli::LogFormat::Text => fmt.init(),
    }
    log_panics();
    match run(cli.command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("flowgate: error: {e}");
            ExitCode::from(1)
        }
    }
}

/// A panic in any thread goes to the tracing log (so `--log-format json`
/// carries it, and journald sees it) with the thread's name and where.
fn log_panics() {
    std::panic::set_hook(Box::new(|info| {
        let thread = std::thread::current();
        let name = thread.name().unwrap_or("unnamed");
        let msg = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "(non-string panic payload)".into());
        let at = info
            .location()
            .map(|l| format!("{}:{}:{}", l.file(), l.line(), l.column()))
            .unwrap_or_default();
        tracing::error!(thread = name, at = %at, "panic: {msg}");
    }));
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
                    write_allowed: args.write_allowed.as_deref(),
                    progress: flowgate::cli::want_progress(&args.progress),
                },
            )?;
            emit(&report.render(args.summary));
            // Partial failures: the summary above stands; each error is
            // one line on stderr and the exit code is 2.
            let mut code = ExitCode::SUCCESS;
            for e in [&report.input_error, &report.write_allowed_error]
                .into_iter()
                .flatten()
            {
                eprintln!("flowgate: error: {e}");
                code = ExitCode::from(2);
            }
            Ok(code)
        }
        Command::Live(args) => {
            let sources = args.sources()?;
            let cfg = config::Config::load(&sources)?;
            let report = flowgate::live::run(cfg, flowgate::live::LiveOptions { sources })?;
            emit(&report.render());
            if let Some(e) = &report.sink.write_error {
                eprintln!("flowgate: error: {e}");
                return Ok(ExitCode::from(2));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Bgp { command } => {
            let (text, code) = flowgate::bgp::run_command(&command)?;
            emit(&text);
            Ok(ExitCode::from(code))
        }
        Command::Replay(args) => {
            let rep = flowgate::replay::run(&flowgate::replay::Options {
                pcap: &args.pcap,
                iface: &args.iface,
                queue: args.queue,
                pace: args.pace(),
                limit: args.limit,
                progress: flowgate::cli::want_progress(&args.progress),
            })?;
            match args.summary {
                flowgate::cli::SummaryFormat::Text => emit(&rep.render()),
                flowgate::cli::SummaryFormat::Json => {
                    emit(&(serde_json::to_string_pretty(&rep)? + "\n"))
                }
                flowgate::cli::SummaryFormat::None => {}
            }
            if let Some(e) = &rep.input_error {
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
                // Load and compile the rules exactly as `analyze` and `live`
                // do: a set they would refuse fails the check.
                let set = Ruleset::load(&cfg.signatures)?;
                emit(&format!(
                    "config OK ({from}; {} shard(s), mode {:?}; {} signature rule(s), {} skipped)\n",
                    cfg.shards(),
                    cfg.engine.mode,
                    set.signature_count(),
                    set.rejected.len()
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
            let set = Ruleset::load(&cfg.signatures)?;
            let value_of = |k: &str| cfg.value_of(k);
            if json {
                let v: Vec<_> = set
                    .book
                    .iter()
                    .map(|r| {
                        serde_json::json!({"id": r.id, "rev": r.rev, "name": r.name, "signature": r.msg,
                            "category": r.category, "severity": r.severity, "fires_when": r.fires_when(value_of)})
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
        Command::Xdp { command } => xdp_command(command),
        Command::Ctl(a) => ctl_command(a),
        Command::Alerts(a) => alerts_command(a),
    }
}

fn alerts_command(a: flowgate::cli::AlertsArgs) -> anyhow::Result<ExitCode> {
    use flowgate::audit;
    let ts = |s: &Option<String>, what: &str| -> anyhow::Result<Option<u64>> {
        s.as_deref()
            .map(|t| {
                chrono::DateTime::parse_from_rfc3339(t)
                    .map(|d| d.timestamp_nanos_opt().unwrap_or(0).max(0) as u64)
                    .map_err(|e| {
                        anyhow::anyhow!(
                            "--{what} {t}: {e} (expected RFC 3339, e.g. 2026-01-01T00:00:05Z)"
                        )
                    })
            })
            .transpose()
    };
    if !a.db.exists() {
        anyhow::bail!(
            "{}: no such audit database (write one with analyze --sqlite)",
            a.db.display()
        );
    }
    let db = audit::open(&a.db).map_err(|e| anyhow::anyhow!("{}: {e}", a.db.display()))?;
    let q = audit::Query {
        since_ns: ts(&a.since, "since")?,
        until_ns: ts(&a.until, "until")?,
        rule: a.rule,
        src: a.src.map(|s| s.to_string()),
        limit: a.top.unwrap_or(a.limit),
    };
    if a.top.is_some() {
        let rows = audit::top_offenders(&db, &q)?;
        if a.json {
            let v: Vec<_> = rows
                .iter()
                .map(|(s, e, p, b)| serde_json::json!({"src_ip": s, "episodes": e, "packets": p, "bytes": b}))
                .collect();
            emit(&(serde_json::to_string_pretty(&v)? + "\n"));
        } else {
            let mut s = format!(
                "{:<40} {:>8} {:>10} {:>12}\n",
                "source", "episodes", "packets", "bytes"
            );
            for (src, e, p, b) in rows {
                s += &format!("{src:<40} {e:>8} {p:>10} {b:>12}\n");
            }
            emit(&s);
        }
    } else {
        let rows = audit::alerts(&db, &q)?;
        if a.json {
            emit(&(serde_json::to_string_pretty(&rows)? + "\n"));
        } else {
            let mut s = format!(
                "{:<32} {:<39} {:>8}  {:<8} {}\n",
                "time", "source", "rule", "action", "signature"
            );
            for v in rows {
                s += &format!(
                    "{:<32} {:<39} {:>8}  {:<8} {}\n",
                    v["timestamp"].as_str().unwrap_or(""),
                    v["src_ip"].as_str().unwrap_or(""),
                    v["alert"]["signature_id"],
                    v["alert"]["action"].as_str().unwrap_or(""),
                    v["alert"]["signature"].as_str().unwrap_or("")
                );
            }
            emit(&s);
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn xdp_command(cmd: XdpCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        XdpCommand::Attach {
            ingress,
            egress,
            fail_closed,
            mode,
            pin,
            config,
        } => {
            let cfg = config::Config::load(&config.sources()?)?;
            xdp::attach(&xdp::AttachOptions {
                ingress: &ingress,
                egress: &egress,
                pin_dir: &pin.pin_dir,
                fail_closed,
                mode,
                blocklist_capacity: cfg.block.capacity as u32,
                allowlist: &cfg.block.allowlist,
                syn_seen_capacity: cfg.detect.victim.guard_table,
            })?;
            emit(&format!(
                "attached to {ingress} and {egress} ({}), pinned in {}\n",
                if fail_closed {
                    "fail-closed"
                } else {
                    "fail-open"
                },
                pin.pin_dir.display()
            ));
        }
        XdpCommand::Detach { pin } => {
            let d = xdp::detach(&pin.pin_dir)?;
            emit(&format!(
                "detached from {}\n",
                if d.is_empty() {
                    "nothing".into()
                } else {
                    d.join(", ")
                }
            ));
        }
        XdpCommand::Status { pin, json } => {
            let c = xdp::counters(&pin.pin_dir)?;
            let (total, live) = xdp::Blocklist::open(&pin.pin_dir)?.len();
            let ports = xdp::attached(&pin.pin_dir);
            // Victims under the SYN guard (an older pin set has no map).
            let now = xdp::monotonic_ns();
            let guards: Vec<(std::net::IpAddr, xdp::GuardEntry)> =
                xdp::SynGuard::open(&pin.pin_dir)
                    .map(|g| g.entries())
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|(_, e)| e.until > now)
                    .collect();
            if json {
                let counters: serde_json::Map<String, serde_json::Value> = xdp::COUNTER_NAMES
                    .iter()
                    .zip(c)
                    .map(|(k, v)| (k.to_string(), v.into()))
                    .collect();
                let guarded: Vec<serde_json::Value> = guards
                    .iter()
                    .map(|(ip, e)| {
                        serde_json::json!({"victim": ip, "seconds_left": (e.until - now) / 1_000_000_000,
                            "dropped": e.dropped, "passed": e.passed_total, "limit_per_s": e.limit})
                    })
                    .collect();
                emit(&(serde_json::json!({"ports": ports, "blocklist_entries": total, "blocklist_active": live, "syn_guard": guarded, "counters": counters}).to_string() + "\n"));
            } else {
                let mut s = format!(
                    "ports: {}\nblocklist: {live} active ({total} entries)\nSYN guard: {} victims\n",
                    ports.join(", "),
                    guards.len()
                );
                for (ip, e) in &guards {
                    s += &format!(
                        "  {ip:<24} {} s left, {} dropped, {} passed\n",
                        (e.until - now) / 1_000_000_000,
                        e.dropped,
                        e.passed_total
                    );
                }
                for (k, v) in xdp::COUNTER_NAMES.iter().zip(c) {
                    s += &format!("  {k:<24} {v}\n");
                }
                emit(&s);
            }
        }
        XdpCommand::Block { ip, ttl, pin } => {
            let req = control::Request::Block {
                ip,
                ttl: Some(*ttl),
                reason: "flowgate xdp block".into(),
            };
            if let Some(v) = via_live(&pin.pin_dir, &req)? {
                emit(&format!(
                    "blocked {ip} until {} (through {})\n",
                    v["until"].as_str().unwrap_or("?"),
                    v["via"].as_str().unwrap_or("the control socket")
                ));
                return Ok(ExitCode::SUCCESS);
            }
            xdp::Blocklist::open(&pin.pin_dir)?.block(ip, *ttl)?;
            emit(&format!("blocked {ip} for {ttl}\n"));
        }
        XdpCommand::Unblock { ip, pin } => {
            let req = control::Request::Unblock {
                net: ip.into(),
                reason: "flowgate xdp unblock".into(),
            };
            if let Some(v) = via_live(&pin.pin_dir, &req)? {
                let n = v["episodes_ended"].as_u64().unwrap_or(0)
                    + v["kernel_entries_removed"].as_u64().unwrap_or(0);
                emit(&format!(
                    "{ip} {} (through {})\n",
                    if n > 0 {
                        "unblocked"
                    } else {
                        "was not blocked"
                    },
                    v["via"].as_str().unwrap_or("the control socket")
                ));
                return Ok(ExitCode::SUCCESS);
            }
            let was = xdp::Blocklist::open(&pin.pin_dir)?.unblock(ip)?;
            emit(&format!(
                "{ip} {}\n",
                if was { "unblocked" } else { "was not blocked" }
            ));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// When a `flowgate live` holds the maps under `pin_dir`, a kernel-only
/// change would not hold (its shards keep their own block mirror): send
/// `req` through that process's control socket, or refuse saying so.
/// `None`: no live process owns the maps, change them directly.
fn via_live(
    pin_dir: &std::path::Path,
    req: &control::Request,
) -> anyhow::Result<Option<serde_json::Value>> {
    let owners = xdp::map_owners(pin_dir);
    let Some(&pid) = owners.first() else {
        return Ok(None);
    };
    for sock in control::listening_sockets(pid) {
        if let Ok(mut v) = control::call(&sock, &req.to_json(), std::time::Duration::from_secs(10))
        {
            v["via"] = format!("flowgate live pid {pid}, control socket {}", sock.display()).into();
            return Ok(Some(v));
        }
    }
    anyhow::bail!(
        "flowgate live (pid {pid}) owns the maps under {}: a kernel-only change would not hold \
         (its shards keep their own block mirror and episodes), and its control socket could not \
         be reached (control.enabled off, or not allowed): use `flowgate ctl {}` against it",
        pin_dir.display(),
        req.verb()
    )
}

fn ctl_command(a: flowgate::cli::CtlArgs) -> anyhow::Result<ExitCode> {
    use flowgate::cli::{AllowCommand, CtlCommand};
    use flowgate::control::{parse_target, AllowOp, Request};
    let (req, json) = match a.command {
        CtlCommand::Unblock { target, reason } => (
            Request::Unblock {
                net: parse_target(&target).map_err(anyhow::Error::msg)?,
                reason,
            },
            false,
        ),
        CtlCommand::Block { ip, ttl, reason } => (
            Request::Block {
                ip,
                ttl: ttl.map(|t| *t),
                reason,
            },
            false,
        ),
        CtlCommand::Allow { op } => match op {
            AllowCommand::Add { net, reason } => (
                Request::Allow {
                    op: AllowOp::Add,
                    net: Some(parse_target(&net).map_err(anyhow::Error::msg)?),
                    reason,
                },
                false,
            ),
            AllowCommand::Del { net, reason } => (
                Request::Allow {
                    op: AllowOp::Del,
                    net: Some(parse_target(&net).map_err(anyhow::Error::msg)?),
                    reason,
                },
                false,
            ),
            AllowCommand::List { json } => (
                Request::Allow {
                    op: AllowOp::List,
                    net: None,
                    reason: String::new(),
                },
                json,
            ),
        },
        CtlCommand::Blocks { json } => (Request::Blocks, json),
        CtlCommand::Reload => (Request::Reload, false),
        CtlCommand::Stats { json } => (Request::Stats, json),
        CtlCommand::Version => (Request::Version, false),
    };
    let v = control::call(
        &a.socket,
        &req.to_json(),
        std::time::Duration::from_secs(130),
    )?;
    if json {
        emit(&(serde_json::to_string_pretty(&v)? + "\n"));
        return Ok(ExitCode::SUCCESS);
    }
    let s = |k: &str| v[k].as_str().unwrap_or("").to_string();
    let text = match &req {
        Request::Block { ip, .. } => format!(
            "blocked {ip} until {} (rule {}){}\n",
            s("until"),
            v["rule"],
            if v["kernel"] == true {
                "; in the kernel blocklist".to_string()
            } else {
                format!("; {}", s("note"))
            }
        ),
        Request::Unblock { net, .. } => {
            let ended = v["episodes_ended"].as_u64().unwrap_or(0);
            let removed = v["kernel_entries_removed"].as_u64().unwrap_or(0);
            if ended + removed == 0 {
                format!("{net}: nothing was blocked\n")
            } else {
                let list: Vec<&str> = v["unblocked"]
                    .as_array()
                    .map(|a| a.iter().filter_map(|x| x.as_str()).collect())
                    .unwrap_or_default();
                format!(
                    "unblocked {net}: {ended} episode(s) ended ({}), {removed} kernel entr{} removed\n",
                    list.join(", "),
                    if removed == 1 { "y" } else { "ies" }
                )
            }
        }
        Request::Allow { .. } => {
            let list: Vec<&str> = v["allowlist"]
                .as_array()
                .map(|a| a.iter().filter_map(|x| x.as_str()).collect())
                .unwrap_or_default();
            format!(
                "allowlist: {}\n",
                if list.is_empty() {
                    "(empty)".to_string()
                } else {
                    list.join(", ")
                }
            )
        }
        Request::Blocks => {
            let mut t = format!(
                "{:<39} {:>8} {:<18} {:<26} {:<26} {:>9}  {}\n",
                "source", "rule", "name", "since", "until", "packets", "by"
            );
            for b in v["blocks"].as_array().into_iter().flatten() {
                let by = if b["by"].is_object() {
                    format!(
                        "{} ({})",
                        b["by"]["user"].as_str().unwrap_or(""),
                        b["by"]["reason"].as_str().unwrap_or("")
                    )
                } else {
                    "detector".to_string()
                };
                t += &format!(
                    "{:<39} {:>8} {:<18} {:<26} {:<26} {:>9}  {}{}\n",
                    b["src"].as_str().unwrap_or(""),
                    b["rule"],
                    b["name"].as_str().unwrap_or(""),
                    b["since"].as_str().unwrap_or(""),
                    b["until"].as_str().unwrap_or(""),
                    b["packets"],
                    by,
                    if b["kernel"] == true {
                        ""
                    } else {
                        "  [not in kernel]"
                    }
                );
            }
            if let Some(k) = v["kernel_only"].as_array().filter(|k| !k.is_empty()) {
                t += &format!(
                    "in the kernel blocklist only: {}\n",
                    serde_json::Value::Array(k.clone())
                );
            }
            t
        }
        Request::Reload => format!("reloaded: generation {}\n", v["generation"]),
        Request::Stats => {
            let st = &v["stats"];
            format!(
                "up {:.0}s, generation {}, {} shard(s)\npackets {}  allowed {}  dropped {}  allowlisted {}\nblocked sources {}\n",
                v["uptime_s"].as_f64().unwrap_or(0.0),
                v["generation"],
                v["shards"],
                st["packets"],
                st["allowed"],
                st["dropped"],
                st["allowlisted"],
                v["blocked_sources"]
            )
        }
        Request::Version => format!(
            "flowgate {} (pid {}, config generation {})\n",
            s("version"),
            v["pid"],
            v["generation"]
        ),
    };
    emit(&text);
    Ok(ExitCode::SUCCESS)
}

/// `flowgate rules check`: exit 0 if every rule maps and compiles, 1 if
/// the files cannot be used, 2 if some rules were skipped. Loads exactly
/// as `analyze` and `live` do (without the built-in set).
fn rules_check(files: &[std::path::PathBuf]) -> anyhow::Result<ExitCode> {
    let cfg = config::SignaturesConfig {
        enabled: true,
        builtin: false,
        rule_files: files.to_vec(),
        strict: false,
        ..Default::default()
    };
    let started = std::time::Instant::now();
    let set = Ruleset::load(&cfg)?;
    for f in &set.files {
        emit(&format!(
            "{}: {} rule(s) map, {} do not\n",
            f.path.display(),
            f.loaded,
            f.rejected
        ));
    }
    for r in &set.rejected {
        emit(&format!("  skipped {r}\n"));
    }
    if !set.rejected.is_empty() {
        emit("skip reasons:\n");
        for (kind, n) in set.reasons() {
            emit(&format!("  {kind}: {n}\n"));
        }
    }
    emit(&format!(
        "compiled {} rule(s) in {:.2} s\n",
        set.signature_count(),
        started.elapsed().as_secs_f64()
    ));
    Ok(if set.rejected.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    })
}
