//! Literal prefilter for the normalized signature patterns.
//!
//! Normalizing a request (percent-decoding twice, JSON escapes, case,
//! comments, whitespace) and running the full regular-expression database
//! over it is most of the cost of signature matching, and almost every
//! request matches nothing. So each pattern's regular expression is reduced
//! to a *necessary condition* over literal tokens — `union` AND `select`,
//! one of `'` `"` `` ` `` AND one of `or` `and` ... — and one Hyperscan
//! database of those tokens (caseless) is run over the request's *decoded*
//! bytes first. Only a buffer where some pattern's condition holds is
//! normalized and scanned with the full database.
//!
//! Why this never misses a match: the normalized buffer is
//! `fold(decode(raw))`. Decoding is run for real (the same code as the
//! normalizer's, [`crate::http::Normalizer::decode_push`]), so every
//! encoding the normalizer undoes (`%XX`, `%uXXXX`, double encoding,
//! fullwidth forms, JSON `\uXXXX`) is undone before the tokens are looked
//! for. Folding only lowercases ASCII, turns whitespace runs and comments
//! into one space and drops comment content: every run of non-whitespace
//! bytes it outputs is, ASCII case aside, a substring of its input. Tokens
//! contain no whitespace and are matched caselessly, so a token present in
//! the normalized buffer is present in the decoded one. And a regular
//! expression can only match a buffer that contains every literal its
//! necessary condition requires. Bytes scanned raw instead of decoded (a
//! buffer with no `%` at all) only add tokens (`+` stays `+` instead of a
//! space), which can only make more buffers candidates.
//!
//! The condition is computed from the pattern's syntax tree
//! (`regex-syntax`): literals and small classes of non-whitespace bytes
//! give tokens, adjacent ones joined (`sys\.(tables|columns)` gives
//! `sys.tables`, `sys.columns`); anything that can match whitespace, a
//! large class, an optional or a look-around gives no requirement. A
//! pattern `regex-syntax` cannot parse, or any whose condition is empty,
//! turns the prefilter off for the whole set (every request takes the full
//! path).

use hyperscan::{BlockDatabase, Builder, Pattern, PatternFlags, Patterns};
use regex_syntax::hir::{Class, Hir, HirKind};

/// Most strings an exact set may hold before it is given up.
const MAX_SET: usize = 64;
/// Longest token: longer literals are cut to their first bytes (a
/// substring of a necessary string is necessary too).
pub(crate) const MAX_TOKEN: usize = 24;
/// Largest class turned into single-byte tokens.
const MAX_CLASS: usize = 6;
/// Words of a token bitset: at most 64 times as many tokens (a set with
/// more has no prefilter).
pub(crate) const WORDS: usize = 8;

/// Which tokens were seen.
pub(crate) type Seen = [u64; WORDS];

/// A necessary condition over tokens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Need {
    /// Always holds (no requirement found).
    True,
    /// The token (lowercase, no whitespace) appears.
    Tok(Vec<u8>),
    /// All hold.
    All(Vec<Need>),
    /// One holds.
    Any(Vec<Need>),
}

impl Need {
    fn all(v: Vec<Need>) -> Need {
        let mut out = Vec::new();
        for n in v {
            match n {
                Need::True => {}
                Need::All(inner) => out.extend(inner),
                n => out.push(n),
            }
        }
        match out.len() {
            0 => Need::True,
            1 => out.pop().unwrap_or(Need::True),
            _ => Need::All(out),
        }
    }

    fn any(v: Vec<Need>) -> Need {
        let mut out = Vec::new();
        for n in v {
            match n {
                Need::True => return Need::True,
                Need::Any(inner) => out.extend(inner),
                n => out.push(n),
            }
        }
        match out.len() {
            0 => Need::True,
            1 => out.pop().unwrap_or(Need::True),
            _ => Need::Any(out),
        }
    }
}

/// Bytes the normalizer's folder never changes into whitespace: the only
/// bytes tokens may hold.
fn token_byte(b: u8) -> bool {
    !(b.is_ascii_whitespace() || b == 0 || b == 0x0b)
}

/// What a sub-expression tells: the exact (small) set of strings it
/// matches, when known and made of token bytes, and what it requires.
struct Info {
    exact: Option<Vec<Vec<u8>>>,
    need: Need,
}

fn set_need(set: &[Vec<u8>]) -> Need {
    if set.iter().any(|s| s.is_empty()) {
        return Need::True;
    }
    let mut toks: Vec<Vec<u8>> = set
        .iter()
        .map(|s| s[..s.len().min(MAX_TOKEN)].to_vec())
        .collect();
    toks.sort();
    toks.dedup();
    Need::any(toks.into_iter().map(Need::Tok).collect())
}

fn cross(a: &[Vec<u8>], b: &[Vec<u8>]) -> Option<Vec<Vec<u8>>> {
    if a.len().saturating_mul(b.len()) > MAX_SET {
        return None;
    }
    let mut out = Vec::with_capacity(a.len() * b.len());
    for x in a {
        for y in b {
            let mut s = x.clone();
            s.extend_from_slice(y);
            out.push(s);
        }
    }
    out.sort();
    out.dedup();
    Some(out)
}

/// Lowercased bytes of a class, if it is small and ASCII.
fn class_bytes(c: &Class) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let mut add = |lo: u32, hi: u32| -> bool {
        if hi > 0x7f || hi - lo > 64 {
            return false;
        }
        for b in lo..=hi {
            out.push((b as u8).to_ascii_lowercase());
        }
        out.len() <= 128
    };
    let ok = match c {
        Class::Bytes(cb) => cb
            .ranges()
            .iter()
            .all(|r| add(r.start() as u32, r.end() as u32)),
        Class::Unicode(cu) => cu
            .ranges()
            .iter()
            .all(|r| add(r.start() as u32, r.end() as u32)),
    };
    if !ok {
        return None;
    }
    out.sort_unstable();
    out.dedup();
    Some(out)
}

fn info(h: &Hir) -> Info {
    match h.kind() {
        HirKind::Empty | HirKind::Look(_) => Info {
            exact: Some(vec![Vec::new()]),
            need: Need::True,
        },
        HirKind::Literal(l) => {
            let b: Vec<u8> = l.0.iter().map(|c| c.to_ascii_lowercase()).collect();
            if b.iter().all(|&c| token_byte(c)) {
                Info {
                    need: set_need(std::slice::from_ref(&b)),
                    exact: Some(vec![b]),
                }
            } else {
                let runs = b
                    .split(|&c| !token_byte(c))
                    .filter(|r| !r.is_empty())
                    .map(|r| set_need(&[r.to_vec()]))
                    .collect();
                Info {
                    exact: None,
                    need: Need::all(runs),
                }
            }
        }
        HirKind::Class(c) => match class_bytes(c) {
            Some(bytes) if bytes.len() <= MAX_CLASS && bytes.iter().all(|&b| token_byte(b)) => {
                let set: Vec<Vec<u8>> = bytes.into_iter().map(|b| vec![b]).collect();
                Info {
                    need: set_need(&set),
                    exact: Some(set),
                }
            }
            _ => Info {
                exact: None,
                need: Need::True,
            },
        },
        HirKind::Repetition(r) => {
            let sub = info(&r.sub);
            if r.min == 0 {
                let exact = match (r.max, sub.exact) {
                    (Some(1), Some(mut e)) if e.len() < MAX_SET => {
                        e.push(Vec::new());
                        Some(e)
                    }
                    _ => None,
                };
                return Info {
                    exact,
                    need: Need::True,
                };
            }
            let exact = match (r.max, &sub.exact) {
                (Some(max), Some(e)) if max == r.min && max <= 4 => {
                    let mut acc = vec![Vec::new()];
                    let mut ok = true;
                    for _ in 0..max {
                        match cross(&acc, e) {
                            Some(a) => acc = a,
                            None => {
                                ok = false;
                                break;
                            }
                        }
                    }
                    ok.then_some(acc)
                }
                _ => None,
            };
            Info {
                exact,
                need: sub.need,
            }
        }
        HirKind::Capture(c) => info(&c.sub),
        HirKind::Concat(subs) => {
            let mut needs = Vec::new();
            let mut acc: Vec<Vec<u8>> = vec![Vec::new()];
            let mut all_exact = true;
            for s in subs {
                let i = info(s);
                match i.exact {
                    Some(e) => match cross(&acc, &e) {
                        Some(a) => acc = a,
                        None => {
                            // Too many combinations: keep each side's
                            // requirement, not their adjacency.
                            all_exact = false;
                            needs.push(set_need(&acc));
                            acc = e;
                        }
                    },
                    None => {
                        all_exact = false;
                        needs.push(set_need(&acc));
                        needs.push(i.need);
                        acc = vec![Vec::new()];
                    }
                }
            }
            needs.push(set_need(&acc));
            Info {
                exact: all_exact.then_some(acc),
                need: Need::all(needs),
            }
        }
        HirKind::Alternation(subs) => {
            let infos: Vec<Info> = subs.iter().map(info).collect();
            let mut exact: Option<Vec<Vec<u8>>> = Some(Vec::new());
            for i in &infos {
                exact = match (exact, &i.exact) {
                    (Some(mut a), Some(e)) if a.len() + e.len() <= MAX_SET => {
                        a.extend(e.iter().cloned());
                        Some(a)
                    }
                    _ => None,
                };
            }
            if let Some(e) = exact.as_mut() {
                e.sort();
                e.dedup();
            }
            Info {
                exact,
                need: Need::any(infos.into_iter().map(|i| i.need).collect()),
            }
        }
    }
}

/// The necessary condition of a Hyperscan expression, or `None` when it
/// cannot be derived safely (the syntax is not understood, or a construct
/// the two parsers may read differently is present).
pub(crate) fn necessary(pattern: &str) -> Option<Need> {
    // PCRE reads `{,n}` as literal text, regex-syntax may not: avoid it.
    if pattern.contains("{,") {
        return None;
    }
    let hir = regex_syntax::ParserBuilder::new()
        .unicode(false)
        .utf8(false)
        .dot_matches_new_line(true)
        .build()
        .parse(pattern)
        .ok()?;
    Some(info(&hir).need)
}

/// A condition with tokens numbered.
#[derive(Clone, Debug)]
enum Cond {
    Tok(usize),
    /// Any of the tokens in the bitset.
    AnyOf(Seen),
    All(Vec<Cond>),
    Any(Vec<Cond>),
}

impl Cond {
    fn holds(&self, seen: &[u64]) -> bool {
        match self {
            Cond::Tok(t) => seen.get(t / 64).is_some_and(|w| (w >> (t % 64)) & 1 == 1),
            Cond::AnyOf(m) => m.iter().zip(seen).any(|(a, b)| a & b != 0),
            Cond::All(v) => v.iter().all(|c| c.holds(seen)),
            Cond::Any(v) => v.iter().any(|c| c.holds(seen)),
        }
    }
}

/// Which normalized view a condition guards.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum View {
    Uri,
    Headers,
    Body,
}

/// The compiled prefilter of a signature set.
pub(crate) struct Prefilter {
    /// Caseless literal database of the tokens (id = token number).
    pub(crate) db: BlockDatabase,
    /// Conditions per view: (pattern id, condition) for each pattern
    /// matched in that view.
    conds: [Vec<(usize, Cond)>; 3],
    /// Number of tokens.
    tokens: usize,
}

impl std::fmt::Debug for Prefilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Prefilter({} tokens)", self.tokens)
    }
}

impl Prefilter {
    /// Builds the prefilter for `patterns` (id, expression and the views it
    /// is matched in). `None` when some pattern has no usable condition:
    /// the prefilter could then never skip a request.
    pub(crate) fn build(patterns: &[(usize, &str, &[View])]) -> Option<Prefilter> {
        if patterns.is_empty() {
            return None;
        }
        let mut tokens: Vec<Vec<u8>> = Vec::new();
        let mut conds: [Vec<(usize, Cond)>; 3] = Default::default();
        for (id, expr, views) in patterns {
            let need = necessary(expr)?;
            let cond = number(&need, &mut tokens)?;
            for v in *views {
                conds[*v as usize].push((*id, cond.clone()));
            }
        }
        let pats: Vec<Pattern> = tokens
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let expr: String = t.iter().map(|b| format!("\\x{b:02x}")).collect();
                let mut p =
                    Pattern::with_flags(expr, PatternFlags::CASELESS | PatternFlags::SINGLEMATCH)
                        .ok()?;
                p.id = Some(i);
                Some(p)
            })
            .collect::<Option<_>>()?;
        if tokens.len() > WORDS * 64 {
            return None;
        }
        // Built at every start whether or not it is used: cached like the
        // rule databases.
        let db: BlockDatabase =
            super::cache::load_or_build(&pats, || Patterns(pats.clone()).build()).ok()?;
        Some(Prefilter {
            db,
            conds,
            tokens: tokens.len(),
        })
    }

    /// Does some pattern of `view` have its condition met by the tokens
    /// in `seen`?
    pub(crate) fn candidate(&self, view: View, seen: &[u64]) -> bool {
        self.conds[view as usize].iter().any(|c| c.1.holds(seen))
    }

    /// The patterns of `view` whose condition the tokens in `seen` meet,
    /// appended to `out`.
    pub(crate) fn candidates(&self, view: View, seen: &[u64], out: &mut Vec<usize>) {
        out.extend(
            self.conds[view as usize]
                .iter()
                .filter(|c| c.1.holds(seen))
                .map(|c| c.0),
        );
    }

    /// Whether any pattern is matched in `view`.
    pub(crate) fn has(&self, view: View) -> bool {
        !self.conds[view as usize].is_empty()
    }
}

/// Numbers the tokens of `need`; `None` if it is `True` anywhere it
/// decides (a pattern without requirement).
fn number(need: &Need, tokens: &mut Vec<Vec<u8>>) -> Option<Cond> {
    match need {
        Need::True => None,
        Need::Tok(t) => {
            let i = match tokens.iter().position(|x| x == t) {
                Some(i) => i,
                None => {
                    tokens.push(t.clone());
                    tokens.len() - 1
                }
            };
            Some(Cond::Tok(i))
        }
        Need::All(v) => {
            // `all` has dropped the `True`s: each part is a requirement.
            let parts: Vec<Cond> = v.iter().filter_map(|n| number(n, tokens)).collect();
            if parts.is_empty() {
                None
            } else {
                Some(Cond::All(parts))
            }
        }
        Need::Any(v) => {
            let parts = v
                .iter()
                .map(|n| number(n, tokens))
                .collect::<Option<Vec<_>>>()?;
            // Plain tokens become one bitset test.
            let mut mask: Seen = Default::default();
            let mut rest = Vec::new();
            for p in parts {
                match p {
                    Cond::Tok(t) if t < WORDS * 64 => mask[t / 64] |= 1u64 << (t % 64),
                    p => rest.push(p),
                }
            }
            if mask.iter().any(|w| *w != 0) {
                rest.push(Cond::AnyOf(mask));
            }
            Some(Cond::Any(rest))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tok(s: &str) -> Need {
        Need::Tok(s.as_bytes().to_vec())
    }

    #[test]
    fn conditions_of_simple_patterns() {
        assert_eq!(
            necessary(r"union\s*(all\s*)?select"),
            Some(Need::All(vec![tok("union"), tok("select")]))
        );
        assert_eq!(
            necessary(r"\bsys\.(tables|columns)\b"),
            Some(Need::Any(vec![tok("sys.columns"), tok("sys.tables")]))
        );
        assert_eq!(
            necessary(r"['`]\s*OR"),
            Some(Need::All(vec![
                Need::Any(vec![tok("'"), tok("`")]),
                tok("or")
            ]))
        );
        assert_eq!(necessary(r"\s+"), Some(Need::True));
        assert_eq!(necessary(r"a?b*"), Some(Need::True));
        assert_eq!(necessary(r"[a-z]+x"), Some(tok("x")));
        assert_eq!(
            necessary(r"to program"),
            Some(Need::All(vec![tok("to"), tok("program")]))
        );
        assert_eq!(necessary(r"x{,3}"), None);
        assert_eq!(necessary(r"(?<=a)b"), None, "look-behind is not understood");
    }

    #[test]
    fn builtin_patterns_all_have_conditions() {
        let rules = super::super::native::parse(super::super::BUILTIN_SQLI, "builtin").unwrap();
        for r in &rules {
            for c in &r.conds {
                let n = necessary(&c.pattern);
                assert!(
                    matches!(n, Some(ref n) if *n != Need::True),
                    "rule {} has no condition: {n:?}",
                    r.meta.id
                );
            }
        }
    }
}

/// Where the time of the full scan goes, rule by rule, and how often each
/// rule's prefilter condition holds on the corpus heads (a measurement,
/// not a check: `cargo test --release --lib prefilter::profile -- --ignored --nocapture`).
#[cfg(test)]
mod profile {
    use super::*;
    use crate::http::{self, Norm, Normalizer};
    use hyperscan::Matching;

    fn corpus() -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        for name in ["benign.jsonl", "sqli_malicious.jsonl"] {
            let path = format!("{}/tests/corpus/{name}", env!("CARGO_MANIFEST_DIR"));
            let text = std::fs::read_to_string(path).unwrap();
            for line in text.lines() {
                let v: serde_json::Value = serde_json::from_str(line).unwrap();
                let mut r = format!(
                    "{} {} HTTP/1.1\r\n",
                    v["method"].as_str().unwrap_or("GET"),
                    v["uri"].as_str().unwrap_or("/")
                );
                for h in v["headers"].as_array().into_iter().flatten() {
                    r += &format!("{}: {}\r\n", h[0].as_str().unwrap(), h[1].as_str().unwrap());
                }
                r += "\r\n";
                out.push(r.into_bytes());
            }
        }
        out
    }

    #[test]
    #[ignore]
    fn per_rule_cost_and_candidates() {
        let rules = super::super::native::parse(super::super::BUILTIN_SQLI, "builtin").unwrap();
        let mut s = http::Scratch::default();
        // (uri N, headers N, uri D, headers D) per request.
        let mut views = Vec::new();
        for r in corpus() {
            let h = http::head::parse(&r).unwrap();
            let target = &r[h.target.0..h.target.1];
            let (mut un, mut hn, mut ud, mut hd, mut line) =
                (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
            http::normalize(target, Norm::FORM, &mut un, &mut s);
            let mut n = Normalizer::new(Norm::FORM);
            n.decode_push(target, &mut ud, &mut s);
            n.decode_finish(&mut ud, &mut s);
            for f in &h.fields {
                let l = &r[f.name.0..f.value.1];
                http::normalize(l, Norm::PLAIN, &mut line, &mut s);
                hn.extend_from_slice(&line);
                hn.push(b'\n');
                let mut n = Normalizer::new(Norm::PLAIN);
                n.decode_push(l, &mut hd, &mut s);
                n.decode_finish(&mut hd, &mut s);
                hd.push(b'\n');
            }
            views.push((un, hn, ud, hd));
        }
        let flags = PatternFlags::CASELESS | PatternFlags::DOTALL | PatternFlags::SINGLEMATCH;
        let mut any_cand = vec![false; views.len()];
        for r in &rules {
            let pat = &r.conds[0].pattern;
            let p = Pattern::with_flags(pat.clone(), flags).unwrap();
            let db: BlockDatabase = Patterns(vec![p]).build().unwrap();
            let scratch = db.alloc_scratch().unwrap();
            let t = std::time::Instant::now();
            let mut hits = 0;
            for _ in 0..5 {
                for v in &views {
                    for d in [&v.0, &v.1] {
                        db.scan(d.as_slice(), &scratch, |_, _, _, _| {
                            hits += 1;
                            Matching::Continue
                        })
                        .unwrap();
                    }
                }
            }
            let ns = t.elapsed().as_nanos() as f64 / 5.0 / views.len() as f64;
            let pre = Prefilter::build(&[(0, pat.as_str(), &[View::Uri, View::Headers])]).unwrap();
            let ps = pre.db.alloc_scratch().unwrap();
            let mut cands = 0;
            for (i, v) in views.iter().enumerate() {
                let mut c = false;
                for (d, view) in [(&v.2, View::Uri), (&v.3, View::Headers)] {
                    let mut seen: Seen = Default::default();
                    pre.db
                        .scan(d.as_slice(), &ps, |id, _, _, _| {
                            seen[id as usize / 64] |= 1u64 << (id % 64);
                            Matching::Continue
                        })
                        .unwrap();
                    c |= pre.candidate(view, &seen);
                }
                cands += c as usize;
                any_cand[i] |= c;
            }
            eprintln!(
                "rule {} {:>8.0} ns/request  candidates {:>5} / {}  hits {}",
                r.meta.id,
                ns,
                cands,
                views.len(),
                hits / 5
            );
        }
        eprintln!(
            "heads with any candidate: {} / {}",
            any_cand.iter().filter(|c| **c).count(),
            views.len()
        );
    }
}

/// What a block scan of the head database costs: a fixed part per call
/// and a part per byte (a measurement, not a check:
/// `cargo test --release --lib prefilter::scan_cost -- --ignored --nocapture`).
/// Cookie-like lines of random token bytes, 64 different ones per length.
#[cfg(test)]
mod scan_cost {
    use hyperscan::Matching;

    #[test]
    #[ignore]
    fn fixed_and_per_byte_cost_of_a_head_scan() {
        let set = super::super::tests::builtin_set();
        let db = set.head.as_ref().expect("head database");
        let s = db.alloc_scratch().expect("scratch");
        let alpha = b"abcdefghijklmnopqrstuvwxyz0123456789._-";
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for n in [1usize, 16, 64, 128, 256, 512, 1024] {
            let bufs: Vec<Vec<u8>> = (0..64)
                .map(|_| {
                    let mut v = b"cookie: sid=".to_vec();
                    for _ in 0..n {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        v.push(alpha[(x % alpha.len() as u64) as usize]);
                    }
                    v.push(b'\n');
                    v
                })
                .collect();
            let reps = 200;
            let t = std::time::Instant::now();
            for _ in 0..reps {
                for b in &bufs {
                    db.scan(b.as_slice(), &s, |_, _, _, _| Matching::Continue)
                        .expect("scan");
                }
            }
            let ns = t.elapsed().as_nanos() as f64 / (reps * bufs.len()) as f64;
            let len = bufs[0].len();
            eprintln!(
                "{len:>5} bytes: {ns:>6.0} ns per scan, {:>5.2} ns per byte",
                ns / len as f64
            );
        }
    }
}
