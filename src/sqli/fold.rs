//! Folding: turns the raw token stream into the "significant" stream the
//! rules look at.
//!
//! * comments in the middle of the value are dropped (they act as whitespace,
//!   e.g. `UNION/**/SELECT`); a trailing comment is kept as one `c` token,
//!   because "the rest of the original query is commented out" is a signal;
//! * multi-word keywords are merged: UNION ALL/DISTINCT, ORDER BY, GROUP BY,
//!   WAITFOR DELAY/TIME, EXECUTE IMMEDIATE, INTO OUTFILE/DUMPFILE, IS NOT,
//!   NOT IN/LIKE/BETWEEN/REGEXP, SOUNDS LIKE;
//! * function names become `f` only when followed by `(`, otherwise `n`
//!   (so prose such as "user", "left", "char" stays a plain word);
//! * unary operators (`-`, `+`, `!`, `~`, NOT) in operand position are
//!   dropped (`-1 UNION`, `!SLEEP(5)`, `OR NOT 1=2`);
//! * runs of `(` or of `)` collapse to one token.

use super::tokenize::{Kind, Kw, Tok};

fn next_sig(raw: &[Tok], mut i: usize) -> Option<usize> {
    while let Some(t) = raw.get(i) {
        if t.kind != Kind::Comment {
            return Some(i);
        }
        i += 1;
    }
    None
}

/// True if an operator following `prev` is in operand position (unary).
fn unary_position(prev: Option<&Tok>) -> bool {
    prev.is_none_or(|p| p.kind.expects_operand())
}

fn text<'a>(src: &'a [u8], t: &Tok) -> &'a [u8] {
    src.get(t.start..t.end).unwrap_or(&[])
}

/// Folds `raw` (from [`super::tokenize::tokenize`]) into `out`.  Linear time.
pub(super) fn fold(raw: &[Tok], src: &[u8], out: &mut Vec<Tok>) {
    let mut i = 0;
    while let Some(&t) = raw.get(i) {
        if t.kind == Kind::Comment {
            let mut j = i;
            while raw.get(j).is_some_and(|x| x.kind == Kind::Comment) {
                j += 1;
            }
            if j >= raw.len() {
                out.push(t);
            }
            i = j;
            continue;
        }
        let nx = next_sig(raw, i + 1);
        let nt = nx.and_then(|k| raw.get(k)).copied();
        let nkw = nt.map_or(Kw::None, |x| x.kw);
        let nkind = nt.map(|x| x.kind);
        let mut tok = t;
        let mut next_i = i + 1;
        // Absorb the next significant token into this one.
        let mut absorb = |tok: &mut Tok| {
            if let (Some(k), Some(n)) = (nx, nt) {
                tok.end = n.end;
                next_i = k + 1;
            }
        };
        let drop = match (t.kind, t.kw) {
            (Kind::Union, _) if matches!(nkw, Kw::All | Kw::Distinct) => {
                absorb(&mut tok);
                false
            }
            (Kind::Name, Kw::Order) if nkw == Kw::By => {
                tok.kind = Kind::Group;
                absorb(&mut tok);
                false
            }
            (Kind::Name, Kw::Waitfor)
                if nkw == Kw::Delay
                    || nt.is_some_and(|n| text(src, &n).eq_ignore_ascii_case(b"TIME")) =>
            {
                tok.kind = Kind::Delay;
                absorb(&mut tok);
                false
            }
            (Kind::Stmt, Kw::Exec) if nkw == Kw::Immediate => {
                tok.kw = Kw::ExecImmediate;
                absorb(&mut tok);
                false
            }
            (Kind::Kw, Kw::Into) if nkw == Kw::Outfile => {
                tok.kw = Kw::IntoOutfile;
                absorb(&mut tok);
                false
            }
            (Kind::Op, Kw::In) => {
                // MySQL full-text `IN BOOLEAN MODE` ends a MATCH .. AGAINST
                // (..) clause: a modifier, not an operator.  Drop it.
                let n2 = nx.and_then(|k| next_sig(raw, k + 1));
                let t2 = n2.and_then(|k| raw.get(k)).copied();
                let word = |t: Option<Tok>, w: &[u8]| {
                    t.is_some_and(|t| text(src, &t).eq_ignore_ascii_case(w))
                };
                if word(nt, b"BOOLEAN") && word(t2, b"MODE") {
                    next_i = n2.map_or(raw.len(), |k| k + 1);
                    true
                } else {
                    false
                }
            }
            (Kind::Op, Kw::Is) if nkw == Kw::Not => {
                absorb(&mut tok);
                false
            }
            // Either a prefix of NOT IN / NOT LIKE / NOT BETWEEN / NOT EXISTS
            // (the next token carries the meaning) or a unary negation.
            (Kind::Op, Kw::Not) => true,
            (Kind::Name, Kw::Sounds) => nkw == Kw::Like,
            (Kind::Func, _) => {
                if nkind != Some(Kind::LParen) {
                    tok.kind = Kind::Name;
                }
                false
            }
            (Kind::Op, Kw::Arith) => {
                matches!(text(src, &t), b"-" | b"+" | b"!" | b"~") && unary_position(out.last())
            }
            (Kind::LParen | Kind::RParen, _) => out.last().is_some_and(|p| p.kind == t.kind),
            _ => false,
        };
        if !drop {
            out.push(tok);
        }
        i = next_i;
    }
}
