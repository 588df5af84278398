//! Payload signatures: rules compiled into Hyperscan databases, matched
//! against normalized HTTP request buffers.
//!
//! A `SignatureSet` is compiled once (off the packet path) and shared
//! read-only by every shard through an `Arc`; each shard owns a `Scanner`
//! with its Hyperscan scratch and reusable buffers. Swapping in a new set is
//! a pointer swap plus one scratch allocation per shard.

pub mod native;
pub mod suricata;

use crate::http::{self, Norm, Parts};
use crate::rules::{RuleBook, RuleId, RuleMeta};
use hyperscan::{BlockDatabase, Builder, Matching, Pattern, PatternFlags, Patterns, Scratch};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Which view of the request a pattern is matched against.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Buffer {
    /// Normalized request target (path and query).
    Uri,
    /// Normalized header block (cookies, user agent, ...).
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
    /// Patterns that must all match, each in its buffer; never empty.
    pub conds: Vec<Cond>,
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
    let text = std::fs::read_to_string(path).map_err(|source| RuleFileError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let origin = path.display().to_string();
    if path.extension().is_some_and(|e| e == "toml") {
        native::parse(&text, &origin).map(|r| (r, Vec::new()))
    } else {
        Ok(suricata::parse(&text, &origin))
    }
}

/// Normalized buffers are already case-folded; CASELESS also covers the raw
/// buffer. SINGLEMATCH: one report per pattern and scan is all we need.
fn hs_flags() -> PatternFlags {
    PatternFlags::CASELESS | PatternFlags::DOTALL | PatternFlags::SINGLEMATCH
}

/// Compiled rules. Pattern IDs in both databases are indices into `conds`.
pub struct SignatureSet {
    /// Per rule, in load order: its metadata (shared with the book), action
    /// and reason. Order is priority: when several rules match a request,
    /// the first one wins.
    pub rules: Vec<(Arc<RuleMeta>, Action, String)>,
    /// (rule index, buffer) per condition.
    conds: Vec<(usize, Buffer)>,
    /// Conditions per rule, to check that all matched.
    rule_conds: Vec<Vec<usize>>,
    /// Patterns for the normalized buffers (uri, headers, body): one
    /// database scanned once per buffer; a match counts for a condition
    /// whose buffer is that one or `Any`.
    normalized: Option<BlockDatabase>,
    /// Patterns for the raw request bytes.
    raw: Option<BlockDatabase>,
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

/// Hyperscan could not allocate a shard's scratch space for a set.
#[derive(Debug, thiserror::Error)]
#[error("Hyperscan scratch for {rules} signature rule(s): {source}")]
pub struct ScratchError {
    rules: usize,
    #[source]
    source: hyperscan::Error,
}

impl SignatureSet {
    /// Compiles rules into two block-mode databases (normalized, raw) and
    /// registers each rule in `book`, which then owns its metadata: a rule
    /// whose ID the book already holds is an error. Hyperscan names the
    /// failing expression; we map it back to its rule.
    pub fn compile(rules: Vec<SigRule>, book: &mut RuleBook) -> Result<SignatureSet, CompileError> {
        let mut set = SignatureSet {
            rules: Vec::new(),
            conds: Vec::new(),
            rule_conds: Vec::new(),
            normalized: None,
            raw: None,
        };
        // Per database: patterns, and for each the (rule id, index, text).
        let mut norm: (Vec<Pattern>, Vec<(RuleId, usize, String)>) = Default::default();
        let mut raw: (Vec<Pattern>, Vec<(RuleId, usize, String)>) = Default::default();
        for (ri, rule) in rules.into_iter().enumerate() {
            let meta = book.insert(rule.meta).map_err(CompileError::DuplicateId)?;
            let mut mine = Vec::new();
            for (pi, c) in rule.conds.iter().enumerate() {
                let id = set.conds.len();
                set.conds.push((ri, c.buffer));
                mine.push(id);
                let mut p = Pattern::with_flags(c.pattern.clone(), hs_flags()).map_err(|e| {
                    CompileError::Pattern {
                        id: meta.id,
                        index: pi + 1,
                        pattern: c.pattern.clone(),
                        message: e.to_string(),
                    }
                })?;
                p.id = Some(id);
                let target = if c.buffer == Buffer::Request {
                    &mut raw
                } else {
                    &mut norm
                };
                target.0.push(p);
                target.1.push((meta.id, pi + 1, c.pattern.clone()));
            }
            set.rule_conds.push(mine);
            set.rules.push((meta, rule.action, rule.reason));
        }
        let build = |(pats, origin): (Vec<Pattern>, Vec<(RuleId, usize, String)>)| {
            if pats.is_empty() {
                return Ok(None);
            }
            Patterns::from(pats).build().map(Some).map_err(|e| {
                let (msg, expr) = hs_error(&e);
                let (id, index, pattern) = expr
                    .and_then(|i| origin.get(i).cloned())
                    .unwrap_or_default();
                CompileError::Pattern {
                    id,
                    index,
                    pattern,
                    message: msg,
                }
            })
        };
        set.normalized = build(norm)?;
        set.raw = build(raw)?;
        Ok(set)
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
    /// Where the (last) pattern matched, and the normalized text before it.
    pub buffer: Buffer,
    /// Up to 48 bytes of that buffer ending at the match (lossy UTF-8),
    /// quoted in the alert's reason.
    pub excerpt: String,
}

/// Per-shard scanning state: Hyperscan scratch and reusable buffers.
pub struct Scanner {
    set: Arc<SignatureSet>,
    scratch: Option<Scratch>,
    bufs: [Vec<u8>; 3],
    line: Vec<u8>,
    tmp: Vec<u8>,
    matched: Vec<Option<(Buffer, usize)>>,
    /// Hyperscan scans that failed: data that was not inspected. Counted
    /// into the shard's stats (`signature_scan_errors`), never ignored.
    scan_errors: u64,
}

impl Scanner {
    /// A scanner for `set` with its own Hyperscan scratch and buffers: one
    /// per shard thread (scratch must not be shared). Fails if Hyperscan
    /// cannot allocate the scratch.
    pub fn new(set: Arc<SignatureSet>) -> Result<Scanner, ScratchError> {
        let mut scratch: Option<Scratch> = None;
        let err = |source| ScratchError {
            rules: set.len(),
            source,
        };
        for db in [&set.normalized, &set.raw].into_iter().flatten() {
            match scratch.as_mut() {
                None => scratch = Some(db.alloc_scratch().map_err(err)?),
                Some(s) => {
                    db.realloc_scratch(s).map_err(err)?;
                }
            }
        }
        Ok(Scanner {
            scan_errors: 0,
            matched: vec![None; set.conds.len()],
            set,
            scratch,
            bufs: Default::default(),
            line: Vec::new(),
            tmp: Vec::new(),
        })
    }

    /// The rule set this scanner matches with.
    pub fn set(&self) -> &Arc<SignatureSet> {
        &self.set
    }

    /// Scans that failed since the last call (the engine adds them to its
    /// stats after every scan).
    pub fn take_scan_errors(&mut self) -> u64 {
        std::mem::take(&mut self.scan_errors)
    }

    /// Scans a (possibly partial) request: `req` is the raw bytes from the
    /// request line on; at most `body_limit` body bytes are looked at.
    /// Returns the first rule, in rule order, whose every condition
    /// matched. A failed Hyperscan scan counts as no match and is counted
    /// ([`take_scan_errors`](Self::take_scan_errors)).
    pub fn scan(&mut self, req: &[u8], body_limit: usize) -> Option<Hit> {
        let scratch = self.scratch.as_ref()?;
        let parts: Parts = http::split(req, body_limit);
        let query = |(a, b): (usize, usize)| req.get(a..b).unwrap_or(&[]);
        let plus = Norm {
            plus_is_space: true,
            json: false,
        };
        http::normalize(query(parts.uri), plus, &mut self.bufs[0], &mut self.tmp);
        // Headers one line at a time, joined by '\n', so the end of a value
        // stays visible (`User-Agent: x' --`) and comments cannot span lines.
        self.bufs[1].clear();
        for line in query(parts.headers).split(|&b| b == b'\n') {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            http::normalize(
                line,
                Norm {
                    plus_is_space: false,
                    json: false,
                },
                &mut self.line,
                &mut self.tmp,
            );
            self.bufs[1].extend_from_slice(&self.line);
            self.bufs[1].push(b'\n');
        }
        let body_norm = Norm {
            plus_is_space: !parts.json_body,
            json: parts.json_body,
        };
        http::normalize(
            query(parts.body),
            body_norm,
            &mut self.bufs[2],
            &mut self.tmp,
        );

        self.matched.iter_mut().for_each(|m| *m = None);
        let mut any = false;
        let scans: [(&Option<BlockDatabase>, Buffer, &[u8]); 4] = [
            (&self.set.normalized, Buffer::Uri, &self.bufs[0]),
            (&self.set.normalized, Buffer::Headers, &self.bufs[1]),
            (&self.set.normalized, Buffer::Body, &self.bufs[2]),
            (&self.set.raw, Buffer::Request, req),
        ];
        for (db, which, data) in scans {
            let (Some(db), false) = (db, data.is_empty()) else {
                continue;
            };
            let (matched, conds) = (&mut self.matched, &self.set.conds);
            let scanned = db.scan(data, scratch, |id, _from, to, _| {
                let i = id as usize;
                let applies = conds
                    .get(i)
                    .is_some_and(|c| c.1 == which || c.1 == Buffer::Any);
                if let (true, Some(m)) = (applies, matched.get_mut(i)) {
                    if m.is_none() {
                        *m = Some((which, to as usize));
                    }
                    any = true;
                }
                Matching::Continue
            });
            if let Err(e) = scanned {
                self.scan_errors += 1;
                tracing::debug!("Hyperscan scan of the {} buffer failed: {e}", which.name());
            }
        }
        if !any {
            return None;
        }
        for (ri, conds) in self.set.rule_conds.iter().enumerate() {
            if conds.is_empty() || !conds.iter().all(|&c| self.matched[c].is_some()) {
                continue;
            }
            let (meta, action, reason) = &self.set.rules[ri];
            let last = conds
                .iter()
                .filter_map(|&c| self.matched[c])
                .max_by_key(|m| m.1);
            let (buffer, to) = last.unwrap_or((Buffer::Any, 0));
            let data: &[u8] = match buffer {
                Buffer::Uri => &self.bufs[0],
                Buffer::Headers => &self.bufs[1],
                Buffer::Body => &self.bufs[2],
                _ => req,
            };
            let end = to.min(data.len());
            let start = end.saturating_sub(48);
            return Some(Hit {
                meta: meta.clone(),
                action: *action,
                reason: reason.clone(),
                buffer,
                excerpt: String::from_utf8_lossy(&data[start..end]).into_owned(),
            });
        }
        None
    }
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
        s.scan(req.as_bytes(), 4096)
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

    #[test]
    fn compile_error_names_rule_and_pattern() {
        let rules = native::parse(
            "[[rule]]\nid = 1\nmsg = \"x\"\npatterns = ['ok', 'bad(']\n",
            "t",
        )
        .unwrap();
        let e = SignatureSet::compile(rules, &mut RuleBook::builtin()).unwrap_err();
        assert!(
            matches!(
                e,
                CompileError::Pattern {
                    id: 1,
                    index: 2,
                    ..
                }
            ),
            "{e:?}"
        );
        assert!(e.to_string().contains("rule 1 pattern 2 `bad(`"), "{e}");
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
