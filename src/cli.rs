//! Command-line interface (clap). Each command turns its flags into config
//! overrides so a flag, `FLOWGATE_*` and the TOML file all name the same keys.

use crate::config::{self, Config, ConfigError, Mode, Sources, XdpAttachMode};
pub use crate::output::SummaryFormat;
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

/// The `flowgate` command line: global logging flags and one subcommand.
#[derive(Parser, Debug)]
#[command(
    name = "flowgate",
    version,
    about = "Inline network intrusion prevention system"
)]
pub struct Cli {
    /// Log filter (tracing EnvFilter syntax), e.g. `info`, `flowgate=debug`.
    #[arg(long, global = true, env = "FLOWGATE_LOG", default_value = "info")]
    pub log: String,
    /// Log line format on stderr: text (human) or json (one object per line).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands; `main.rs` dispatches on them.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Analyse a PCAP/PCAPNG file offline with the live engine's verdicts.
    Analyze(AnalyzeArgs),
    /// Run inline between two ports (AF_XDP): forward what is allowed,
    /// drop what the rules say, block sources in the kernel. Stops on
    /// SIGINT/SIGTERM; SIGHUP reloads config and rules and reopens the
    /// alert log.
    Live(LiveArgs),
    /// Transmit a PCAP onto an interface (AF_XDP TX) at recorded timing, a
    /// speed multiple, a fixed rate or top speed; for testing gateways.
    Replay(ReplayArgs),
    /// Validate or print configuration.
    Config {
        /// check or show.
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// List the rules and their stable IDs.
    Rules {
        /// list or check.
        #[command(subcommand)]
        command: RulesCommand,
    },
    /// Query the SQLite audit log (alerts, top offenders).
    Alerts(AlertsArgs),
    /// Operate a running `flowgate live` through its control socket:
    /// unblock, block, allowlist, list blocks, reload, stats.
    Ctl(CtlArgs),
    /// Attach, inspect and detach the XDP program; manage the kernel blocklist.
    Xdp {
        /// attach, detach, status, block or unblock.
        #[command(subcommand)]
        command: XdpCommand,
    },
    /// BGP announcements through gobgpd: session state, routes announced
    /// and learned.
    Bgp {
        /// status.
        #[command(subcommand)]
        command: crate::bgp::BgpCommand,
    },
}

/// `flowgate alerts`: filters over the SQLite audit log.
#[derive(Args, Debug)]
pub struct AlertsArgs {
    /// SQLite file written by `analyze --sqlite` / `live --sqlite`
    /// (output.sqlite); `--db` is an alias.
    #[arg(long = "sqlite", visible_alias = "db", value_name = "PATH")]
    pub db: PathBuf,
    /// Only from this time on (RFC 3339, e.g. 2026-01-01T00:00:05Z).
    #[arg(long)]
    pub since: Option<String>,
    /// Only before this time (RFC 3339).
    #[arg(long)]
    pub until: Option<String>,
    /// Only this rule ID.
    #[arg(long)]
    pub rule: Option<u32>,
    /// Only this source address.
    #[arg(long)]
    pub src: Option<std::net::IpAddr>,
    /// Show the top N offenders (by packets decided against them) instead.
    #[arg(long, value_name = "N")]
    pub top: Option<usize>,
    /// Most rows.
    #[arg(long, default_value_t = 1000)]
    pub limit: usize,
    /// JSON output (EVE objects for alerts).
    #[arg(long)]
    pub json: bool,
}

/// `flowgate xdp ...`: the kernel side on its own.
#[derive(Subcommand, Debug)]
pub enum XdpCommand {
    /// Attach to both ports of an inline pair. Alone, this makes the pair a
    /// fail-open wire whose blocklist the kernel enforces; the program and
    /// its links stay pinned after this command exits.
    Attach {
        /// Port facing the untrusted side.
        #[arg(long)]
        ingress: String,
        /// Port facing the protected side.
        #[arg(long)]
        egress: String,
        /// Drop everything when no AF_XDP socket is bound (default: forward).
        #[arg(long)]
        fail_closed: bool,
        /// native (alias driver), generic (alias skb), or auto (native, else generic).
        #[arg(long, value_enum, default_value_t = XdpAttachMode::Auto)]
        mode: XdpAttachMode,
        /// Where to pin.
        #[command(flatten)]
        pin: PinArgs,
        /// Blocklist size and allowlist come from the configuration.
        #[command(flatten)]
        config: ConfigArgs,
    },
    /// Detach from every pinned port and remove the pins.
    Detach {
        /// Where the pins are.
        #[command(flatten)]
        pin: PinArgs,
    },
    /// Attached ports, blocklist size and the kernel counters.
    Status {
        /// Where the pins are.
        #[command(flatten)]
        pin: PinArgs,
        /// One JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Block a source in the kernel for a while.
    Block {
        /// Source address to drop at the driver.
        ip: std::net::IpAddr,
        /// e.g. 60s, 5m.
        #[arg(long, default_value = "60s")]
        ttl: humantime::Duration,
        /// Where the pins are.
        #[command(flatten)]
        pin: PinArgs,
    },
    /// Remove a source from the kernel blocklist.
    Unblock {
        /// Source address to remove.
        ip: std::net::IpAddr,
        /// Where the pins are.
        #[command(flatten)]
        pin: PinArgs,
    },
}

/// `flowgate ctl`: the client of a running `flowgate live`'s control
/// socket (protocol in `control.rs`).
#[derive(Args, Debug)]
pub struct CtlArgs {
    /// The control socket (control.socket of the running process).
    #[arg(long, env = "FLOWGATE_CONTROL_SOCKET", default_value = crate::config::DEFAULT_CONTROL_SOCKET)]
    pub socket: PathBuf,
    /// What to do.
    #[command(subcommand)]
    pub command: CtlCommand,
}

/// `flowgate ctl ...` verbs.
#[derive(Subcommand, Debug)]
pub enum CtlCommand {
    /// End the blocks of a source or of every source in a CIDR, in the
    /// shards and the kernel; the episode ends with reason `operator`.
    Unblock {
        /// IP address or CIDR.
        target: String,
        /// Why (recorded in the episode's end record).
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Block a source by hand (rule 9100099), in the shard and the kernel.
    Block {
        /// Source address.
        ip: std::net::IpAddr,
        /// How long, e.g. 10m (default: the running block.ttl).
        #[arg(long)]
        ttl: Option<humantime::Duration>,
        /// Why (recorded in the alert).
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Add, remove or list allowlisted networks (never inspected or
    /// blocked); kept across reloads and restarts.
    Allow {
        /// add, del or list.
        #[command(subcommand)]
        op: AllowCommand,
    },
    /// Open block episodes: source, rule, since, until, packets dropped.
    Blocks {
        /// The JSON answer as is.
        #[arg(long)]
        json: bool,
    },
    /// Reload config and rules, as SIGHUP does; prints the error if refused.
    Reload,
    /// Counters summed over the shards.
    Stats {
        /// The JSON answer as is.
        #[arg(long)]
        json: bool,
    },
    /// Version and pid of the running process.
    Version,
}

/// `flowgate ctl allow ...`.
#[derive(Subcommand, Debug)]
pub enum AllowCommand {
    /// Allowlist a network (ends the open blocks of sources inside).
    Add {
        /// CIDR or address.
        net: String,
        /// Why (recorded).
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Remove a network, exactly as listed.
    Del {
        /// CIDR or address.
        net: String,
        /// Why (recorded).
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// The allowlist in force, and what the operator changed.
    List {
        /// The JSON answer as is.
        #[arg(long)]
        json: bool,
    },
}

/// Where the XDP links and maps are pinned, for the `xdp` subcommands.
#[derive(Args, Debug, Clone)]
pub struct PinArgs {
    /// bpffs directory for flowgate's pinned links and maps.
    #[arg(long, env = "FLOWGATE_PIN_DIR", default_value = crate::config::DEFAULT_PIN_DIR)]
    pub pin_dir: PathBuf,
}

/// `flowgate config ...`.
#[derive(Subcommand, Debug)]
pub enum ConfigCommand {
    /// Load and validate the configuration; print the problem, key and value.
    Check(ConfigArgs),
    /// Print the effective configuration (defaults, file, env, --set) as TOML.
    Show(ConfigArgs),
}

/// `flowgate rules ...`.
#[derive(Subcommand, Debug)]
pub enum RulesCommand {
    /// Print every rule the configuration loads: behavioural and signatures.
    List {
        /// Which rule files and settings to load.
        #[command(flatten)]
        config: ConfigArgs,
        /// JSON array (with each rule's fires-when text) instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Load and compile rule files (flowgate `.toml` or Suricata `.rules`);
    /// report every rule that does not map, with its sid and why.
    Check {
        /// Rule files to check.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

/// The config file and `--set` overrides every config-reading command
/// takes.
#[derive(Args, Debug, Clone, Default)]
pub struct ConfigArgs {
    /// TOML configuration file.
    #[arg(short, long, env = "FLOWGATE_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Override any config key, e.g. `--set detect.icmp_flood.limit=200`.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
}

impl ConfigArgs {
    /// The file and overrides as configuration [`Sources`], with
    /// `FLOWGATE_*` variables on. Fails on a `--set` that is not KEY=VALUE.
    pub fn sources(&self) -> Result<Sources, ConfigError> {
        let mut s = Sources {
            file: self.config.clone(),
            overrides: Vec::new(),
            env: true,
        };
        for kv in &self.set {
            s.overrides.push(config::parse_set(kv)?);
        }
        Ok(s)
    }
}

/// Log line format on stderr (`--log-format`): `text` writes
/// human-readable lines, `json` one JSON object per line (for journald and
/// log shippers).
// Doc comments on the variants would become clap's possible-value help and
// switch every command's `--help` to the long layout; the enum doc above
// describes them instead.
#[allow(missing_docs)]
#[derive(Copy, Clone, Debug, ValueEnum, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// `flowgate analyze`.
#[derive(Args, Debug, Clone)]
pub struct AnalyzeArgs {
    /// Capture to analyse (PCAP or PCAPNG; Ethernet, Linux SLL/SLL2, raw IP);
    /// a file, a FIFO, or `-` for standard input.
    pub pcap: PathBuf,
    /// Config file and overrides.
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Shorthand flags for config keys.
    #[command(flatten)]
    pub engine: EngineFlags,
    /// Shard-hash key (engine.hash_key, 32 hex digits): a live box's key
    /// (its `live.hash_key_file`) reproduces its decisions exactly.
    #[arg(
        long,
        value_name = "HEX",
        env = "FLOWGATE_HASH_KEY",
        hide_env_values = true
    )]
    pub hash_key: Option<String>,
    /// Write one line per packet: `pcap_cnt<TAB>allow|drop[<TAB>rule]`.
    #[arg(long, value_name = "PATH")]
    pub verdicts: Option<PathBuf>,
    /// End-of-run summary on stdout.
    #[arg(long, value_enum, default_value_t = SummaryFormat::Text)]
    pub summary: SummaryFormat,
    /// Also write the packets the IPS would forward (ALLOW verdicts), in
    /// capture order, to this PCAPNG file (one interface per input
    /// interface and link type, nanosecond timestamps). A second pass over
    /// the input: not with `-` or a pipe.
    #[arg(long, value_name = "OUT.pcapng")]
    pub write_allowed: Option<PathBuf>,
    /// Progress bar on stderr: auto (when stderr is a terminal), always, never.
    #[arg(long, default_value = "auto")]
    pub progress: String,
}

/// `flowgate replay`.
#[derive(Args, Debug, Clone)]
pub struct ReplayArgs {
    /// Capture to send (PCAP or PCAPNG, Ethernet).
    pub pcap: PathBuf,
    /// Interface to transmit on.
    #[arg(long)]
    pub iface: String,
    /// TX queue of the interface.
    #[arg(long, default_value_t = 0)]
    pub queue: u32,
    /// Recorded timing divided by this factor (2 = twice as fast).
    #[arg(long, default_value_t = 1.0, conflicts_with_all = ["topspeed", "pps"])]
    pub speed: f64,
    /// As fast as possible.
    #[arg(long)]
    pub topspeed: bool,
    /// A fixed rate in packets per second.
    #[arg(long, conflicts_with = "topspeed")]
    pub pps: Option<u64>,
    /// Stop after N packets.
    #[arg(long, value_name = "N")]
    pub limit: Option<u64>,
    /// Final report format on stdout.
    #[arg(long, value_enum, default_value_t = SummaryFormat::Text)]
    pub summary: SummaryFormat,
    /// Progress bar on stderr: auto (when stderr is a terminal), always, never.
    #[arg(long, default_value = "auto")]
    pub progress: String,
}

impl ReplayArgs {
    /// The pace the flags ask for: `--topspeed`, else `--pps`, else
    /// `--speed` (1 = recorded timing).
    pub fn pace(&self) -> crate::replay::Pace {
        use crate::replay::Pace;
        match (self.topspeed, self.pps) {
            (true, _) => Pace::Top,
            (false, Some(p)) => Pace::Pps(p),
            (false, None) => Pace::Speed(self.speed),
        }
    }
}

/// `auto` | `always` | `never` → whether to draw a progress bar.
pub fn want_progress(arg: &str) -> bool {
    match arg {
        "always" => true,
        "never" => false,
        _ => std::io::IsTerminal::is_terminal(&std::io::stderr()),
    }
}

/// `flowgate live`: flags for the inline pair, each the short form of a
/// `live.*` or `metrics.*` key.
#[derive(Args, Debug, Clone)]
pub struct LiveArgs {
    /// Port facing the untrusted side (live.ingress).
    #[arg(long)]
    pub ingress: Option<String>,
    /// Port facing the protected side (live.egress).
    #[arg(long)]
    pub egress: Option<String>,
    /// Config file and overrides.
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Shorthand flags for config keys.
    #[command(flatten)]
    pub engine: EngineFlags,
    /// Drop everything while no flowgate process serves the ports
    /// (live.fail_closed); the default forwards (fail-open).
    #[arg(long)]
    pub fail_closed: bool,
    /// auto (native, else generic), native or generic (live.xdp_mode).
    #[arg(long, value_enum)]
    pub xdp_mode: Option<XdpAttachMode>,
    /// bpffs directory for the pinned program (live.pin_dir).
    #[arg(long, env = "FLOWGATE_PIN_DIR")]
    pub pin_dir: Option<PathBuf>,
    /// Prometheus `/metrics` address (metrics.listen).
    #[arg(long, value_name = "ADDR:PORT")]
    pub metrics_listen: Option<String>,
    /// No `/metrics` listener (metrics.enabled = false).
    #[arg(long)]
    pub no_metrics: bool,
    /// Detach the XDP program on a clean stop (live.detach_on_exit).
    #[arg(long)]
    pub detach_on_exit: bool,
}

impl LiveArgs {
    /// The sources live mode loads, and re-loads on SIGHUP: flags stay in
    /// force across reloads.
    pub fn sources(&self) -> Result<Sources, ConfigError> {
        let mut s = self.config.sources()?;
        self.engine.apply(&mut s);
        if let Some(v) = &self.ingress {
            s.set("live.ingress", toml_value(v));
        }
        if let Some(v) = &self.egress {
            s.set("live.egress", toml_value(v));
        }
        if self.fail_closed {
            s.set("live.fail_closed", true);
        }
        if let Some(m) = self.xdp_mode {
            s.set("live.xdp_mode", toml_value(&m));
        }
        if let Some(p) = &self.pin_dir {
            s.set("live.pin_dir", toml_value(&p.to_string_lossy()));
        }
        if let Some(v) = &self.metrics_listen {
            s.set("metrics.listen", toml_value(v));
        }
        if self.no_metrics {
            s.set("metrics.enabled", false);
        }
        if self.detach_on_exit {
            s.set("live.detach_on_exit", true);
        }
        Ok(s)
    }
}

/// Flags `analyze` and `live` share, each the short form of a config key.
#[derive(Args, Debug, Clone, Default)]
pub struct EngineFlags {
    /// Shard worker threads (engine.shards); 0 = one per core.
    #[arg(long)]
    pub shards: Option<usize>,
    /// prevent (IPS) or detect (IDS: log, forward everything) (engine.mode).
    #[arg(long, value_enum)]
    pub mode: Option<Mode>,
    /// Alert log, JSONL, appended to (output.alerts).
    #[arg(long, value_name = "PATH")]
    pub alerts: Option<PathBuf>,
    /// Also store alerts and block episodes in this SQLite file
    /// (output.sqlite; read it back with `flowgate alerts --sqlite`).
    #[arg(long, value_name = "PATH")]
    pub sqlite: Option<PathBuf>,
}

impl EngineFlags {
    /// Adds the flags given as overrides of their config keys.
    pub fn apply(&self, s: &mut Sources) {
        if let Some(n) = self.shards {
            s.set("engine.shards", n);
        }
        if let Some(m) = self.mode {
            s.set("engine.mode", toml_value(&m));
        }
        if let Some(p) = &self.alerts {
            s.set("output.alerts", toml_value(&p.to_string_lossy()));
        }
        if let Some(p) = &self.sqlite {
            s.set("output.sqlite", toml_value(&p.to_string_lossy()));
        }
    }
}

impl AnalyzeArgs {
    /// The effective configuration: file, environment, `--set`, then the
    /// shorthand flags.
    pub fn load_config(&self) -> Result<Config, ConfigError> {
        let mut s = self.config.sources()?;
        self.engine.apply(&mut s);
        if let Some(k) = &self.hash_key {
            s.set("engine.hash_key", toml_value(k));
        }
        Config::load(&s)
    }
}

/// A flag value as a TOML literal, the form `Sources` overrides take.
fn toml_value(v: &impl serde::Serialize) -> String {
    toml::Value::try_from(v)
        .map(|v| v.to_string())
        .unwrap_or_default()
}
