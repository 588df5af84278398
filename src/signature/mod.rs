//! Payload signatures: rules compiled into Hyperscan databases, matched
//! against normalized HTTP request buffers.
//!
//! A `SignatureSet` is compiled once (off the packet path) and shared
//! read-only by every shard through an `Arc`; each shard owns a `Scanner`
//! with its Hyperscan scratch and reusable buffers. Swapping in a new set is
//! a pointer swap plus one scratch allocation per shard.

mod cache;
#[cfg(test)]
mod cost;
pub mod native;
mod prefilter;
pub mod suricata;
pub mod verify;

use crate::http::{self, BodyKind, Framing, Head, Norm, Normalizer};
use crate::rules::{RuleBook, RuleId, RuleMeta};
use crate::stream::{Budget, Event, HttpFlow, Limits};
use hyperscan::{
    BlockDatabase, Builder, Matching, Pattern, PatternFlags, Patterns, Scratch, Stream,
    StreamingDatabase,
};
use prefilter::{Prefilter, View as PreView};
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use verify::{Detect, Flowbit, ThresholdState, View, Views, N_VIEWS};

/// Which view of the request a pattern is matched against.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Buffer {
    /// Normalized request target (path and query).
    Uri,
    /// Normalized header fields (cookies, user agent, ...), each line
    /// (`name: value\n`) matched on its own.
    Headers,
    /// Normalized body prefix.
    Body,
    /// The raw request bytes as received, undecoded.
    Request,
    /// Any of uri, headers, body.
    Any,
}

impl Buffer {
    /// Name as written in rule files and alert reasons (`uri`, `body`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Buffer::Uri => "uri",
            Buffer::Headers => "headers",
            Buffer::Body => "body",
            Buffer::Request => "request",
            Buffer::Any => "any",
        }
    }
}

/// What a matching rule does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Log and forward.
    Alert,
    /// Drop the packet and the rest of its flow.
    Drop,
    /// Drop, and block the source for `block.ttl`.
    Block,
}

/// One pattern of a rule and where it applies. All of a rule's conditions
/// must match.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cond {
    /// The view of the request the pattern is matched against.
    pub buffer: Buffer,
    /// Hyperscan expression (PCRE subset).
    pub pattern: String,
}

/// A signature rule as loaded (flowgate TOML or Suricata), before it is
/// compiled: identity, what a match does, and what must match.
#[derive(Clone, Debug)]
pub struct SigRule {
    /// Identity and EVE metadata; compiling moves it into the rule book.
    pub meta: RuleMeta,
    /// What a match does to the packet, the flow and the source.
    pub action: Action,
    /// Explanation put in the alert's reason (the rule's `reason`, else
    /// its `msg`).
    pub reason: String,
    /// Patterns that must all match, each in its buffer (flowgate rules;
    /// empty for a Suricata rule, which has `detect` instead).
    pub conds: Vec<Cond>,
    /// A Suricata rule: its keywords, verified exactly after a Hyperscan
    /// prefilter on its fast pattern.
    pub detect: Option<Box<Detect>>,
    /// Where the rule is (`file:line`, or `file` for TOML rules), for
    /// messages about it.
    pub origin: String,
}

/// A rule that could not be loaded, with why. Never dropped silently.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejected {
    /// Where the rule is: `file:line`.
    pub origin: String,
    /// Its sid, when that much could be read.
    pub id: Option<RuleId>,
    /// Why it does not map (the keyword or construct at fault).
    pub reason: String,
}

impl Rejected {
    /// The reason without its particulars, to group skipped rules
    /// (`keyword \`flowbits\``, `port-restricted`, `Hyperscan: ...`).
    pub fn kind(&self) -> String {
        let r = self.reason.as_str();
        if r.starts_with("port ") {
            return "port-restricted".into();
        }
        if r.starts_with("address ") {
            return "literal address".into();
        }
        if r.starts_with("invalid sid") {
            return "invalid sid".into();
        }
        if r.starts_with("rule ") {
            return format!("Hyperscan: {}", r.rsplit(": ").next().unwrap_or(r));
        }
        if let Some(k) = r.strip_prefix("keyword ") {
            return k.split(" does").next().unwrap_or(k).to_string();
        }
        r.split(": ").next().unwrap_or(r).to_string()
    }
}

impl std::fmt::Display for Rejected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.id {
            Some(id) => write!(f, "{}: sid {id}: {}", self.origin, self.reason),
            None => write!(f, "{}: {}", self.origin, self.reason),
        }
    }
}

/// The built-in SQL injection rules (the file is the source of truth).
pub const BUILTIN_SQLI: &str = include_str!("../../deploy/rules/sqli.toml");

/// Why a rule file cannot be used at all (one bad rule in a Suricata file
/// is a [`Rejected`] instead, and the rest still load).
#[derive(Debug, thiserror::Error)]
pub enum RuleFileError {
    /// The file could not be read.
    #[error("{}: {source}", path.display())]
    Read {
        /// The rule file.
        path: PathBuf,
        /// Why reading failed.
        #[source]
        source: std::io::Error,
    },
    /// A flowgate TOML rule file that does not parse or validate; the
    /// message names the line or the rule.
    #[error("{origin}: {message}")]
    Invalid {
        /// The file (or `built-in sqli.toml`).
        origin: String,
        /// What is wrong, with the line or rule.
        message: String,
    },
}

/// Loads rules from a file: `.toml` in flowgate's format, anything else as
/// Suricata rules. Returns the rules that load and those that do not.
pub fn load_file(path: &Path) -> Result<(Vec<SigRule>, Vec<Rejected>), RuleFileError> {
    let bytes = std::fs::read(path).map_err(|source| RuleFileError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let origin = path.display().to_string();
    if path.extension().is_some_and(|e| e == "toml") {
        let text = std::str::from_utf8(&bytes).map_err(|e| {
            let line = 1 + bytes[..e.valid_up_to()]
                .iter()
                .filter(|&&b| b == b'\n')
                .count();
            RuleFileError::Invalid {
                origin: format!("{origin}:{line}"),
                message: "not UTF-8".into(),
            }
        })?;
        native::parse(text, &origin).map(|r| (r, Vec::new()))
    } else {
        Ok(suricata::parse_bytes(&bytes, &origin))
    }
}

/// Normalized buffers are already case-folded; CASELESS also covers the raw
/// buffer. SINGLEMATCH: one report per pattern and scan is all we need.
fn hs_flags() -> PatternFlags {
    PatternFlags::CASELESS | PatternFlags::DOTALL | PatternFlags::SINGLEMATCH
}

/// Compiled rules. Pattern IDs in every database are indices into `conds`.
pub struct SignatureSet {
    /// Per rule, in load order: its metadata (shared with the book), action
    /// and reason. Order is priority: when several rules complete on the
    /// same bytes, the first one wins.
    pub rules: Vec<(Arc<RuleMeta>, Action, String)>,
    /// (rule index, buffer) per condition.
    conds: Vec<(usize, Buffer)>,
    /// Conditions per rule, to check that all matched.
    rule_conds: Vec<Vec<usize>>,
    /// Normalized patterns for the head's views (uri, headers): block
    /// mode, each head scanned once when it is complete.
    head: Option<BlockDatabase>,
    /// Normalized patterns for the body, streaming: a body is scanned as
    /// it arrives, never buffered.
    body: Option<StreamingDatabase>,
    /// The same patterns in block mode, for a body that arrives whole (one
    /// piece of known length): a block scan costs about a third of a
    /// stream's reset, scan, compress, expand and end on such bodies.
    body_block: Option<BlockDatabase>,
    /// Patterns for the raw request (the head's bytes, then the body with
    /// the chunked coding removed), streaming.
    raw: Option<StreamingDatabase>,
    /// Tells sets apart: a flow's saved stream state belongs to one set.
    generation: u64,
    /// Literal prefilter of the normalized patterns (uri, headers, body):
    /// a view is normalized and scanned only when some pattern's tokens
    /// are in its decoded bytes. `None`: every view takes the full path.
    pre: Option<Prefilter>,
    /// Suricata rules: prefilter databases and exact verification.
    suri: SuriSet,
    /// Rules Hyperscan refused (each alone, or found by isolating it in a
    /// combined build): skipped, the rest compiled.
    pub rejected: Vec<Rejected>,
    /// Per rule: skipped at compile time (never fires).
    dead: Vec<bool>,
}

/// One loaded Suricata rule.
struct SuriRule {
    /// Index in `SignatureSet::rules`.
    ri: usize,
    detect: Box<Detect>,
    /// Has an `http.request_body` section: verified when the body is in.
    body: bool,
    /// Flowbit operations with the bits numbered (set-wide).
    bits: Vec<(BitOp, u16)>,
    /// Sets, unsets or toggles a bit: verified before the rules that only
    /// test bits (Suricata orders flowbit setters first).
    setter: bool,
}

/// A flowbit operation on a numbered bit.
#[derive(Clone, Copy, PartialEq, Eq)]
enum BitOp {
    Set,
    Unset,
    Toggle,
    IsSet,
    IsNotSet,
}

/// The Suricata rules of a set.
#[derive(Default)]
struct SuriSet {
    rules: Vec<SuriRule>,
    /// Per view: block-mode database of the rules' prefilter patterns
    /// (pattern id = index in `rules`).
    pre: Vec<Option<BlockDatabase>>,
    /// Rules with no usable prefilter: verified on every request.
    always: Vec<usize>,
    /// Views some rule uses.
    need: [bool; N_VIEWS],
    /// Some rule needs the request body.
    any_body: bool,
    /// Flowbit names, numbered in order of first use.
    bit_names: Vec<String>,
}

impl SuriSet {
    fn bit(&mut self, name: &str) -> u16 {
        match self.bit_names.iter().position(|n| n == name) {
            Some(i) => i as u16,
            None => {
                self.bit_names.push(name.to_string());
                (self.bit_names.len() - 1) as u16
            }
        }
    }
}

impl std::fmt::Debug for SignatureSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "SignatureSet({} rules, {} patterns)",
            self.rules.len(),
            self.conds.len()
        )
    }
}

/// Why a set of rules does not compile.
#[derive(Debug, thiserror::Error)]
pub enum CompileError {
    /// Hyperscan refused a combination of patterns each of which builds
    /// alone (a resource limit of the whole database).
    #[error("Hyperscan refuses the combined database of {patterns} pattern(s) although each rule builds alone: {message}")]
    Combined {
        /// Patterns in the database.
        patterns: usize,
        /// Hyperscan's message.
        message: String,
    },
    /// Hyperscan refused a pattern; names the rule and where in it.
    #[error("rule {id} pattern {index} `{pattern}`: {message}")]
    Pattern {
        /// The rule (0 if Hyperscan did not say which expression failed).
        id: RuleId,
        /// 1-based pattern number within the rule.
        index: usize,
        /// The expression as written in the rule.
        pattern: String,
        /// Hyperscan's message; it names the character index when it can.
        message: String,
    },
    /// A rule ID the book already holds (behavioural, built-in or loaded).
    #[error("rule id {0} is defined twice (IDs must be unique across built-in and loaded rules)")]
    DuplicateId(RuleId),
}

/// Hyperscan could not allocate a shard's scratch space or streams for a set.
#[derive(Debug, thiserror::Error)]
#[error("Hyperscan scratch for {rules} signature rule(s): {source}")]
pub struct ScratchError {
    rules: usize,
    #[source]
    source: hyperscan::Error,
}

/// A database (if any pattern built) and the rules left out, with why.
type Built<T> = (Option<hyperscan::Database<T>>, Vec<(usize, String)>);

/// Patterns of one database, each with the rule that owns it.
#[derive(Clone, Default)]
struct DbPatterns {
    pats: Vec<Pattern>,
    /// (rule index, message prefix naming the rule and pattern).
    owner: Vec<(usize, String)>,
}

impl DbPatterns {
    fn push(&mut self, p: Pattern, owner: usize, what: String) {
        self.pats.push(p);
        self.owner.push((owner, what));
    }

    /// Builds the database; a rule whose pattern Hyperscan refuses is left
    /// out and returned with the reason (the rest still build). Hyperscan
    /// names the failing expression; when it does not (a resource limit),
    /// each rule is built alone to find it.
    fn build<T: hyperscan::Mode>(mut self) -> Result<Built<T>, CompileError> {
        let mut bad: Vec<(usize, String)> = Vec::new();
        loop {
            if self.pats.is_empty() {
                return Ok((None, bad));
            }
            let pats = &self.pats;
            let err = match cache::load_or_build::<T>(pats, || Patterns(pats.clone()).build::<T>())
            {
                Ok(db) => return Ok((Some(db), bad)),
                Err(e) => e,
            };
            let (msg, expr) = hs_error(&err);
            let culprit = match expr.and_then(|i| self.owner.get(i)) {
                Some((o, what)) => Some((*o, format!("{what}: {msg}"))),
                None => self.find_alone::<T>(),
            };
            let Some((o, why)) = culprit else {
                return Err(CompileError::Combined {
                    patterns: self.pats.len(),
                    message: msg,
                });
            };
            let keep: Vec<bool> = self.owner.iter().map(|(x, _)| *x != o).collect();
            let mut k = keep.iter();
            self.pats.retain(|_| k.next().copied().unwrap_or(false));
            let mut k = keep.iter();
            self.owner.retain(|_| k.next().copied().unwrap_or(false));
            bad.push((o, why));
        }
    }

    /// The first rule whose patterns do not build alone.
    fn find_alone<T: hyperscan::Mode>(&self) -> Option<(usize, String)> {
        let mut owners: Vec<usize> = self.owner.iter().map(|o| o.0).collect();
        owners.dedup();
        for o in owners {
            let (pats, whats): (Vec<Pattern>, Vec<&String>) = self
                .pats
                .iter()
                .zip(&self.owner)
                .filter(|(_, w)| w.0 == o)
                .map(|(p, w)| (p.clone(), &w.1))
                .unzip();
            if let Err(e) = Patterns(pats).build::<T>() {
                let (msg, expr) = hs_error(&e);
                let what = expr
                    .and_then(|i| whats.get(i))
                    .or(whats.first())
                    .map_or(String::new(), |w| w.to_string());
                return Some((o, format!("{what}: {msg}")));
            }
        }
        None
    }
}

/// Hyperscan flags for a Suricata prefilter literal.
fn literal_flags(nocase: bool) -> PatternFlags {
    let f = PatternFlags::DOTALL | PatternFlags::SINGLEMATCH;
    if nocase {
        f | PatternFlags::CASELESS
    } else {
        f
    }
}

/// A Suricata rule's prefilter: its fast pattern as a literal, else its
/// first positive non-relative pcre in Hyperscan's prefilter mode (a
/// superset of the pcre's matches). `None`: verify on every request.
fn prefilter(d: &Detect) -> Option<(View, Pattern, String)> {
    if let Some((view, c)) = d.fast_pattern() {
        let expr = suricata::escape_regex(&c.bytes);
        let p = Pattern::with_flags(expr, literal_flags(c.nocase)).ok()?;
        let what = format!("fast pattern `{}`", String::from_utf8_lossy(&c.bytes));
        return Some((view, p, what));
    }
    for s in &d.sections {
        for i in &s.items {
            if let verify::Item::Pcre(p) = i {
                if p.negated || p.relative {
                    continue;
                }
                let mut f = PatternFlags::PREFILTER | PatternFlags::SINGLEMATCH;
                for (on, flag) in [
                    (p.caseless, PatternFlags::CASELESS),
                    (p.dotall, PatternFlags::DOTALL),
                    (p.multiline, PatternFlags::MULTILINE),
                ] {
                    if on {
                        f |= flag;
                    }
                }
                if p.extended {
                    continue;
                }
                let Ok(pat) = Pattern::with_flags(p.source.clone(), f) else {
                    continue;
                };
                if pat.info().is_ok() {
                    return Some((s.view, pat, format!("pcre `{}` (prefilter)", p.source)));
                }
            }
        }
    }
    None
}

impl SignatureSet {
    /// Compiles rules and registers each rule in `book`, which then owns
    /// its metadata: a rule whose ID the book already holds is an error.
    /// flowgate rules go into three Hyperscan databases (head views in
    /// block mode; body and raw request in streaming mode); Suricata rules
    /// into one block-mode prefilter database per buffer, verified exactly
    /// on a prefilter match. A rule Hyperscan refuses is skipped with its
    /// reason in [`SignatureSet::rejected`]; the others still compile.
    pub fn compile(rules: Vec<SigRule>, book: &mut RuleBook) -> Result<SignatureSet, CompileError> {
        static GENERATION: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        let mut set = SignatureSet {
            rules: Vec::new(),
            conds: Vec::new(),
            rule_conds: Vec::new(),
            head: None,
            body: None,
            body_block: None,
            raw: None,
            generation: GENERATION.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            pre: None,
            suri: SuriSet::default(),
            rejected: Vec::new(),
            dead: Vec::new(),
        };
        let (mut head, mut body, mut raw): (DbPatterns, DbPatterns, DbPatterns) =
            Default::default();
        let mut pre: Vec<DbPatterns> = (0..N_VIEWS).map(|_| DbPatterns::default()).collect();
        // Normalized patterns and their views, for the literal prefilter.
        let mut gated: Vec<(usize, String, &'static [PreView])> = Vec::new();
        let mut origins: Vec<(String, RuleId)> = Vec::new();
        for rule in rules {
            let ri = set.rules.len();
            if let Some(detect) = rule.detect {
                let pf = prefilter(&detect);
                let meta = book.insert(rule.meta).map_err(CompileError::DuplicateId)?;
                let si = set.suri.rules.len();
                match pf {
                    Some((view, mut p, what)) => {
                        p.id = Some(si);
                        pre[view.index()].push(p, ri, format!("rule {} {what}", meta.id));
                    }
                    None => set.suri.always.push(si),
                }
                for s in &detect.sections {
                    set.suri.need[s.view.index()] = true;
                }
                let needs_body = detect.needs_body();
                set.suri.any_body |= needs_body;
                let bits: Vec<(BitOp, u16)> = detect
                    .flowbits
                    .iter()
                    .map(|f| match f {
                        Flowbit::Set(n) => (BitOp::Set, set.suri.bit(n)),
                        Flowbit::Unset(n) => (BitOp::Unset, set.suri.bit(n)),
                        Flowbit::Toggle(n) => (BitOp::Toggle, set.suri.bit(n)),
                        Flowbit::IsSet(n) => (BitOp::IsSet, set.suri.bit(n)),
                        Flowbit::IsNotSet(n) => (BitOp::IsNotSet, set.suri.bit(n)),
                    })
                    .collect();
                let setter = bits
                    .iter()
                    .any(|b| matches!(b.0, BitOp::Set | BitOp::Unset | BitOp::Toggle));
                set.suri.rules.push(SuriRule {
                    ri,
                    detect,
                    body: needs_body,
                    bits,
                    setter,
                });
                origins.push((rule.origin, meta.id));
                set.rule_conds.push(Vec::new());
                set.rules.push((meta, rule.action, rule.reason));
                continue;
            }
            // A flowgate rule: each pattern must be valid alone.
            let mut pats = Vec::new();
            let mut refused = None;
            for (pi, c) in rule.conds.iter().enumerate() {
                let checked = Pattern::with_flags(c.pattern.clone(), hs_flags())
                    .map_err(|e| e.to_string())
                    .and_then(|p| p.info().map(|_| p).map_err(|e| hs_error(&e).0));
                match checked {
                    Ok(p) => pats.push(p),
                    Err(message) => {
                        refused = Some(CompileError::Pattern {
                            id: rule.meta.id,
                            index: pi + 1,
                            pattern: c.pattern.clone(),
                            message,
                        });
                        break;
                    }
                }
            }
            if let Some(e) = refused {
                set.rejected.push(Rejected {
                    origin: rule.origin.clone(),
                    id: Some(rule.meta.id),
                    reason: e.to_string(),
                });
                continue;
            }
            let meta = book.insert(rule.meta).map_err(CompileError::DuplicateId)?;
            let mut mine = Vec::new();
            for (pi, (c, mut p)) in rule.conds.iter().zip(pats).enumerate() {
                let views: &'static [PreView] = match c.buffer {
                    Buffer::Uri => &[PreView::Uri],
                    Buffer::Headers => &[PreView::Headers],
                    Buffer::Body => &[PreView::Body],
                    Buffer::Any => &[PreView::Uri, PreView::Headers, PreView::Body],
                    Buffer::Request => &[],
                };
                let id = set.conds.len();
                if !views.is_empty() {
                    gated.push((id, c.pattern.clone(), views));
                }
                set.conds.push((ri, c.buffer));
                mine.push(id);
                p.id = Some(id);
                let targets: &mut [&mut DbPatterns] = match c.buffer {
                    Buffer::Uri | Buffer::Headers => &mut [&mut head],
                    Buffer::Body => &mut [&mut body],
                    Buffer::Any => &mut [&mut head, &mut body],
                    Buffer::Request => &mut [&mut raw],
                };
                for t in targets.iter_mut() {
                    t.push(
                        p.clone(),
                        ri,
                        format!("rule {} pattern {} `{}`", meta.id, pi + 1, c.pattern),
                    );
                }
            }
            origins.push((rule.origin, meta.id));
            set.rule_conds.push(mine);
            set.rules.push((meta, rule.action, rule.reason));
        }
        set.dead = vec![false; set.rules.len()];
        let gated: Vec<(usize, &str, &[PreView])> =
            gated.iter().map(|(i, p, v)| (*i, p.as_str(), *v)).collect();
        set.pre = Prefilter::build(&gated);
        let mut bad = Vec::new();
        let (db, b) = head.build()?;
        set.head = db;
        bad.extend(b);
        let (db, b) = body.clone().build()?;
        set.body = db;
        bad.extend(b);
        let (db, b) = body.build()?;
        set.body_block = db;
        bad.extend(b);
        let (db, b) = raw.build()?;
        set.raw = db;
        bad.extend(b);
        for p in pre {
            let (db, b) = p.build()?;
            set.suri.pre.push(db);
            bad.extend(b);
        }
        for (ri, why) in bad {
            if let (Some(d), Some((origin, id))) = (set.dead.get_mut(ri), origins.get(ri)) {
                if !*d {
                    *d = true;
                    set.rejected.push(Rejected {
                        origin: origin.clone(),
                        id: Some(*id),
                        reason: why,
                    });
                }
            }
        }
        Ok(set)
    }

    /// Rules that can fire: compiled and not skipped.
    pub fn live_count(&self) -> usize {
        self.dead.iter().filter(|d| !**d).count()
    }

    /// Rules compiled (not patterns).
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// No rule compiled.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }
}

/// Hyperscan's message and, for compile errors, which expression failed.
fn hs_error(e: &hyperscan::Error) -> (String, Option<usize>) {
    match e {
        hyperscan::Error::Hyperscan(hyperscan::HsError::CompileError(ce)) => {
            (ce.message().to_string(), ce.expression())
        }
        other => (other.to_string(), None),
    }
}

/// A signature match on one request.
#[derive(Clone, Debug)]
pub struct Hit {
    /// The rule that matched.
    pub meta: Arc<RuleMeta>,
    /// What the rule does: decides the verdict and the flow's fate.
    pub action: Action,
    /// The rule's explanation, for the alert.
    pub reason: String,
    /// Where the (last) pattern matched.
    pub buffer: Buffer,
    /// Up to 48 bytes of that buffer ending at the match (lossy UTF-8),
    /// quoted in the alert's reason; empty if the match ended in bytes
    /// scanned with an earlier segment.
    pub excerpt: String,
}

/// Conditions of multi-pattern rules matched so far in one request (a
/// single-pattern rule fires at once and needs no memory). Bounded: past
/// this many, further partial matches are not remembered.
const MAX_PARTIAL: usize = 256;

/// One flow's inspection state for its current request: the body and raw
/// streams' Hyperscan state (compressed, so an idle flow holds only a few
/// bytes), the body's normalizer, and the conditions matched so far.
#[derive(Debug, Default)]
pub struct RequestScan {
    generation: u64,
    body: Vec<u8>,
    body_pos: u64,
    raw: Vec<u8>,
    raw_pos: u64,
    norm: Option<Normalizer>,
    partial: Vec<u32>,
    /// The last normalized body bytes (at most [`EXCERPT`]), so an alert
    /// can quote what led up to a match that ends in a later segment.
    tail: Vec<u8>,
    /// Suricata rules with a body section: the head (bytes, parsed) kept
    /// until the body is in; `None` when no loaded rule needs the body or
    /// the request has none.
    shead: Option<Box<(Vec<u8>, Head)>>,
    /// The body prefix those rules verify, at most [`verify::BODY_LIMIT`].
    sbody: Vec<u8>,
    /// The flow's flowbits that are set: kept from request to request
    /// (only this field survives the end of a request).
    flowbits: Vec<u16>,
    /// What `shead` and `sbody` hold, counted against the shard's
    /// [`SURI_HOLD_BUDGET`] and given back when dropped.
    sheld: Option<Held>,
    /// The body was scanned whole, to its end ([`Scanner::body_last`]).
    body_done: bool,
    /// The body while the prefilter has found no candidate in it: not yet
    /// normalized nor scanned (see [`Pending`]). `None` once the body
    /// takes the full path, or when there is no prefilter.
    pending: Option<Box<Pending>>,
}

/// A request body the literal prefilter has not found a candidate in yet.
/// Its raw bytes are kept (at most [`PENDING_MAX`], within the shard's
/// [`PENDING_BUDGET`]); when a candidate appears, or the limit is reached,
/// they are normalized and scanned in one step and the body continues on
/// the full path. No pattern can have matched in the bytes kept (their
/// decoded form lacks its tokens), so the first hit is the same, on the
/// same segment, as when every segment is scanned as it arrives.
#[derive(Debug)]
struct Pending {
    /// Raw body bytes (chunked coding removed) kept so far.
    raw: Vec<u8>,
    /// Decoding stages run over the body, for the prefilter.
    dec: Normalizer,
    /// Tokens seen in the decoded body so far (bitset).
    seen: prefilter::Seen,
    /// Last decoded bytes (fewer than a token's length), so a token cut by
    /// a segment boundary is still found.
    carry: Vec<u8>,
    /// `raw` counted against the shard's budget.
    held: Held,
}

/// Raw body bytes one request may keep while the prefilter has found no
/// candidate in its body.
pub const PENDING_MAX: usize = 4096;

/// Raw body bytes one shard's flows may keep in all as [`PENDING_MAX`]
/// allows. Past it, bodies take the full path at once (same results).
pub const PENDING_BUDGET: usize = 16 << 20;

/// Bytes one shard's flows may hold for Suricata body rules (kept heads
/// and body prefixes). A request that would exceed it is not verified by
/// body rules (counted, [`Scanner::take_body_unverified`]) rather than
/// verified on part of its body.
pub const SURI_HOLD_BUDGET: usize = 64 << 20;

/// Bytes held by one request against the shard's budget.
#[derive(Debug)]
struct Held {
    used: Arc<std::sync::atomic::AtomicUsize>,
    n: usize,
}

impl Held {
    fn take(&mut self, n: usize, budget: usize) -> bool {
        use std::sync::atomic::Ordering::Relaxed;
        // One shard thread owns every handle: load-then-store is not racy.
        let used = self.used.load(Relaxed);
        if used.saturating_add(n) > budget {
            return false;
        }
        self.used.store(used + n, Relaxed);
        self.n += n;
        true
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        use std::sync::atomic::Ordering::Relaxed;
        let used = self.used.load(Relaxed);
        self.used.store(used.saturating_sub(self.n), Relaxed);
    }
}

/// Bytes of context quoted before a match in an alert's reason.
const EXCERPT: usize = 48;

impl RequestScan {
    /// Bytes held (for memory accounting and tests).
    pub fn held(&self) -> usize {
        self.body.capacity()
            + self.raw.capacity()
            + self.partial.capacity() * 4
            + self.sbody.capacity()
            + self.shead.as_ref().map_or(0, |h| h.0.capacity())
            + self.pending.as_ref().map_or(0, |p| {
                p.raw.capacity() + p.carry.capacity() + size_of::<Pending>()
            })
    }
}

/// Which stream of a request.
#[derive(Clone, Copy)]
enum Which {
    Body,
    Raw,
}

/// Per-shard scanning state: Hyperscan scratch, one working stream per
/// streaming database (a flow's state is expanded into it, scanned and
/// compressed back), and reusable buffers.
pub struct Scanner {
    set: Arc<SignatureSet>,
    scratch: Option<Scratch>,
    body_stream: Option<Stream>,
    raw_stream: Option<Stream>,
    uri: Vec<u8>,
    headers: Vec<u8>,
    body_out: Vec<u8>,
    norm: http::Scratch,
    packed: Vec<u8>,
    /// Matches of the current scan step: (condition, buffer, end offset in
    /// the step's data when it ended there; for header lines, in
    /// `headers`).
    found: Vec<(usize, Buffer, Option<usize>)>,
    /// Hyperscan calls that failed: data that was not inspected. Counted
    /// into the shard's stats (`signature_scan_errors`), never ignored.
    scan_errors: u64,
    /// The Suricata buffers of the request being verified.
    views: Views,
    /// Suricata rules whose prefilter matched (indices in `SuriSet::rules`).
    cands: Vec<usize>,
    /// Request bodies longer than [`verify::BODY_LIMIT`]: the rest was not
    /// verified by body rules (as in Suricata past its request-body-limit).
    body_truncated: u64,
    /// Requests with a body not verified by Suricata body rules because the
    /// shard's [`SURI_HOLD_BUDGET`] was spent.
    body_unverified: u64,
    /// Bytes held for Suricata body rules by this shard's flows.
    held: Arc<std::sync::atomic::AtomicUsize>,
    /// Source and time (ns) of the packet being inspected, for thresholds.
    packet: (IpAddr, u64),
    /// Threshold state per (rule index, source); bounded by
    /// [`THRESHOLD_ENTRIES`].
    thresholds: std::collections::HashMap<(usize, IpAddr), Option<ThresholdState>>,
    /// Use the literal prefilter ([`Scanner::set_prefilter`]).
    pre_on: bool,
    /// Prefilter tokens seen in the head view being checked.
    seen: prefilter::Seen,
    /// Decoded bytes for the prefilter.
    dec: Vec<u8>,
    /// Bytes kept by this shard's pending bodies ([`PENDING_BUDGET`]).
    pend_held: Arc<std::sync::atomic::AtomicUsize>,
    /// Heads and bodies the prefilter let skip normalization and the full
    /// scan.
    pre_skips: (u64, u64),
    /// Prefilter candidates (condition indices) in the head's target and
    /// header fields.
    cand_uri: Vec<usize>,
    cand_hdr: Vec<usize>,
    /// Header lines that matched no condition: a repeat is skipped.
    line_memo: crate::memo::Memo,
    /// Request targets that matched no condition: a repeat is skipped.
    uri_memo: crate::memo::Memo,
    /// Where each line scanned starts in `headers`.
    line_starts: Vec<usize>,
}

/// How a head is scanned, as its prefilter candidates say.
enum HeadPlan {
    /// No candidate: no normalized pattern can match.
    Skip,
    /// Normalized and scanned with the whole head database.
    Full,
}

/// Threshold entries per shard. When full, entries whose window has passed
/// are dropped; if none has, the table is emptied (counting restarts).
pub const THRESHOLD_ENTRIES: usize = 65_536;

impl Drop for Scanner {
    fn drop(&mut self) {
        // The crate's Stream does not free itself: close ours.
        if let Some(scratch) = &self.scratch {
            for s in [self.body_stream.take(), self.raw_stream.take()]
                .into_iter()
                .flatten()
            {
                let _ = s.close(scratch, |_, _, _, _| Matching::Terminate);
            }
        }
    }
}

impl Scanner {
    /// A scanner for `set` with its own Hyperscan scratch, streams and
    /// buffers: one per shard thread (scratch must not be shared). Fails if
    /// Hyperscan cannot allocate them.
    pub fn new(set: Arc<SignatureSet>) -> Result<Scanner, ScratchError> {
        let err = |source| ScratchError {
            rules: set.len(),
            source,
        };
        let mut scratch: Option<Scratch> = None;
        let mut grow = |alloc: &dyn Fn() -> hyperscan::Result<Scratch>,
                        realloc: &dyn Fn(&mut Scratch) -> hyperscan::Result<()>|
         -> hyperscan::Result<()> {
            match scratch.as_mut() {
                None => scratch = Some(alloc()?),
                Some(s) => realloc(s)?,
            }
            Ok(())
        };
        if let Some(db) = &set.head {
            grow(&|| db.alloc_scratch(), &|s| {
                db.realloc_scratch(s).map(|_| ())
            })
            .map_err(err)?;
        }
        let mut packed = 0;
        let pre_db = set.pre.as_ref().map(|p| &p.db);
        for db in set
            .suri
            .pre
            .iter()
            .flatten()
            .chain(pre_db)
            .chain(set.body_block.as_ref())
        {
            grow(&|| db.alloc_scratch(), &|s| {
                db.realloc_scratch(s).map(|_| ())
            })
            .map_err(err)?;
        }
        for db in [&set.body, &set.raw].into_iter().flatten() {
            grow(&|| db.alloc_scratch(), &|s| {
                db.realloc_scratch(s).map(|_| ())
            })
            .map_err(err)?;
            packed = packed.max(db.stream_size().map_err(err)?);
        }
        let open =
            |db: &Option<StreamingDatabase>| db.as_ref().map(|d| d.open_stream()).transpose();
        Ok(Scanner {
            body_stream: open(&set.body).map_err(err)?,
            raw_stream: open(&set.raw).map_err(err)?,
            scan_errors: 0,
            scratch,
            uri: Vec::new(),
            headers: Vec::new(),
            body_out: Vec::new(),
            norm: http::Scratch::default(),
            // Compressed state is never larger than the stream itself; the
            // margin covers Hyperscan's header.
            packed: vec![0; packed + 256],
            found: Vec::new(),
            views: Views::default(),
            cands: Vec::new(),
            body_truncated: 0,
            body_unverified: 0,
            held: Default::default(),
            packet: (IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0),
            thresholds: Default::default(),
            pre_on: false,
            seen: Default::default(),
            dec: Vec::new(),
            pend_held: Default::default(),
            pre_skips: (0, 0),
            cand_uri: Vec::new(),
            cand_hdr: Vec::new(),
            line_memo: Default::default(),
            uri_memo: Default::default(),
            line_starts: Vec::new(),
            set,
        })
    }

    /// The rule set this scanner matches with.
    pub fn set(&self) -> &Arc<SignatureSet> {
        &self.set
    }

    /// Turns the literal prefilter on or off (the default). Either way the
    /// hits are the same; on, a head or body whose decoded bytes lack every
    /// pattern's tokens is neither normalized nor scanned. Off by default:
    /// with the built-in rules 83 % of the corpus heads hold some rule's
    /// tokens (quotes, `=`, `or`), and the prefilter scan costs more than
    /// the skips save (perf/RESULTS.md, "Signature prefilter").
    pub fn set_prefilter(&mut self, on: bool) {
        self.pre_on = on;
    }

    /// Whether the set has a literal prefilter (every normalized pattern
    /// yielded a condition).
    pub fn has_prefilter(&self) -> bool {
        self.set.pre.is_some()
    }

    /// (header lines skipped as already seen clean, lines put in the memo)
    /// since the scanner was made.
    pub fn header_memo(&self) -> (u64, u64) {
        self.line_memo.stats()
    }

    /// (request targets skipped as already seen clean, targets put in the
    /// memo) since the scanner was made.
    pub fn target_memo(&self) -> (u64, u64) {
        self.uri_memo.stats()
    }

    /// Request targets and header lines skipped as seen clean since the
    /// last call (for the shard's counters).
    pub fn take_skipped(&mut self) -> (u64, u64) {
        (self.uri_memo.take_hits(), self.line_memo.take_hits())
    }

    /// Forgets the targets and header lines seen clean, so everything is
    /// scanned again (tests and benchmarks that want no history).
    pub fn forget_clean(&mut self) {
        self.line_memo = Default::default();
        self.uri_memo = Default::default();
    }

    /// Request heads, and request bodies, that the prefilter let skip
    /// normalization and the full scan, since the scanner was made.
    pub fn prefilter_skips(&self) -> (u64, u64) {
        self.pre_skips
    }

    /// Scans that failed since the last call (the engine adds them to its
    /// stats after every scan).
    pub fn take_scan_errors(&mut self) -> u64 {
        std::mem::take(&mut self.scan_errors)
    }

    /// The source and time (ns) of the packet whose bytes are inspected
    /// next: Suricata `threshold`/`detection_filter` count per source in
    /// packet time. Without it, every request counts as from `0.0.0.0` at
    /// time 0.
    pub fn set_packet(&mut self, src: IpAddr, ts_ns: u64) {
        self.packet = (src, ts_ns);
    }

    /// Requests with a body that Suricata body rules did not verify
    /// because the shard's [`SURI_HOLD_BUDGET`] was spent, since the last
    /// call.
    pub fn take_body_unverified(&mut self) -> u64 {
        std::mem::take(&mut self.body_unverified)
    }

    /// Bytes held now for Suricata body rules (heads and body prefixes).
    pub fn body_held(&self) -> usize {
        self.held.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Request bodies whose bytes past [`verify::BODY_LIMIT`] were not
    /// verified by Suricata body rules, since the last call.
    pub fn take_body_truncated(&mut self) -> u64 {
        std::mem::take(&mut self.body_truncated)
    }

    /// Starts a request: scans its complete head (`buf`, parsed as `head`)
    /// once — the normalized target and header fields, and the raw bytes
    /// as the start of the raw stream — and resets `rs` for its body.
    /// Returns the first rule, in rule order, whose every condition matched.
    pub fn head(&mut self, rs: &mut RequestScan, buf: &[u8], head: &Head) -> Option<Hit> {
        rs.generation = self.set.generation;
        rs.body.clear();
        rs.raw.clear();
        rs.body_pos = 0;
        rs.raw_pos = 0;
        rs.partial.clear();
        rs.tail.clear();
        rs.norm = Some(Normalizer::new(body_norm(head.body_kind)));
        rs.shead = None;
        rs.sbody.clear();
        rs.pending = None;
        rs.body_done = false;
        if self.scratch.is_none() {
            return self.suri_head(rs, buf, head);
        }
        let pre = self.pre_on && self.set.pre.is_some();
        if pre && self.set.body.is_some() {
            rs.pending = Some(Box::new(Pending {
                raw: Vec::new(),
                dec: Normalizer::new(body_norm(head.body_kind)),
                seen: Default::default(),
                carry: Vec::new(),
                held: Held {
                    used: self.pend_held.clone(),
                    n: 0,
                },
            }));
        }
        self.found.clear();
        let plan = if pre {
            self.head_prefilter(buf, head)
        } else {
            HeadPlan::Full
        };
        match plan {
            HeadPlan::Skip => self.pre_skips.0 += 1,
            HeadPlan::Full => self.scan_head(buf, head),
        }
        let hit = self.settle(rs, None);
        if hit.is_some() {
            return hit;
        }
        self.stream(rs, Which::Raw, buf, false);
        let hit = self.settle(rs, Some(buf));
        if hit.is_some() {
            return hit;
        }
        self.suri_head(rs, buf, head)
    }

    /// Which normalized patterns' prefilter conditions hold in the decoded
    /// target and header fields (into `cand_uri`, `cand_hdr`), and so how
    /// to scan the head.
    fn head_prefilter(&mut self, buf: &[u8], head: &Head) -> HeadPlan {
        self.cand_uri.clear();
        self.cand_hdr.clear();
        let (Some(pre), Some(scratch)) = (self.set.pre.as_ref(), self.scratch.as_ref()) else {
            return HeadPlan::Full;
        };
        let seen = &mut self.seen;
        *seen = Default::default();
        if pre.has(PreView::Uri) {
            let target = buf.get(head.target.0..head.target.1).unwrap_or(&[]);
            // Without '%' decoding changes at most '+' into a space: the
            // raw bytes hold every token the decoded ones do.
            let data: &[u8] = if memchr::memchr(b'%', target).is_none() {
                target
            } else {
                self.dec.clear();
                let mut n = Normalizer::new(Norm::FORM);
                n.decode_push(target, &mut self.dec, &mut self.norm);
                n.decode_finish(&mut self.dec, &mut self.norm);
                &self.dec
            };
            if !pre_scan(pre, scratch, data, seen) {
                return HeadPlan::Full;
            }
            pre.candidates(PreView::Uri, seen, &mut self.cand_uri);
        }
        if pre.has(PreView::Headers) && !head.fields.is_empty() {
            *seen = Default::default();
            // All fields at once when no byte needs decoding (tokens hold
            // no whitespace, so none spans two lines).
            let region = match (head.fields.first(), head.fields.last()) {
                (Some(a), Some(z)) => buf.get(a.name.0..z.value.1),
                _ => None,
            };
            let data: &[u8] = match region {
                Some(r) if memchr::memchr(b'%', r).is_none() => r,
                _ => {
                    self.dec.clear();
                    for f in &head.fields {
                        let line = buf.get(f.name.0..f.value.1).unwrap_or(&[]);
                        let mut n = Normalizer::new(Norm::PLAIN);
                        n.decode_push(line, &mut self.dec, &mut self.norm);
                        n.decode_finish(&mut self.dec, &mut self.norm);
                        self.dec.push(b'\n');
                    }
                    &self.dec
                }
            };
            if !pre_scan(pre, scratch, data, seen) {
                return HeadPlan::Full;
            }
            pre.candidates(PreView::Headers, seen, &mut self.cand_hdr);
        }
        if self.cand_uri.is_empty() && self.cand_hdr.is_empty() {
            HeadPlan::Skip
        } else {
            HeadPlan::Full
        }
    }

    /// The full path for a head: normalizes the target and scans it, then
    /// each header field line on its own, with the head database.
    ///
    /// A line is normalized on its own (comments and escapes end with it)
    /// and scanned on its own, followed by its '\n' so the end of a value
    /// stays visible (`User-Agent: x' --`): no match spans two fields, and
    /// `^` and `$` are its start and end. A target or line that matches no
    /// condition goes into its memo (`crate::memo`; credential lines
    /// never), and a repeat of it is skipped. The lines scanned are kept one after another in `headers`,
    /// for the excerpt of a hit.
    fn scan_head(&mut self, buf: &[u8], head: &Head) {
        self.headers.clear();
        self.line_starts.clear();
        let (Some(scratch), Some(db)) = (self.scratch.as_ref(), self.set.head.as_ref()) else {
            return;
        };
        let target = buf.get(head.target.0..head.target.1).unwrap_or(&[]);
        self.uri.clear();
        if !self.uri_memo.check(target) {
            http::normalize(target, Norm::FORM, &mut self.uri, &mut self.norm);
            let (found, conds) = (&mut self.found, &self.set.conds);
            match scan_block(db, scratch, &self.uri, (Buffer::Uri, 0), found, conds) {
                None => self.scan_errors += 1,
                Some(false) => self.uri_memo.insert(target),
                Some(true) => {}
            }
        }
        for f in &head.fields {
            let line = buf.get(f.name.0..f.value.1).unwrap_or(&[]);
            let name = buf.get(f.name.0..f.name.1).unwrap_or(&[]);
            let secret = holds_credentials(name);
            if !secret && self.line_memo.check(line) {
                continue;
            }
            let start = self.headers.len();
            self.line_starts.push(start);
            let mut n = Normalizer::new(Norm::PLAIN);
            n.push(line, &mut self.headers, &mut self.norm);
            n.finish(&mut self.headers, &mut self.norm);
            self.headers.push(b'\n');
            let (found, conds) = (&mut self.found, &self.set.conds);
            let data = &self.headers[start..];
            match scan_block(db, scratch, data, (Buffer::Headers, start), found, conds) {
                None => self.scan_errors += 1,
                Some(false) if !secret => self.line_memo.insert(line),
                Some(_) => {}
            }
        }
    }

    /// Suricata rules at a request's head: verifies those without a body
    /// section, and keeps the head for those with one if a body follows.
    fn suri_head(&mut self, rs: &mut RequestScan, buf: &[u8], head: &Head) -> Option<Hit> {
        let set = self.set.clone();
        if set.suri.rules.is_empty() {
            return None;
        }
        self.views.build(buf, head, &set.suri.need);
        self.views.set_body(None);
        rs.sheld = None;
        if set.suri.any_body && !matches!(head.framing, Framing::Empty | Framing::Length(0)) {
            let mut held = Held {
                used: self.held.clone(),
                n: 0,
            };
            if held.take(buf.len(), SURI_HOLD_BUDGET) {
                rs.shead = Some(Box::new((buf.to_vec(), head.clone())));
                rs.sheld = Some(held);
            } else {
                self.body_unverified += 1;
            }
        }
        self.suri_eval(rs, false)
    }

    /// Adds body bytes for Suricata body rules; verifies them once the
    /// prefix is full.
    fn suri_body(&mut self, rs: &mut RequestScan, data: &[u8]) -> Option<Hit> {
        rs.shead.as_ref()?;
        let room = verify::BODY_LIMIT.saturating_sub(rs.sbody.len());
        let n = room.min(data.len());
        if !rs
            .sheld
            .as_mut()
            .is_some_and(|h| h.take(n, SURI_HOLD_BUDGET))
        {
            rs.shead = None;
            rs.sbody = Vec::new();
            rs.sheld = None;
            self.body_unverified += 1;
            return None;
        }
        rs.sbody.extend_from_slice(&data[..n]);
        if rs.sbody.len() < verify::BODY_LIMIT {
            return None;
        }
        if data.len() > room {
            self.body_truncated += 1;
        }
        self.suri_finish(rs)
    }

    /// Verifies the Suricata body rules on the kept head and body prefix.
    fn suri_finish(&mut self, rs: &mut RequestScan) -> Option<Hit> {
        let kept = rs.shead.take()?;
        let (buf, head) = &*kept;
        self.views.build(buf, head, &self.set.suri.need);
        self.views.set_body(Some(&rs.sbody));
        rs.sbody = Vec::new();
        let hit = self.suri_eval(rs, true);
        rs.sheld = None;
        hit
    }

    /// Prefilters the Suricata rules on the built views and verifies the
    /// candidates (those with a body section when `body`, else the others),
    /// in rule order. Returns the first that matches.
    fn suri_eval(&mut self, rs: &mut RequestScan, body: bool) -> Option<Hit> {
        let set = self.set.clone();
        let suri = &set.suri;
        self.cands.clear();
        if let Some(scratch) = self.scratch.as_ref() {
            for (db, view) in suri.pre.iter().zip(verify::ALL_VIEWS) {
                let (Some(db), Some(data)) = (db, self.views.get(view)) else {
                    continue;
                };
                if data.is_empty() {
                    continue;
                }
                let cands = &mut self.cands;
                let scanned = db.scan(data, scratch, |id, _, _, _| {
                    cands.push(id as usize);
                    Matching::Continue
                });
                if scanned.is_err() {
                    self.scan_errors += 1;
                }
            }
        }
        self.cands.extend_from_slice(&suri.always);
        self.cands.sort_unstable();
        self.cands.dedup();
        let mut hit = None;
        let cands = std::mem::take(&mut self.cands);
        // Flowbit setters first (as Suricata orders them), then the rest;
        // each in rule order. Setters are all evaluated, so later requests
        // of the flow see every bit a matching rule sets.
        for setters in [true, false] {
            for &si in &cands {
                let Some(r) = suri.rules.get(si) else {
                    continue;
                };
                if r.setter != setters
                    || r.body != body
                    || set.dead.get(r.ri).copied().unwrap_or(true)
                    || (hit.is_some() && !setters)
                {
                    continue;
                }
                let bits_hold = r.bits.iter().all(|&(op, b)| match op {
                    BitOp::IsSet => rs.flowbits.contains(&b),
                    BitOp::IsNotSet => !rs.flowbits.contains(&b),
                    _ => true,
                });
                if !bits_hold {
                    continue;
                }
                let Some((view, end)) = r.detect.matches(&self.views) else {
                    continue;
                };
                for &(op, b) in &r.bits {
                    let pos = rs.flowbits.iter().position(|&x| x == b);
                    match (op, pos) {
                        (BitOp::Set, None) | (BitOp::Toggle, None) => rs.flowbits.push(b),
                        (BitOp::Unset, Some(i)) | (BitOp::Toggle, Some(i)) => {
                            rs.flowbits.swap_remove(i);
                        }
                        _ => {}
                    }
                }
                if r.detect.noalert || hit.is_some() {
                    continue;
                }
                if let Some(t) = &r.detect.threshold {
                    if !self.threshold(r.ri, t) {
                        continue;
                    }
                }
                let Some((meta, action, reason)) = set.rules.get(r.ri) else {
                    continue;
                };
                let data = self.views.get(view).unwrap_or(&[]);
                let end = end.min(data.len());
                let start = end.saturating_sub(EXCERPT);
                hit = Some(Hit {
                    meta: meta.clone(),
                    action: *action,
                    reason: reason.clone(),
                    buffer: view.buffer(),
                    excerpt: String::from_utf8_lossy(&data[start..end]).into_owned(),
                });
            }
        }
        self.cands = cands;
        hit
    }

    /// Counts a match of rule `ri` from the current packet's source;
    /// whether it alerts.
    fn threshold(&mut self, ri: usize, t: &verify::Threshold) -> bool {
        let (src, now) = self.packet;
        if self.thresholds.len() >= THRESHOLD_ENTRIES && !self.thresholds.contains_key(&(ri, src)) {
            self.thresholds
                .retain(|_, st| st.as_ref().is_some_and(|s| s.active(now)));
            if self.thresholds.len() >= THRESHOLD_ENTRIES {
                self.thresholds.clear();
            }
        }
        let st = self.thresholds.entry((ri, src)).or_insert(None);
        t.check(st, now)
    }

    /// Scans the next piece of the current request's body (chunked coding
    /// already removed): normalized into the body stream, as is into the
    /// raw stream.
    pub fn body(&mut self, rs: &mut RequestScan, data: &[u8]) -> Option<Hit> {
        if rs.generation != self.set.generation {
            // The rules were reloaded mid-request: the saved state belongs
            // to the old databases. Continue with fresh streams (and the
            // normalizer past the bytes a pending body kept).
            if let (Some(p), Some(n)) = (rs.pending.take(), rs.norm.as_mut()) {
                let mut sink = std::mem::take(&mut self.body_out);
                sink.clear();
                n.push(&p.raw, &mut sink, &mut self.norm);
                self.body_out = sink;
            }
            *rs = RequestScan {
                generation: self.set.generation,
                norm: rs.norm.take(),
                flowbits: std::mem::take(&mut rs.flowbits),
                ..Default::default()
            };
        }
        let hit = match rs.pending.take() {
            Some(mut p) => {
                if self.pending_keep(&mut p, data) {
                    rs.pending = Some(p);
                    None
                } else {
                    // A candidate (or the limit): catch up on the kept
                    // bytes and this segment in one step, then stay on
                    // the full path.
                    let mut joined = std::mem::take(&mut p.raw);
                    drop(p);
                    joined.extend_from_slice(data);
                    self.body_norm(rs, &joined)
                }
            }
            None => self.body_norm(rs, data),
        };
        if hit.is_some() {
            return hit;
        }
        self.body_raw_and_suri(rs, data)
    }

    /// Scans a piece of the current request's body that completes it (a
    /// body of known length, [`crate::stream::HttpFlow::body_complete`]).
    /// When it is the whole body, the common case, the body is normalized
    /// to its end and scanned in block mode: the same matches as the
    /// stream and [`Scanner::end`] would report, for about a third of the
    /// cost. The first rule in rule order among all of them wins, where
    /// the stream would let one completed within the piece win over one
    /// that needs the body's end (`$`). Otherwise it is [`Scanner::body`].
    pub fn body_last(&mut self, rs: &mut RequestScan, data: &[u8]) -> Option<Hit> {
        let whole = rs.generation == self.set.generation
            && rs.body_pos == 0
            && rs.body.is_empty()
            && rs.tail.is_empty()
            && !rs.body_done
            && rs.norm.is_some()
            && rs.pending.as_ref().is_none_or(|p| p.raw.is_empty());
        if !whole || self.set.body_block.is_none() || self.scratch.is_none() {
            return self.body(rs, data);
        }
        rs.body_done = true;
        let norm = rs.norm.take();
        // With the prefilter on, the whole body is checked at once: no
        // candidate, no pattern can match it.
        let clean = match rs.pending.take() {
            Some(mut p) => self.pending_keep(&mut p, data) && self.pending_clean(&mut p),
            None => false,
        };
        if clean {
            self.pre_skips.1 += 1;
        } else if let Some(mut norm) = norm {
            let mut out = std::mem::take(&mut self.body_out);
            out.clear();
            norm.push(data, &mut out, &mut self.norm);
            norm.finish(&mut out, &mut self.norm);
            self.found.clear();
            let scanned = match (self.set.body_block.as_ref(), self.scratch.as_ref()) {
                (Some(db), Some(scratch)) => {
                    let (found, conds) = (&mut self.found, &self.set.conds);
                    scan_block(db, scratch, &out, (Buffer::Body, 0), found, conds).is_some()
                }
                _ => false,
            };
            if !scanned {
                self.scan_errors += 1;
            }
            let hit = self.settle(rs, Some(&out));
            self.body_out = out;
            if hit.is_some() {
                return hit;
            }
        }
        self.body_raw_and_suri(rs, data)
    }

    /// What every body piece goes through after the normalized body: the
    /// raw stream, then the Suricata body rules.
    fn body_raw_and_suri(&mut self, rs: &mut RequestScan, data: &[u8]) -> Option<Hit> {
        self.found.clear();
        self.stream(rs, Which::Raw, data, false);
        let hit = self.settle(rs, Some(data));
        if hit.is_some() {
            return hit;
        }
        self.suri_body(rs, data)
    }

    /// The full path for body bytes: normalizes them into the body stream
    /// and returns the first rule now complete.
    fn body_norm(&mut self, rs: &mut RequestScan, data: &[u8]) -> Option<Hit> {
        let mut out = std::mem::take(&mut self.body_out);
        out.clear();
        out.extend_from_slice(&rs.tail);
        let shift = out.len();
        if let Some(n) = rs.norm.as_mut() {
            n.push(data, &mut out, &mut self.norm);
        }
        self.found.clear();
        self.stream(rs, Which::Body, &out[shift..], false);
        self.shift_found(shift);
        let hit = self.settle(rs, Some(&out));
        rs.tail.clear();
        rs.tail
            .extend_from_slice(&out[out.len().saturating_sub(EXCERPT)..]);
        self.body_out = out;
        hit
    }

    /// Prefilters a pending body's next segment. True: still no candidate,
    /// and the segment is kept; false: the body must take the full path
    /// now (a candidate, the size limit or the budget, a failed scan).
    fn pending_keep(&mut self, p: &mut Pending, data: &[u8]) -> bool {
        let (Some(pre), Some(scratch)) = (self.set.pre.as_ref(), self.scratch.as_ref()) else {
            return false;
        };
        self.dec.clear();
        self.dec.extend_from_slice(&p.carry);
        p.dec.decode_push(data, &mut self.dec, &mut self.norm);
        if !pre_scan(pre, scratch, &self.dec, &mut p.seen) || pre.candidate(PreView::Body, &p.seen)
        {
            return false;
        }
        if p.raw.len() + data.len() > PENDING_MAX || !p.held.take(data.len(), PENDING_BUDGET) {
            return false;
        }
        p.raw.extend_from_slice(data);
        p.carry.clear();
        let keep = prefilter::MAX_TOKEN - 1;
        p.carry
            .extend_from_slice(&self.dec[self.dec.len().saturating_sub(keep)..]);
        true
    }

    /// Ends a pending body: true if its decoded bytes, the held-back ones
    /// included, hold no candidate (no pattern can match the body).
    fn pending_clean(&mut self, p: &mut Pending) -> bool {
        let (Some(pre), Some(scratch)) = (self.set.pre.as_ref(), self.scratch.as_ref()) else {
            return false;
        };
        self.dec.clear();
        self.dec.extend_from_slice(&p.carry);
        p.dec.decode_finish(&mut self.dec, &mut self.norm);
        pre_scan(pre, scratch, &self.dec, &mut p.seen) && !pre.candidate(PreView::Body, &p.seen)
    }

    /// Ends the current request: flushes the normalizer and lets patterns
    /// anchored at the end (`$`) match. Frees the streams' state.
    pub fn end(&mut self, rs: &mut RequestScan) -> Option<Hit> {
        let mut hit = None;
        // A body the prefilter found no candidate in is neither normalized
        // nor scanned; one it did is caught up first.
        let mut clean = false;
        if let Some(mut p) = rs.pending.take() {
            if rs.generation == self.set.generation {
                if self.pending_clean(&mut p) {
                    clean = true;
                    self.pre_skips.1 += 1;
                } else {
                    let raw = std::mem::take(&mut p.raw);
                    drop(p);
                    hit = self.body_norm(rs, &raw);
                }
            }
        }
        // A body scanned whole has been normalized and scanned to its end.
        clean |= rs.body_done;
        let mut out = std::mem::take(&mut self.body_out);
        out.clear();
        out.extend_from_slice(&rs.tail);
        let shift = out.len();
        if let Some(mut n) = rs.norm.take() {
            if !clean {
                n.finish(&mut out, &mut self.norm);
            }
        }
        if rs.generation == self.set.generation && hit.is_none() {
            self.found.clear();
            if !clean {
                self.stream(rs, Which::Body, &out[shift..], true);
            }
            self.shift_found(shift);
            hit = self.settle(rs, Some(&out));
            if hit.is_none() {
                self.found.clear();
                self.stream(rs, Which::Raw, &[], true);
                hit = self.settle(rs, None);
            }
            if hit.is_none() {
                hit = self.suri_finish(rs);
            }
        }
        self.body_out = out;
        let flowbits = std::mem::take(&mut rs.flowbits);
        *rs = RequestScan {
            flowbits,
            ..Default::default()
        };
        hit
    }

    /// Scans `data` into one of the request's streams: expands its saved
    /// state into the working stream (or starts it), scans, and saves it
    /// again; at the end, also reports matches anchored at the end.
    fn stream(&mut self, rs: &mut RequestScan, which: Which, data: &[u8], end: bool) {
        let (Some(scratch), Some(stream)) = (
            self.scratch.as_ref(),
            match which {
                Which::Body => self.body_stream.as_ref(),
                Which::Raw => self.raw_stream.as_ref(),
            },
        ) else {
            return;
        };
        let (saved, pos, buffer) = match which {
            Which::Body => (&mut rs.body, &mut rs.body_pos, Buffer::Body),
            Which::Raw => (&mut rs.raw, &mut rs.raw_pos, Buffer::Request),
        };
        if saved.is_empty() && data.is_empty() {
            // A stream never started and given nothing: no pattern matches
            // (none may match the empty string: Hyperscan refuses them
            // without ALLOWEMPTY), and starting it later is the same as
            // starting it now. A bodyless request's body stream ends here.
            return;
        }
        let ignore = |_, _, _, _| Matching::Continue;
        let restored = if saved.is_empty() {
            stream.reset(scratch, ignore)
        } else {
            stream.reset_and_expand(saved, scratch, ignore)
        };
        if restored.is_err() {
            self.scan_errors += 1;
            return;
        }
        let start = *pos;
        let (found, conds) = (&mut self.found, &self.set.conds);
        let mut on_match = |id: u32, _: u64, to: u64, _: u32| {
            let at = to.checked_sub(start).map(|t| t as usize);
            record(found, conds, id, buffer, at);
            Matching::Continue
        };
        let mut ok = data.is_empty() || stream.scan(data, scratch, &mut on_match).is_ok();
        *pos += data.len() as u64;
        if end {
            // Report end-anchored matches; the stream is then empty again.
            ok &= stream.reset(scratch, &mut on_match).is_ok();
            saved.clear();
        } else {
            match stream.compress(&mut self.packed) {
                Ok(n) => {
                    saved.clear();
                    saved.extend_from_slice(&self.packed[..n]);
                }
                Err(_) => ok = false,
            }
        }
        if !ok {
            self.scan_errors += 1;
        }
    }

    /// Makes this step's match offsets count from the start of the quoted
    /// view (the previous tail, then the step's data).
    fn shift_found(&mut self, shift: usize) {
        for f in &mut self.found {
            f.2 = f.2.map(|a| a + shift);
        }
    }

    /// Adds this step's matches to the request's and returns the first rule,
    /// in rule order, that is now complete.
    fn settle(&mut self, rs: &mut RequestScan, data: Option<&[u8]>) -> Option<Hit> {
        if self.found.is_empty() {
            return None;
        }
        let mut best: Option<(usize, Buffer, Option<usize>)> = None;
        for &(cond, buffer, at) in &self.found {
            let ri = self.set.conds[cond].0;
            if self.set.dead.get(ri).copied().unwrap_or(true) {
                continue;
            }
            let conds = &self.set.rule_conds[ri];
            let complete = conds.iter().all(|&c| {
                c == cond || rs.partial.contains(&(c as u32)) || self.found.iter().any(|f| f.0 == c)
            });
            if complete {
                if best.is_none_or(|b| ri < b.0) {
                    best = Some((ri, buffer, at));
                }
            } else if conds.len() > 1
                && rs.partial.len() < MAX_PARTIAL
                && !rs.partial.contains(&(cond as u32))
            {
                rs.partial.push(cond as u32);
            }
        }
        let (ri, buffer, at) = best?;
        let (meta, action, reason) = &self.set.rules[ri];
        let data: &[u8] = match buffer {
            Buffer::Uri => &self.uri,
            Buffer::Headers => &self.headers,
            _ => data.unwrap_or(&[]),
        };
        let end = at.unwrap_or(0).min(data.len());
        let mut start = end.saturating_sub(EXCERPT);
        if buffer == Buffer::Headers {
            // Only the matching line: which lines precede it in `headers`
            // depends on what the memo skipped, so on the shard's history.
            let i = self.line_starts.partition_point(|&a| a < end);
            let line = i.checked_sub(1).and_then(|i| self.line_starts.get(i));
            start = start.max(line.copied().unwrap_or(0));
        }
        Some(Hit {
            meta: meta.clone(),
            action: *action,
            reason: reason.clone(),
            buffer,
            excerpt: String::from_utf8_lossy(&data[start..end]).into_owned(),
        })
    }
}

impl Scanner {
    /// Scans complete requests given as one buffer (a test corpus, a
    /// benchmark): frames them exactly as a flow does and returns the first
    /// hit. A request cut short is still ended, so its body is inspected.
    pub fn scan_requests(&mut self, bytes: &[u8]) -> Option<Hit> {
        let budget = Budget::new(usize::MAX);
        let mut flow = HttpFlow::from_data(0, &budget);
        let lim = Limits {
            max_head: bytes.len().max(1),
            max_ooo_bytes: 0,
            max_ooo_segments: 0,
        };
        let mut rs = RequestScan::default();
        let mut input = bytes;
        loop {
            let hit = match flow.next(&mut input, &lim) {
                Event::Head(h) => self.head(&mut rs, flow.head_bytes(), &h),
                Event::Body(d) if flow.body_complete() => self.body_last(&mut rs, d),
                Event::Body(d) => self.body(&mut rs, d),
                Event::End => self.end(&mut rs),
                Event::Lost(_) | Event::More => return self.end(&mut rs),
            };
            if hit.is_some() {
                return hit;
            }
        }
    }
}

/// How a body of this type is normalized.
fn body_norm(kind: BodyKind) -> Norm {
    match kind {
        BodyKind::Json => Norm::JSON,
        BodyKind::Form => Norm::FORM,
        BodyKind::Other => Norm::PLAIN,
    }
}

/// Whether a header field carries credentials, which the memo never
/// keeps (`crate::memo`).
fn holds_credentials(name: &[u8]) -> bool {
    [&b"cookie"[..], b"authorization", b"proxy-authorization"]
        .iter()
        .any(|n| name.eq_ignore_ascii_case(n))
}

/// Scans decoded bytes with the prefilter's token database, setting the
/// bits of the tokens found in `seen`. False if the scan failed (the
/// caller then takes the full path).
fn pre_scan(pre: &Prefilter, scratch: &Scratch, data: &[u8], seen: &mut [u64]) -> bool {
    if data.is_empty() {
        return true;
    }
    pre.db
        .scan(data, scratch, |id, _, _, _| {
            let i = id as usize;
            if let Some(w) = seen.get_mut(i / 64) {
                *w |= 1 << (i % 64);
            }
            Matching::Continue
        })
        .is_ok()
}

/// Scans `data` (one whole buffer, at `start` in the scanner's copy of
/// `buffer`) with the block database `db`, noting each condition's first
/// match in `buffer` with its end offset. Returns whether any condition
/// that applies to `buffer` matched, `None` if the scan failed; empty data
/// is not scanned (no pattern matches nothing).
fn scan_block(
    db: &BlockDatabase,
    scratch: &Scratch,
    data: &[u8],
    (buffer, start): (Buffer, usize),
    found: &mut Vec<(usize, Buffer, Option<usize>)>,
    conds: &[(usize, Buffer)],
) -> Option<bool> {
    let mut matched = false;
    if data.is_empty() {
        return Some(matched);
    }
    db.scan(data, scratch, |id, _, to, _| {
        matched |= record(found, conds, id, buffer, Some(start + to as usize));
        Matching::Continue
    })
    .ok()
    .map(|_| matched)
}

/// Notes a match of condition `id` in `buffer` if the condition applies to
/// that buffer; returns whether it does.
fn record(
    found: &mut Vec<(usize, Buffer, Option<usize>)>,
    conds: &[(usize, Buffer)],
    id: u32,
    buffer: Buffer,
    at: Option<usize>,
) -> bool {
    let i = id as usize;
    let applies = conds
        .get(i)
        .is_some_and(|c| c.1 == buffer || c.1 == Buffer::Any);
    if applies && !found.iter().any(|f| f.0 == i) {
        found.push((i, buffer, at));
    }
    applies
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::RuleBook;

    pub(crate) fn builtin_set() -> SignatureSet {
        let rules = native::parse(BUILTIN_SQLI, "builtin").unwrap();
        SignatureSet::compile(rules, &mut RuleBook::builtin()).unwrap()
    }

    fn scan(req: &str) -> Option<String> {
        let mut s = Scanner::new(Arc::new(builtin_set())).unwrap();
        s.scan_requests(req.as_bytes())
            .map(|h| h.meta.name.to_string())
    }

    #[test]
    fn builtin_rules_compile_and_match() {
        assert_eq!(
            scan("GET /item?id=1%27%20or%20%271%27=%271 HTTP/1.1\r\nHost: a\r\n\r\n").as_deref(),
            Some("sqli_tautology_quoted")
        );
        assert_eq!(
            scan("GET /p?id=-1+UnIoN/**/SeLeCt+1,2,3-- HTTP/1.1\r\n\r\n").as_deref(),
            Some("sqli_union_select")
        );
        assert!(scan("GET /search?q=union+square+hotels HTTP/1.1\r\n\r\n").is_none());
        assert!(scan("GET /people?name=O%27Brien HTTP/1.1\r\n\r\n").is_none());
        let post = "POST /login HTTP/1.1\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 30\r\n\r\nuser=admin%27--&pass=whatever";
        assert_eq!(scan(post).as_deref(), Some("sqli_comment_terminator"));
    }

    /// A flow's inspection state stays a small constant however long the
    /// body: the streams' state is compressed between segments and the
    /// body itself is never kept.
    #[test]
    fn per_request_state_is_constant_in_the_body_size() {
        let mut s = Scanner::new(Arc::new(builtin_set())).unwrap();
        let head = b"POST /u HTTP/1.1\r\nContent-Type: application/x-www-form-urlencoded\r\n\r\n";
        let h = crate::http::head::parse(head).unwrap();
        let mut rs = RequestScan::default();
        assert!(s.head(&mut rs, head, &h).is_none());
        let piece = b"a=1&b=some+text+with+words+and+numbers+12345&".repeat(32);
        let mut sizes = Vec::new();
        for i in 0..1000 {
            assert!(s.body(&mut rs, &piece).is_none());
            if i == 9 || i == 999 {
                sizes.push(rs.held());
            }
        }
        assert!(sizes[1] <= 4096, "held {sizes:?} bytes");
        assert_eq!(sizes[0], sizes[1], "no growth from 14 KB to 1.4 MB of body");
        // The attack at the very end of 1.4 MB is still seen.
        let hit = s.body(&mut rs, b"user=admin%27%20or%20%271%27%3D%271");
        let hit = hit
            .or_else(|| s.end(&mut rs))
            .map(|h| h.meta.name.to_string());
        assert_eq!(hit.as_deref(), Some("sqli_tautology_quoted"));
    }

    #[test]
    fn refused_pattern_skips_only_its_rule_and_names_it() {
        let rules = native::parse(
            "[[rule]]\nid = 1\nmsg = \"x\"\npatterns = ['ok', 'bad(']\n[[rule]]\nid = 2\nmsg = \"y\"\npatterns = ['fine']\n",
            "t",
        )
        .unwrap();
        let set = SignatureSet::compile(rules, &mut RuleBook::builtin()).unwrap();
        assert_eq!(set.live_count(), 1);
        assert_eq!(set.rejected.len(), 1);
        let r = &set.rejected[0];
        assert_eq!(r.id, Some(1));
        assert!(r.reason.contains("rule 1 pattern 2 `bad(`"), "{r}");
        let mut s = Scanner::new(Arc::new(set)).unwrap();
        let hit = s.scan_requests(b"GET /fine HTTP/1.1\r\n\r\n").unwrap();
        assert_eq!(hit.meta.id, 2);
    }

    #[test]
    fn compile_registers_rules_and_refuses_a_duplicate_id() {
        let rules = native::parse(BUILTIN_SQLI, "builtin").unwrap();
        let n = rules.len();
        let mut book = RuleBook::builtin();
        let before = book.iter().count();
        let set = SignatureSet::compile(rules.clone(), &mut book).unwrap();
        assert_eq!((set.len(), book.iter().count()), (n, before + n));
        let e = SignatureSet::compile(rules, &mut book).unwrap_err();
        assert!(matches!(e, CompileError::DuplicateId(_)), "{e:?}");
    }
}
