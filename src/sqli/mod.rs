//! Structural SQL-injection detector.
//!
//! A value (one decoded request parameter) is tokenized as SQL three times,
//! once per assumed injection context: bare (numeric / unquoted position),
//! inside a single-quoted string and inside a double-quoted string.  In a
//! quote context the value starts *inside* a string, so the first token is
//! the rest of that string up to the closing quote the attacker supplies.
//!
//! The token stream is folded (comments used as whitespace dropped,
//! multi-word keywords merged, unary operators and parenthesis runs
//! collapsed) and then judged by structural rules (see `rules.rs`): the value
//! is reported only when it contains a construct that is SQL-only *and* sits
//! where an injection would put it.
//!
//! # Fingerprint legend
//!
//! | letter | class |
//! |---|---|
//! | `s` | string literal |
//! | `1` | number, TRUE/FALSE/NULL |
//! | `n` | name / identifier / unknown word |
//! | `v` | `@var` / `@@sysvar` |
//! | `f` | known SQL function followed by `(` |
//! | `k` | other keyword (FROM, WHERE, INTO, CASE, ...) |
//! | `E` | statement keyword (SELECT, INSERT, DROP, EXEC, DECLARE, ...) |
//! | `U` | `UNION [ALL]`, INTERSECT, EXCEPT, MINUS |
//! | `B` | ORDER BY, GROUP BY, HAVING |
//! | `&` | AND, OR, XOR, `&&`, `\|\|` |
//! | `o` | operator (comparison, arithmetic, LIKE, IN, IS, BETWEEN, `:=`) |
//! | `T` | WAITFOR DELAY / WAITFOR TIME |
//! | `(` `)` `,` `;` | punctuation |
//! | `c` | trailing comment |
//! | `?` | anything else |
#![warn(missing_docs)]
#![forbid(unsafe_code)]

mod fold;
mod rules;
mod tokenize;

#[cfg(test)]
mod tests;

use self::tokenize::Tok;

/// Which SQL context a value was assumed to be injected into.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Context {
    /// Numeric / unquoted position (`WHERE id = <value>`).
    Bare,
    /// Inside a single-quoted string (`WHERE name = '<value>'`).
    SingleQuote,
    /// Inside a double-quoted string (`WHERE name = "<value>"`).
    DoubleQuote,
}

impl Context {
    /// Short name for alert reasons: "bare", "single-quote", "double-quote".
    pub fn name(self) -> &'static str {
        match self {
            Context::Bare => "bare",
            Context::SingleQuote => "single-quote",
            Context::DoubleQuote => "double-quote",
        }
    }

    fn quote(self) -> Option<u8> {
        match self {
            Context::Bare => None,
            Context::SingleQuote => Some(b'\''),
            Context::DoubleQuote => Some(b'"'),
        }
    }
}

/// Why a value looks like SQL injection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// Context in which the value parses as an injection.
    pub context: Context,
    /// Token-class fingerprint of up to [`FINGERPRINT_LEN`] folded tokens
    /// from where the injection starts, e.g. `"s&1o1"` (legend in the module
    /// documentation).
    pub fingerprint: String,
    /// The significant source text, whitespace-collapsed, non-printable
    /// bytes as `\xNN`, at most [`TOKENS_MAX`] bytes, e.g. `"' OR 1=1"`.
    pub tokens: String,
}

/// Number of folded tokens shown in [`Finding::fingerprint`].
pub const FINGERPRINT_LEN: usize = 8;

/// Maximum length in bytes of [`Finding::tokens`].
pub const TOKENS_MAX: usize = 80;

/// Reusable detector (holds scratch buffers; no allocation per call after
/// warm-up except for the returned [`Finding`]).
#[derive(Default)]
pub struct Detector {
    raw: Vec<Tok>,
    folded: Vec<Tok>,
}

impl Detector {
    /// New detector with empty scratch buffers.
    pub fn new() -> Detector {
        Detector::default()
    }

    /// `value` is one already-decoded parameter value (percent-decoding and
    /// JSON unescaping done by the caller; original case kept; any bytes).
    /// Tries the bare, single-quote and double-quote contexts in that order
    /// and returns the first finding.  Linear in `value.len()`.
    pub fn detect(&mut self, value: &[u8]) -> Option<Finding> {
        for ctx in [Context::Bare, Context::SingleQuote, Context::DoubleQuote] {
            let quote = ctx.quote();
            if let Some(q) = quote {
                if !value.contains(&q) {
                    continue;
                }
            }
            self.raw.clear();
            self.folded.clear();
            tokenize::tokenize(value, quote, &mut self.raw);
            fold::fold(&self.raw, value, &mut self.folded);
            if let Some(hit) = rules::check(&self.folded, value, quote) {
                return Some(self.finding(ctx, hit.start, value));
            }
        }
        None
    }

    fn finding(&self, context: Context, start: usize, value: &[u8]) -> Finding {
        let end = self.folded.len().min(start + FINGERPRINT_LEN);
        let window = self.folded.get(start..end).unwrap_or(&[]);
        let fingerprint: String = window.iter().map(|t| t.kind.letter()).collect();
        let from = match (window.first(), context) {
            // In a quote context show the closing quote, not the data before it.
            (Some(t), Context::SingleQuote | Context::DoubleQuote) if start == 0 => {
                t.end.saturating_sub(1)
            }
            (Some(t), _) => t.start,
            (None, _) => 0,
        };
        let to = window.last().map_or(0, |t| t.end);
        Finding {
            context,
            fingerprint,
            tokens: render(value.get(from..to).unwrap_or(&[])),
        }
    }
}

/// Whitespace-collapsed, printable rendering bounded by [`TOKENS_MAX`].
fn render(bytes: &[u8]) -> String {
    let mut s = String::new();
    let mut space = false;
    for &b in bytes {
        if s.len() > TOKENS_MAX - 8 {
            s.push_str("...");
            break;
        }
        if tokenize::is_ws(b) || b == 0xa0 {
            space = !s.is_empty();
            continue;
        }
        if space {
            s.push(' ');
            space = false;
        }
        if (0x21..0x7f).contains(&b) {
            s.push(char::from(b));
        } else {
            s.push_str(&format!("\\x{b:02x}"));
        }
    }
    s
}
