//! Configuration: one TOML file, every key overridable by `FLOWGATE_*`
//! environment variables (`FLOWGATE_DETECT__ICMP_FLOOD__LIMIT=200`, `__`
//! between levels) and by `--set key=value` flags, in that order of
//! precedence (flag wins). Errors name the key, the value and what is
//! allowed.

pub use crate::detect::flag_scan::FlagScanConfig;
pub use crate::detect::icmp_flood::IcmpFloodConfig;
pub use crate::detect::port_scan::PortScanConfig;
pub use crate::detect::repeated_attempts::RepeatedAttemptsConfig;
pub use crate::detect::syn_flood::SynFloodConfig;
pub use crate::detect::DetectConfig;
use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where links and maps are pinned unless `live.pin_dir` / `--pin-dir` say
/// otherwise.
pub const DEFAULT_PIN_DIR: &str = "/sys/fs/bpf/flowgate";

/// What a decision against a packet does (`engine.mode`, `--mode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// IPS: drop what the rules say.
    #[default]
    Prevent,
    /// IDS: decide and log the same, forward everything.
    Detect,
}

/// The whole configuration, one field per TOML table. Every key has a
/// default; build it with [`Config::load`]. Shards hold it by `Arc` and a
/// reload replaces it whole (restart-only keys carried over).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// `[engine]`: shard threads, batching, prevent or detect.
    pub engine: EngineConfig,
    /// `[output]`: alert log and SQLite audit log.
    pub output: OutputConfig,
    /// `[block]`: block TTL, blocklist size, allowlist.
    pub block: BlockConfig,
    /// `[tables]`: bounds on per-source detector state.
    pub tables: TablesConfig,
    /// `[detect.*]`: the behavioural detectors' thresholds.
    pub detect: DetectConfig,
    /// `[signatures]`: HTTP signature rules and stream limits.
    pub signatures: SignaturesConfig,
    /// `[live]`: the inline ports and AF_XDP (`flowgate live` only).
    pub live: LiveConfig,
    /// `[metrics]`: the Prometheus listener (`flowgate live` only).
    pub metrics: MetricsConfig,
    /// `[bgp]`: announce blocks and learn peers' through gobgpd (`live` only).
    pub bgp: crate::bgp::BgpConfig,
    /// `[control]`: the operator control socket (`flowgate live` only).
    pub control: ControlConfig,
}

/// Where `flowgate ctl` reaches a running `flowgate live`, unless
/// `--socket` / `FLOWGATE_CONTROL_SOCKET` say otherwise.
pub const DEFAULT_CONTROL_SOCKET: &str = "/run/flowgate/control.sock";

/// `[control]`: the unix control socket of `flowgate live` (JSON lines,
/// see `control.rs`) and the state file operator changes persist in.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ControlConfig {
    /// Listen on the control socket.
    pub enabled: bool,
    /// Socket path; created mode 0600 (owner only), its directory 0700
    /// if missing.
    pub socket: PathBuf,
    /// Manual blocks and allowlist changes made through the socket, kept
    /// across restarts (rewritten on every change; empty path: not kept).
    pub state_file: PathBuf,
}

impl Default for ControlConfig {
    fn default() -> Self {
        ControlConfig {
            enabled: true,
            socket: PathBuf::from(DEFAULT_CONTROL_SOCKET),
            state_file: PathBuf::from("/var/lib/flowgate/control.json"),
        }
    }
}

/// How the XDP program is attached.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum XdpAttachMode {
    /// Native (driver) mode where the driver has it, else generic.
    #[default]
    Auto,
    /// Native (driver) mode only.
    #[value(alias = "driver")]
    #[serde(alias = "driver")]
    Native,
    /// Generic (skb) mode: any interface, slower.
    #[value(alias = "skb")]
    #[serde(alias = "skb")]
    Generic,
}

/// `flowgate live`: the two ports of the inline pair and the AF_XDP setup.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LiveConfig {
    /// Port facing the untrusted side (`--ingress`).
    pub ingress: String,
    /// Port facing the protected side (`--egress`).
    pub egress: String,
    /// How the XDP program attaches (`--xdp-mode`).
    pub xdp_mode: XdpAttachMode,
    /// With no AF_XDP socket bound (flowgate stopped or dead) drop
    /// everything instead of forwarding it uninspected.
    pub fail_closed: bool,
    /// bpffs directory for the pinned program links and maps.
    pub pin_dir: PathBuf,
    /// UMEM frames per queue pair (shared by both ports' sockets).
    pub frames_per_queue: u32,
    /// Descriptors in each RX/TX/fill/completion ring (power of two).
    pub ring_size: u32,
    /// Pin I/O and shard threads to cores (core_affinity), one core each;
    /// with fewer cores than threads nothing is pinned (logged).
    pub pin_threads: bool,
    /// On a clean stop, detach the XDP program too. By default it stays as
    /// a wire (fail-open, or dropping with fail_closed) so a restart does
    /// not cut the link; `flowgate xdp detach` removes it.
    pub detach_on_exit: bool,
    /// `false` forwards every frame without looking at it: the bare AF_XDP
    /// forwarding baseline for benchmarks. Never for production.
    pub inspect: bool,
    /// Where `live` keeps its shard-hash key when `engine.hash_key` is not
    /// set: read at start, created (random, mode 0600) on first start.
    pub hash_key_file: PathBuf,
    /// What happens to a batch a shard cannot take (its queue is full, or
    /// it holds its share of the UMEM frames): forwarded uninspected
    /// (`bypass`) or dropped (`drop`). Either way it is counted and RX
    /// goes on. Unset: `bypass`, or `drop` with `fail_closed` (the same
    /// stance as when flowgate is gone). See [`LiveConfig::queue_full_policy`].
    pub queue_full: Option<QueueFullPolicy>,
    /// Once the program is attached, the sockets bound and the maps open,
    /// drop every capability the running process no longer needs (and set
    /// no_new_privs). `false` keeps them (debugging only).
    pub drop_capabilities: bool,
}

/// What a starved shard's batch becomes (`live.queue_full`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum QueueFullPolicy {
    /// Forward it uninspected (fail-open): availability over inspection.
    Bypass,
    /// Drop it (fail-closed): nothing passes uninspected.
    Drop,
}

impl QueueFullPolicy {
    /// The metric label and config spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            QueueFullPolicy::Bypass => "bypass",
            QueueFullPolicy::Drop => "drop",
        }
    }
}

impl LiveConfig {
    /// The queue-full policy in force: `live.queue_full` if set, else the
    /// stance of `live.fail_closed` (bypass when fail-open, the default).
    pub fn queue_full_policy(&self) -> QueueFullPolicy {
        self.queue_full.unwrap_or(if self.fail_closed {
            QueueFullPolicy::Drop
        } else {
            QueueFullPolicy::Bypass
        })
    }
}

impl Default for LiveConfig {
    fn default() -> Self {
        LiveConfig {
            ingress: String::new(),
            egress: String::new(),
            xdp_mode: XdpAttachMode::Auto,
            fail_closed: false,
            pin_dir: PathBuf::from(DEFAULT_PIN_DIR),
            frames_per_queue: 8192,
            ring_size: 2048,
            pin_threads: true,
            detach_on_exit: false,
            inspect: true,
            hash_key_file: PathBuf::from("/var/lib/flowgate/hash.key"),
            queue_full: None,
            drop_capabilities: true,
        }
    }
}

/// Prometheus exposition.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Serve `/metrics` (`--no-metrics` turns it off).
    pub enabled: bool,
    /// `/metrics` listen address; loopback by default.
    pub listen: std::net::SocketAddr,
    /// How often shards publish their local counts.
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    /// `/metrics` has no authentication: a listen address that is not
    /// loopback is refused unless this is set.
    pub allow_remote: bool,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            enabled: true,
            listen: std::net::SocketAddr::from(([127, 0, 0, 1], 9464)),
            interval: Duration::from_millis(500),
            allow_remote: false,
        }
    }
}

/// `[engine]`: how packets reach the shards and what a decision does.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct EngineConfig {
    /// Worker threads; 0 = one per available core.
    pub shards: usize,
    /// `prevent` drops what the rules decide against; `detect` only logs.
    pub mode: Mode,
    /// Packets per batch handed to a shard.
    pub batch_size: usize,
    /// Batches in flight per shard queue.
    pub queue_batches: usize,
    /// Drop frames that fail to decode (the kernel would too). `false`
    /// forwards them untouched; they are counted either way.
    pub drop_malformed: bool,
    /// Secret key of the shard hash, 32 hex digits. Unset: `analyze` uses
    /// a public default; `live` reads (or creates) `live.hash_key_file`.
    /// Give `analyze` a box's key to reproduce its decisions exactly.
    pub hash_key: Option<String>,
}

/// `[output]`: where decisions are written.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct OutputConfig {
    /// EVE-style JSONL alert log, opened for append.
    pub alerts: PathBuf,
    /// Optional SQLite audit log of alerts and block episodes.
    pub sqlite: Option<PathBuf>,
}

/// `[block]`: what blocking a source means and how many are held.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct BlockConfig {
    /// How long a source stays blocked, in packet time.
    #[serde(with = "humantime_serde")]
    pub ttl: Duration,
    /// Most blocked sources held at once (the XDP map's size live).
    pub capacity: usize,
    /// Sources in these networks are never blocked or inspected.
    pub allowlist: Vec<IpNet>,
}

/// `[tables]`: bounds on the per-source detector state.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TablesConfig {
    /// Most sources with detector state held at once.
    pub sources: usize,
    /// A source with no packets for this long forgets its state.
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
}

/// `[signatures]`: HTTP request inspection with Hyperscan signatures.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SignaturesConfig {
    /// Inspect HTTP requests with Hyperscan signatures.
    pub enabled: bool,
    /// Load the built-in SQL injection rules (deploy/rules/sqli.toml).
    pub builtin: bool,
    /// More rule files: `.toml` (flowgate format) or Suricata `.rules`.
    pub rule_files: Vec<PathBuf>,
    /// Refuse to start if a Suricata rule does not map (else: warn and skip).
    pub strict: bool,
    /// Ports whose connections are tracked from the SYN (any port's flow is
    /// still picked up at a segment that starts an HTTP request).
    pub http_ports: Vec<u16>,
    /// Most HTTP flows tracked at once.
    pub flows: usize,
    /// A flow with no packets for this long is forgotten.
    #[serde(with = "humantime_serde")]
    pub flow_timeout: Duration,
    /// Longest request head (request line and header fields) read; a
    /// longer one cannot be followed (`unfollowable`). Bodies have no limit:
    /// every body byte is inspected as it passes, never buffered.
    pub max_head: usize,
    /// Out-of-order bytes held per flow while waiting for a gap to fill.
    pub max_ooo_bytes: usize,
    /// Out-of-order segments held per flow.
    pub max_ooo_segments: usize,
    /// Bytes all of a shard's flows may buffer together (heads being read
    /// and out-of-order segments). Fixed at start.
    pub buffer_budget: usize,
    /// Judge each decoded parameter value with the structural SQL
    /// detector (rule 9101100) as well as the signatures.
    pub sqli_structural: bool,
    /// What happens to a flow whose requests can no longer be followed
    /// (non-HTTP after a request, a head past `max_head`, broken chunked
    /// coding, an unknowable body length, out-of-order data past the
    /// bounds, a gap at close).
    pub unfollowable: Unfollowable,
}

/// `signatures.unfollowable`: the policy for a flow that cannot be
/// followed. It is always counted (`flowgate_http_lost_total{reason}`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Unfollowable {
    /// Stop inspecting the flow and forward it.
    Allow,
    /// Raise an alert (rule 9102002), then as `allow`.
    #[default]
    Alert,
    /// Raise the alert and drop the rest of the flow in prevent mode; an
    /// out-of-order segment past the bounds is dropped alone (the sender
    /// retransmits it once the gap has filled).
    Drop,
}

impl SignaturesConfig {
    /// The per-flow bounds the stream reassembly applies.
    pub fn limits(&self) -> crate::stream::Limits {
        crate::stream::Limits {
            max_head: self.max_head,
            max_ooo_bytes: self.max_ooo_bytes,
            max_ooo_segments: self.max_ooo_segments,
        }
    }
}

impl Default for SignaturesConfig {
    fn default() -> Self {
        SignaturesConfig {
            enabled: true,
            builtin: true,
            rule_files: Vec::new(),
            strict: false,
            http_ports: vec![80, 591, 3000, 5000, 8000, 8008, 8080, 8081, 8888],
            flows: 16_384,
            flow_timeout: Duration::from_secs(120),
            max_head: 16 * 1024,
            max_ooo_bytes: 64 * 1024,
            max_ooo_segments: 64,
            buffer_budget: 64 << 20,
            unfollowable: Unfollowable::Alert,
            sqli_structural: true,
        }
    }
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            shards: 0,
            mode: Mode::Prevent,
            batch_size: 256,
            queue_batches: 16,
            drop_malformed: true,
            hash_key: None,
        }
    }
}

impl Default for OutputConfig {
    fn default() -> Self {
        OutputConfig {
            alerts: PathBuf::from("logs/alerts.jsonl"),
            sqlite: None,
        }
    }
}

impl Default for BlockConfig {
    fn default() -> Self {
        BlockConfig {
            ttl: Duration::from_secs(60),
            capacity: 65_536,
            allowlist: Vec::new(),
        }
    }
}

impl Default for TablesConfig {
    fn default() -> Self {
        TablesConfig {
            sources: 262_144,
            idle_timeout: Duration::from_secs(300),
        }
    }
}

/// Longest window a detector counts over (and the timeouts of its state).
pub const MAX_WINDOW: Duration = Duration::from_secs(3600);
/// Longest block TTL and table idle timeout: 30 days.
pub const MAX_LONG_DURATION: Duration = Duration::from_secs(30 * 86_400);
/// Largest table (sources, flows, blocklist): 2^24 entries.
pub const MAX_TABLE: u64 = 1 << 24;
/// Largest count limit of a detector.
pub const MAX_RATE: u64 = 100_000_000;

/// A configuration problem, always naming the key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file could not be read, or is not valid TOML.
    #[error("config file {path}: {msg}")]
    File {
        /// The file.
        path: PathBuf,
        /// The OS error, or TOML's message with line and column.
        msg: String,
    },
    /// A key is unknown or its value has the wrong type; each message
    /// names the key and where the value came from.
    #[error("{0}")]
    Parse(String),
    /// A value of the right type that is out of range.
    #[error("config key `{key}` = {value}: {allowed}")]
    Value {
        /// The dotted key, e.g. `live.ring_size`.
        key: String,
        /// The value given.
        value: String,
        /// What would be accepted.
        allowed: String,
    },
    /// A `--set` argument that is not `KEY=VALUE`.
    #[error("--set {0}: expected KEY=VALUE, e.g. --set detect.icmp_flood.limit=200")]
    SetSyntax(String),
}

impl ConfigError {
    /// Says where a bad value came from: the config file and line, or the
    /// flag / environment variable that set it.
    fn locate(self, src: &Sources) -> ConfigError {
        let ConfigError::Value {
            key,
            value,
            allowed,
        } = self
        else {
            return self;
        };
        let from = if src.overrides.iter().any(|(k, _)| *k == key) {
            " (from a flag or --set)".to_string()
        } else if src.env && std::env::var_os(env_name(&key)).is_some() {
            format!(" (from {})", env_name(&key))
        } else if let Some((path, line)) = src
            .file
            .as_ref()
            .and_then(|p| std::fs::read_to_string(p).ok().map(|t| (p, t)))
            .and_then(|(p, t)| toml_line(&t, &key).map(|l| (p, l)))
        {
            format!(" ({} line {line})", path.display())
        } else {
            String::new()
        };
        ConfigError::Value {
            key,
            value,
            allowed: allowed + &from,
        }
    }
}

/// `FLOWGATE_DETECT__ICMP_FLOOD__LIMIT` for `detect.icmp_flood.limit`.
fn env_name(key: &str) -> String {
    format!("FLOWGATE_{}", key.replace('.', "__").to_uppercase())
}

/// The line (1-based) where a dotted key is set in a TOML text: under its
/// `[section]` header, or written out in full. A best effort for messages.
fn toml_line(text: &str, key: &str) -> Option<usize> {
    let (section, name) = key.rsplit_once('.').unwrap_or(("", key));
    let mut current = String::new();
    for (n, line) in text.lines().enumerate() {
        let t = line.trim();
        if let Some(h) = t.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
            current = h.trim().to_string();
            continue;
        }
        let Some((k, _)) = t.split_once('=') else {
            continue;
        };
        let k = k.trim();
        let full = if current.is_empty() {
            k.to_string()
        } else {
            format!("{current}.{k}")
        };
        if full == key || (current == section && k == name) {
            return Some(n + 1);
        }
    }
    None
}

/// Where configuration comes from, lowest precedence first.
#[derive(Clone, Debug, Default)]
pub struct Sources {
    /// The TOML file, if any (`--config`, `FLOWGATE_CONFIG`).
    pub file: Option<PathBuf>,
    /// `key=value` pairs from `--set` and from dedicated flags.
    pub overrides: Vec<(String, String)>,
    /// Read `FLOWGATE_*` variables (off in tests that must be hermetic).
    pub env: bool,
}

impl Sources {
    /// Adds an override of dotted `key`. `value` is read as TOML (`7`,
    /// `true`, `"eth1"`, `["10.0.0.0/8"]`), else taken as a plain string;
    /// a later override of the same key wins.
    pub fn set(&mut self, key: &str, value: impl ToString) {
        self.overrides.push((key.to_string(), value.to_string()));
    }
}

impl Config {
    /// The effective configuration: defaults, then the file, then
    /// `FLOWGATE_*` variables (if `src.env`), then the overrides in order;
    /// then range checks ([`Config::validate`]). Errors name the key.
    pub fn load(src: &Sources) -> Result<Config, ConfigError> {
        let mut fig = Figment::from(Serialized::defaults(Config::default()));
        if let Some(path) = &src.file {
            let bytes = std::fs::read(path).map_err(|e| ConfigError::File {
                path: path.clone(),
                msg: e.to_string(),
            })?;
            let text = String::from_utf8(bytes).map_err(|e| {
                let at = e.utf8_error().valid_up_to();
                let b = e.as_bytes();
                let line = b[..at].iter().filter(|&&c| c == b'\n').count() + 1;
                ConfigError::File {
                    path: path.clone(),
                    msg: format!(
                        "line {line}: not UTF-8 (byte {:#04x} at offset {at})",
                        b[at]
                    ),
                }
            })?;
            // Parse here first: toml's errors carry line and column.
            toml::from_str::<toml::Table>(&text).map_err(|e| ConfigError::File {
                path: path.clone(),
                msg: e.to_string().trim().replace('\n', " "),
            })?;
            fig = fig.merge(Toml::string(&text));
        }
        if src.env {
            // Only nested keys: FLOWGATE_CONFIG / FLOWGATE_LOG are flags.
            fig = fig.merge(
                Env::prefixed("FLOWGATE_")
                    .split("__")
                    .filter(|k| k.as_str().contains("__")),
            );
        }
        for (key, raw) in &src.overrides {
            fig = fig.merge(Serialized::default(key, toml_value(raw)));
        }
        let cfg: Config = fig.extract().map_err(|e| {
            let mut msgs = Vec::new();
            for err in e {
                let key = if err.path.is_empty() {
                    String::new()
                } else {
                    format!("config key `{}`: ", err.path.join("."))
                };
                let from = err
                    .metadata
                    .as_ref()
                    .map(|m| match (&src.file, m.name.as_ref()) {
                        // Figment names an in-memory TOML source generically.
                        (Some(p), "TOML source string") => format!(" (in {})", p.display()),
                        (_, "Serialized") => " (from a flag or --set)".to_string(),
                        (_, name) => format!(" (from {name})"),
                    })
                    .unwrap_or_default();
                msgs.push(format!("{key}{}{from}", err.kind));
            }
            ConfigError::Parse(msgs.join("; "))
        })?;
        cfg.validate().map_err(|e| e.locate(src))?;
        Ok(cfg)
    }

    /// Range checks serde cannot express.
    pub fn validate(&self) -> Result<(), ConfigError> {
        fn bad(key: &str, value: impl std::fmt::Display, allowed: &str) -> ConfigError {
            ConfigError::Value {
                key: key.into(),
                value: value.to_string(),
                allowed: allowed.into(),
            }
        }
        let e = &self.engine;
        if e.shards > crate::shard::BUCKETS {
            return Err(bad(
                "engine.shards",
                e.shards,
                "must be 0 (one per core) to 1024",
            ));
        }
        if !(1..=65_536).contains(&e.batch_size) {
            return Err(bad("engine.batch_size", e.batch_size, "must be 1 to 65536"));
        }
        if !(1..=4096).contains(&e.queue_batches) {
            return Err(bad(
                "engine.queue_batches",
                e.queue_batches,
                "must be 1 to 4096",
            ));
        }
        if let Some(k) = &e.hash_key {
            if crate::shard::HashKey::parse(k).is_none() {
                return Err(bad(
                    "engine.hash_key",
                    "(not shown)",
                    "must be 32 hex digits (128 bits), e.g. from `head -c16 /dev/urandom | xxd -p`",
                ));
            }
        }
        // Durations: positive and at most `max`, so converting to packet-time
        // nanoseconds (u64) can never wrap.
        let d_max = |k: &str, v: Duration, max: Duration| -> Result<(), ConfigError> {
            if v.is_zero() || v > max {
                Err(bad(
                    k,
                    format!("\"{}\"", humantime::format_duration(v)),
                    &format!(
                        "must be a positive duration up to {} such as \"1s\" or \"500ms\"",
                        humantime::format_duration(max)
                    ),
                ))
            } else {
                Ok(())
            }
        };
        let d = |k: &str, v: Duration| d_max(k, v, MAX_WINDOW);
        // Counts: at least `min`, at most `max` (tables cap memory).
        let n = |k: &str, v: u64, min: u64, max: u64| -> Result<(), ConfigError> {
            if v < min || v > max {
                Err(bad(k, v, &format!("must be {min} to {max}")))
            } else {
                Ok(())
            }
        };
        d_max("block.ttl", self.block.ttl, MAX_LONG_DURATION)?;
        d_max(
            "metrics.interval",
            self.metrics.interval,
            Duration::from_secs(60),
        )?;
        if !self.metrics.listen.ip().is_loopback() && !self.metrics.allow_remote {
            return Err(bad(
                "metrics.listen",
                self.metrics.listen,
                "is not a loopback address and /metrics has no authentication: \
                 set metrics.allow_remote = true to expose it (firewall it), \
                 or keep 127.0.0.1 and scrape through a proxy",
            ));
        }
        n("block.capacity", self.block.capacity as u64, 1, MAX_TABLE)?;
        n(
            "block.allowlist",
            self.block.allowlist.len() as u64,
            0,
            65_536,
        )?;
        n("tables.sources", self.tables.sources as u64, 1, MAX_TABLE)?;
        d_max(
            "tables.idle_timeout",
            self.tables.idle_timeout,
            MAX_LONG_DURATION,
        )?;
        let sg = &self.signatures;
        n("signatures.flows", sg.flows as u64, 1, MAX_TABLE)?;
        d_max(
            "signatures.flow_timeout",
            sg.flow_timeout,
            MAX_LONG_DURATION,
        )?;
        n("signatures.max_head", sg.max_head as u64, 256, 1 << 20)?;
        n(
            "signatures.max_ooo_bytes",
            sg.max_ooo_bytes as u64,
            0,
            16 << 20,
        )?;
        n(
            "signatures.buffer_budget",
            sg.buffer_budget as u64,
            1 << 16,
            1 << 40,
        )?;
        n(
            "signatures.max_ooo_segments",
            sg.max_ooo_segments as u64,
            0,
            1024,
        )?;
        n("signatures.http_ports", sg.http_ports.len() as u64, 0, 1024)?;
        n("signatures.rule_files", sg.rule_files.len() as u64, 0, 1024)?;
        let det = &self.detect;
        n(
            "detect.icmp_flood.limit",
            det.icmp_flood.limit as u64,
            1,
            MAX_RATE,
        )?;
        n(
            "detect.syn_flood.limit",
            det.syn_flood.limit as u64,
            1,
            MAX_RATE,
        )?;
        n(
            "detect.syn_flood.half_open_limit",
            det.syn_flood.half_open_limit as u64,
            1,
            MAX_RATE,
        )?;
        n(
            "detect.repeated_attempts.limit",
            det.repeated_attempts.limit as u64,
            1,
            MAX_RATE,
        )?;
        let l = &self.live;
        if !(64..=1 << 20).contains(&l.frames_per_queue) {
            return Err(bad(
                "live.frames_per_queue",
                l.frames_per_queue,
                "must be 64 to 1048576",
            ));
        }
        if !l.ring_size.is_power_of_two() || !(64..=16384).contains(&l.ring_size) {
            return Err(bad(
                "live.ring_size",
                l.ring_size,
                "must be a power of two from 64 to 16384",
            ));
        }
        if l.frames_per_queue < 2 * l.ring_size {
            return Err(bad(
                "live.frames_per_queue",
                l.frames_per_queue,
                "must be at least twice live.ring_size (both ports' fill rings)",
            ));
        }
        d("detect.icmp_flood.window", det.icmp_flood.window)?;
        d("detect.syn_flood.window", det.syn_flood.window)?;
        d(
            "detect.syn_flood.half_open_timeout",
            det.syn_flood.half_open_timeout,
        )?;
        d(
            "detect.syn_flood.half_open_window",
            det.syn_flood.half_open_window,
        )?;
        d("detect.port_scan.window", det.port_scan.window)?;
        d(
            "detect.repeated_attempts.window",
            det.repeated_attempts.window,
        )?;
        n(
            "detect.repeated_attempts.max_targets",
            det.repeated_attempts.max_targets as u64,
            1,
            64,
        )?;
        n(
            "detect.syn_flood.max_pending",
            det.syn_flood.max_pending as u64,
            1,
            65_536,
        )?;
        n(
            "detect.port_scan.distinct_ports",
            det.port_scan.distinct_ports as u64,
            1,
            4096,
        )?;
        n(
            "detect.port_scan.distinct_pairs",
            det.port_scan.distinct_pairs as u64,
            1,
            4096,
        )?;
        let v = &det.victim;
        n("detect.victim.syn_rate", v.syn_rate as u64, 1, MAX_RATE)?;
        n("detect.victim.icmp_rate", v.icmp_rate as u64, 1, MAX_RATE)?;
        n(
            "detect.victim.half_open_rate",
            v.half_open_rate as u64,
            1,
            MAX_RATE,
        )?;
        n(
            "detect.victim.min_sources",
            v.min_sources as u64,
            1,
            1 << 20,
        )?;
        n(
            "detect.victim.max_victims",
            v.max_victims as u64,
            1,
            MAX_TABLE,
        )?;
        n("detect.victim.guard_rate", v.guard_rate as u64, 0, MAX_RATE)?;
        n(
            "detect.victim.guard_table",
            v.guard_table as u64,
            1024,
            MAX_TABLE,
        )?;
        d_max("detect.victim.guard_hold", v.guard_hold, MAX_WINDOW)?;
        self.bgp.validate()?;
        Ok(())
    }

    /// Shard threads to run: `engine.shards`, or when that is 0 one per
    /// available core (at most `BUCKETS`).
    pub fn shards(&self) -> usize {
        match self.engine.shards {
            0 => std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
                .min(crate::shard::BUCKETS),
            n => n,
        }
    }

    /// The shard hash under `engine.hash_key` (the public default if unset).
    pub fn sharder(&self) -> crate::shard::Sharder {
        let key = self
            .engine
            .hash_key
            .as_deref()
            .and_then(crate::shard::HashKey::parse)
            .unwrap_or(crate::shard::HashKey::DEFAULT);
        crate::shard::Sharder::new(key)
    }

    /// `ip` is in `block.allowlist` (an IPv4-mapped IPv6 address is
    /// matched as IPv4): such a source is never inspected or blocked.
    pub fn is_allowlisted(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        self.block.allowlist.iter().any(|n| n.contains(&ip))
    }

    /// The effective value of a dotted key (`detect.icmp_flood.limit`) as
    /// TOML would write it, unquoted; `None` for a key that does not exist.
    pub fn value_of(&self, key: &str) -> Option<String> {
        let mut v = toml::Value::try_from(self).ok()?;
        for part in key.split('.') {
            v = v.as_table_mut()?.remove(part)?;
        }
        Some(match v {
            toml::Value::String(s) => s,
            other => other.to_string(),
        })
    }

    /// Every key with its effective value, as TOML (`flowgate config show`).
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_else(|e| format!("# cannot render: {e}"))
    }

    /// Keys a running process cannot change (table sizes, thread counts,
    /// ports): a reload that changes them keeps the running values and
    /// says which.
    pub fn restart_only_changes(&self, new: &Config) -> Vec<&'static str> {
        RESTART_ONLY
            .iter()
            .filter(|k| (k.changed)(self, new))
            .map(|k| k.name)
            .collect()
    }

    /// `new` with the restart-only keys of `self`.
    pub fn reloadable_from(&self, new: &Config) -> Config {
        let mut c = new.clone();
        for k in RESTART_ONLY {
            (k.keep)(self, &mut c);
        }
        c
    }

    /// Where the packaged config file goes (`deploy/flowgate.service`
    /// passes it with `-c`). Nothing reads it implicitly: without
    /// `--config` / `FLOWGATE_CONFIG` only defaults, environment and
    /// overrides apply.
    pub fn default_path() -> &'static Path {
        Path::new("/etc/flowgate/flowgate.toml")
    }
}

/// A key (or section) that only a restart changes: how to tell it changed,
/// and how to carry the running value into a reloaded config.
struct RestartOnly {
    name: &'static str,
    changed: fn(&Config, &Config) -> bool,
    keep: fn(&Config, &mut Config),
}

/// The one list of restart-only keys, each named once.
macro_rules! restart_only {
    ($($name:literal => $($field:ident).+;)*) => {
        &[$(RestartOnly {
            name: $name,
            changed: |a, b| a.$($field).+ != b.$($field).+,
            keep: |from, to| to.$($field).+ = from.$($field).+.clone(),
        }),*]
    };
}

const RESTART_ONLY: &[RestartOnly] = restart_only! {
    "engine.shards" => engine.shards;
    "engine.batch_size" => engine.batch_size;
    "engine.queue_batches" => engine.queue_batches;
    // A new key reshuffles every source's bucket: state would be lost.
    "engine.hash_key" => engine.hash_key;
    "signatures.flow_timeout" => signatures.flow_timeout;
    "output.alerts" => output.alerts;
    "tables" => tables;
    "block.capacity" => block.capacity;
    // Sizes the kernel's syn_seen map, created at attach.
    "detect.victim.guard_table" => detect.victim.guard_table;
    "signatures.flows" => signatures.flows;
    "signatures.buffer_budget" => signatures.buffer_budget;
    "live" => live;
    "metrics" => metrics;
    "control" => control;
    "output.sqlite" => output.sqlite;
    // The bgp thread and its daemon connection are set up at start.
    "bgp" => bgp;
};

/// A `--set` value: TOML syntax if it parses (numbers, booleans, arrays),
/// otherwise the raw string.
fn toml_value(raw: &str) -> toml::Value {
    toml::from_str::<toml::Table>(&format!("v = {raw}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.to_string()))
}

/// Splits `key=value`.
pub fn parse_set(s: &str) -> Result<(String, String), ConfigError> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.trim().to_string())),
        _ => Err(ConfigError::SetSyntax(s.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(overrides: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let mut s = Sources::default();
        for (k, v) in overrides {
            s.set(k, v);
        }
        Config::load(&s)
    }

    #[test]
    fn every_bound_holds_one_past_its_limit() {
        // The adversarial values that used to pass: a TTL that wrapped to
        // 0.29 s when turned into nanoseconds, tables of 9.2e18 entries.
        for (k, v) in [
            ("block.ttl", "\"18446744074s\""),
            ("block.ttl", "\"31days\""),
            ("tables.sources", "9223372036854775807"),
            ("tables.sources", "16777217"),
            ("signatures.flows", "16777217"),
            ("block.capacity", "16777217"),
            ("signatures.max_ooo_segments", "1025"),
            ("signatures.max_head", "1048577"),
            ("signatures.max_ooo_bytes", "16777217"),
            ("detect.icmp_flood.window", "\"3601s\""),
            ("detect.icmp_flood.limit", "0"),
            ("detect.syn_flood.limit", "100000001"),
            ("metrics.interval", "\"61s\""),
            ("metrics.listen", "\"0.0.0.0:9464\""),
        ] {
            let e = load(&[(k, v)]).expect_err(k).to_string();
            assert!(e.contains(&format!("`{k}`")), "{k}={v}: {e}");
            assert!(e.contains("from a flag or --set"), "{e}");
        }
        // At the limit itself: fine.
        for (k, v) in [
            ("block.ttl", "\"30days\""),
            ("tables.sources", "16777216"),
            ("signatures.max_ooo_segments", "1024"),
            ("detect.icmp_flood.window", "\"1h\""),
        ] {
            load(&[(k, v)]).unwrap_or_else(|e| panic!("{k}={v}: {e}"));
        }
    }

    #[test]
    fn remote_metrics_need_an_explicit_yes() {
        let c = load(&[
            ("metrics.listen", "\"0.0.0.0:9464\""),
            ("metrics.allow_remote", "true"),
        ])
        .unwrap();
        assert!(c.metrics.allow_remote);
        load(&[("metrics.listen", "\"[::1]:9464\"")]).unwrap();
    }

    #[test]
    fn errors_name_the_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f.toml");
        std::fs::write(
            &p,
            "[engine]\nmode = \"prevent\"\n\n[block]\nttl = \"0s\"\n",
        )
        .unwrap();
        let src = Sources {
            file: Some(p.clone()),
            ..Default::default()
        };
        let e = Config::load(&src).unwrap_err().to_string();
        assert!(
            e.contains("`block.ttl`") && e.contains("f.toml line 5"),
            "{e}"
        );
        std::fs::write(&p, b"[engine]\nmode = \"prevent\"\n# caf\xe9\n").unwrap();
        let e = Config::load(&src).unwrap_err().to_string();
        assert!(e.contains("line 3: not UTF-8"), "{e}");
        std::fs::write(&p, "[engine]\nshards = \"many\"\n").unwrap();
        let e = Config::load(&src).unwrap_err().to_string();
        assert!(
            !e.contains("TOML source string") && e.contains("f.toml"),
            "{e}"
        );
    }

    #[test]
    fn value_of_renders_effective_values() {
        let c = load(&[("detect.icmp_flood.limit", "7")]).unwrap();
        assert_eq!(c.value_of("detect.icmp_flood.limit").as_deref(), Some("7"));
        assert_eq!(
            c.value_of("detect.icmp_flood.window").as_deref(),
            Some("1s")
        );
        assert_eq!(c.value_of("engine.drop_malformed").as_deref(), Some("true"));
        assert_eq!(c.value_of("detect.nope"), None);
        // Every key a built-in rule's description names exists.
        for m in crate::rules::BUILTIN {
            let text = m.fires_when(|k| c.value_of(k));
            assert!(!text.contains('{'), "{}: {text}", m.name);
            let mut rest = m.fires_when.as_ref();
            while let Some(i) = rest.find('{') {
                let j = rest[i..].find('}').unwrap();
                let key = &rest[i + 1..i + j];
                assert!(c.value_of(key).is_some(), "{}: unknown key {key}", m.name);
                rest = &rest[i + j..];
            }
        }
    }

    #[test]
    fn reload_keeps_restart_only_keys_and_takes_the_rest() {
        let running = load(&[("engine.shards", "2"), ("live.ingress", "\"eth1\"")]).unwrap();
        let fresh = load(&[
            ("engine.shards", "8"),
            ("tables.sources", "1024"),
            ("detect.icmp_flood.limit", "7"),
            ("engine.mode", "\"detect\""),
        ])
        .unwrap();
        let changed = running.restart_only_changes(&fresh);
        assert!(changed.contains(&"engine.shards") && changed.contains(&"tables"));
        assert!(changed.contains(&"live"), "{changed:?}");
        let applied = running.reloadable_from(&fresh);
        assert_eq!(applied.engine.shards, 2);
        assert_eq!(applied.tables, running.tables);
        assert_eq!(applied.live.ingress, "eth1");
        assert_eq!(applied.detect.icmp_flood.limit, 7);
        assert_eq!(applied.engine.mode, Mode::Detect);
        assert!(running.restart_only_changes(&applied).is_empty());
    }

    #[test]
    fn live_and_metrics_keys_are_checked() {
        let e = load(&[("live.ring_size", "1000")]).unwrap_err().to_string();
        assert!(
            e.contains("live.ring_size") && e.contains("power of two"),
            "{e}"
        );
        let e = load(&[
            ("live.frames_per_queue", "1024"),
            ("live.ring_size", "1024"),
        ])
        .unwrap_err()
        .to_string();
        assert!(e.contains("live.frames_per_queue"), "{e}");
        let e = load(&[("metrics.listen", "\"nowhere\"")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("metrics.listen"), "{e}");
    }

    #[test]
    fn queue_full_policy_follows_fail_closed_unless_set() {
        let c = load(&[]).unwrap();
        assert_eq!(c.live.queue_full_policy(), QueueFullPolicy::Bypass);
        let c = load(&[("live.fail_closed", "true")]).unwrap();
        assert_eq!(c.live.queue_full_policy(), QueueFullPolicy::Drop);
        let c = load(&[("live.fail_closed", "true"), ("live.queue_full", "bypass")]).unwrap();
        assert_eq!(c.live.queue_full_policy(), QueueFullPolicy::Bypass);
        let c = load(&[("live.queue_full", "drop")]).unwrap();
        assert_eq!(c.live.queue_full_policy(), QueueFullPolicy::Drop);
        let e = load(&[("live.queue_full", "wait")])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("live.queue_full") && e.contains("bypass") && e.contains("drop"),
            "{e}"
        );
    }

    #[test]
    fn defaults_validate() {
        let c = load(&[]).unwrap();
        assert_eq!(c, Config::default());
    }

    #[test]
    fn overrides_nest_and_parse_types() {
        let c = load(&[
            ("detect.icmp_flood.limit", "7"),
            ("block.ttl", "90s"),
            ("block.allowlist", "[\"198.18.0.0/24\"]"),
            ("engine.mode", "detect"),
        ])
        .unwrap();
        assert_eq!(c.detect.icmp_flood.limit, 7);
        assert_eq!(c.block.ttl, Duration::from_secs(90));
        assert!(c.is_allowlisted("198.18.0.9".parse().unwrap()));
        assert!(!c.is_allowlisted("198.19.0.9".parse().unwrap()));
        assert_eq!(c.engine.mode, Mode::Detect);
    }

    #[test]
    fn errors_name_the_key() {
        let e = load(&[("detect.icmp_flood.limt", "7")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("limt"), "{e}");
        let e = load(&[("detect.icmp_flood.limit", "\"lots\"")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("detect.icmp_flood.limit"), "{e}");
        let e = load(&[("block.ttl", "0s")]).unwrap_err().to_string();
        assert!(e.contains("block.ttl"), "{e}");
        let e = load(&[("engine.mode", "block")]).unwrap_err().to_string();
        assert!(e.contains("engine.mode"), "{e}");
    }
}
