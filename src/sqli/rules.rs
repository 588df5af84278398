//! Structural decision rules over the folded token stream.
//!
//! The guiding principle: a finding needs at least one construct that only
//! makes sense as SQL *and* that sits where an injected value would put it.
//! Prose, identifiers, numbers and punctuation on their own never trigger.
//!
//! Two kinds of decisions:
//!
//! * **Anchored** rules look at the start of the value in its assumed context.
//!   In a quote context the first token is the string the value was injected
//!   into; if the value closes it and then continues with SQL grammar
//!   (a logic operator and a predicate, a comment, `;` and a statement, UNION
//!   SELECT, ORDER BY n, ...), that is the classic injection shape.  In the
//!   bare (numeric) context the value itself is an operand followed by the
//!   same continuations.
//! * **Anywhere** rules find a few constructs that are SQL-only wherever they
//!   sit: a time-delay / error-based function call in expression position,
//!   UNION SELECT with a real select list, `; <statement>`, WAITFOR DELAY
//!   '..', DECLARE @v, EXEC @v / EXEC xp_..., EXECUTE IMMEDIATE '..',
//!   INTO OUTFILE '..', `(SELECT .. FROM ..)`.
//!
//! A tiny curated set of whole-value fingerprints complements the rules for
//! very short payloads whose only structure is the fingerprint itself.

use super::tokenize::{Kind, Kw, Tok};

/// Whole-value fingerprints (quote contexts only) that are injections on
/// their own, for short values (`<= SHORT` bytes):
///
/// * `sos`  — `'='`, `'-'`, `'*'`: closes the string, applies an operator to
///   a second string; the operator turns the original comparison into a
///   tautology (`name = ''=''` is true for every row in MySQL).
/// * `sosc` — the same, with the rest of the query commented out.
/// * `s;c`  — `';--`: ends the statement and comments out the rest (stacked
///   query probe).
const QUOTE_EXACT: &[&str] = &["sos", "sosc", "s;c"];
const SHORT: usize = 32;

/// Max tokens scanned inside a function call's arguments / a select list.
const LOOKAHEAD: usize = 32;

/// Result of a successful rule: folded-token window to report.
pub(super) struct Hit {
    /// First folded token of the window.
    pub(super) start: usize,
}

/// How much the context alone already says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// Bare context: the value may be prose from its first byte, so
    /// predicates must be tautology-like.
    Bare,
    /// Quote context where the text before the closing quote is prose-like
    /// (contains whitespace or is long): same strictness as `Bare`, except
    /// that the quote/logic-operator juxtaposition itself counts.
    Quote,
    /// Quote context where the value starts with a short single word and
    /// closes the quote (`admin'`, `1'`, `'`): any predicate is enough.
    Tight,
}

struct V<'a> {
    t: &'a [Tok],
    src: &'a [u8],
    mode: Mode,
}

impl<'a> V<'a> {
    fn kind(&self, i: usize) -> Option<Kind> {
        self.t.get(i).map(|t| t.kind)
    }
    fn kw(&self, i: usize) -> Kw {
        self.t.get(i).map_or(Kw::None, |t| t.kw)
    }
    fn is(&self, i: usize, k: Kind) -> bool {
        self.kind(i) == Some(k)
    }
    fn text(&self, i: usize) -> &'a [u8] {
        self.t
            .get(i)
            .and_then(|t| self.src.get(t.start..t.end))
            .unwrap_or(&[])
    }
    fn closer(&self, i: usize) -> bool {
        self.is(i, Kind::RParen) || (self.is(i, Kind::Other) && self.kw(i) == Kw::Closer)
    }
    /// Skips `)`, stray closers and an `AS alias` after them.
    fn skip_closers(&self, mut j: usize) -> usize {
        while self.closer(j) {
            j += 1;
        }
        if self.kw(j) == Kw::As && self.is(j + 1, Kind::Name) {
            j += 2;
        }
        j
    }
    fn word_in(&self, i: usize, words: &[&str]) -> bool {
        let t = self.text(i);
        words.iter().any(|w| t.eq_ignore_ascii_case(w.as_bytes()))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Opd {
    Lit,
    Name,
    Var,
    Call,
    Other,
}

#[derive(Clone, Copy, Debug)]
struct Operand {
    /// Index after the operand (and any `)` following it).
    end: usize,
    /// Index of the operand's first token (after an opening paren).
    tok: usize,
    opd: Opd,
    /// SQL-only beyond doubt: dangerous function call, sub-select, CASE WHEN.
    sure: bool,
    /// Call of a known SQL function with SQL-looking arguments.
    fcall: bool,
    /// Call (known or not) with SQL-looking arguments.
    sql: bool,
}

/// `f(` / `n(` call starting at `i` (the name).  The arguments are "SQL
/// looking" if they contain a literal, variable, operator, comma, nested
/// function or statement, or are empty; prose in parentheses ("if (you
/// want)") is only words.
fn call(v: &V, i: usize, known: bool) -> Operand {
    // MySQL only parses a built-in function call when `(` follows the name
    // without whitespace; prose puts a space there ("sleep (a lot)").
    let tight = match (v.t.get(i), v.t.get(i + 1)) {
        (Some(a), Some(b)) => a.end == b.start,
        _ => false,
    };
    let danger = v.kw(i) == Kw::Danger;
    let mut sql = v.is(i + 2, Kind::RParen);
    let mut sure = false;
    // Brackets, braces, `?`, `:` are not SQL (they are code: `len(x[0])`).
    let mut foreign = false;
    let mut j = i + 2;
    let mut end = None;
    while j < i + 2 + LOOKAHEAD {
        match v.kind(j) {
            None => break,
            Some(Kind::RParen) => {
                end = Some(j + 1);
                break;
            }
            Some(Kind::Num | Kind::Str | Kind::Var | Kind::Op | Kind::Comma) => sql = true,
            Some(Kind::Func) => {
                sql = true;
                if v.kw(j) == Kw::Danger {
                    sure = true;
                }
            }
            Some(Kind::Stmt)
                if v.kw(j) == Kw::Select
                    && v.is(j.wrapping_sub(1), Kind::LParen)
                    && select_list(v, j + 1, false) =>
            {
                sql = true;
                sure = true;
            }
            Some(Kind::Other) if v.kw(j) != Kw::Closer => foreign = true,
            Some(Kind::Kw) if case_when(v, j) => {
                sql = true;
                sure = true;
            }
            _ => {}
        }
        j += 1;
    }
    let sql = sql && (!foreign || sure);
    Operand {
        end: end.unwrap_or(j),
        tok: i,
        opd: Opd::Call,
        sure: (sql && (sure || danger)) || (danger && tight),
        fcall: known && sql,
        sql,
    }
}

/// `CASE WHEN <condition> THEN` with a condition that is a comparison, a
/// literal, a variable or a function call ("in case when you ... then" is
/// prose), or the simple form `CASE <literal> WHEN <value> THEN`.
fn case_when(v: &V, i: usize) -> bool {
    if v.kw(i) != Kw::Case {
        return false;
    }
    let (when, mut cond) = if v.kw(i + 1) == Kw::When {
        (i + 1, false)
    } else if matches!(v.kind(i + 1), Some(Kind::Num | Kind::Str | Kind::Var))
        && v.kw(i + 2) == Kw::When
    {
        (i + 2, true)
    } else {
        return false;
    };
    for j in when + 1..when + 1 + LOOKAHEAD {
        match v.kind(j) {
            None => return false,
            Some(Kind::Kw) if v.kw(j) == Kw::Then => return cond,
            Some(Kind::Op) if matches!(v.kw(j), Kw::Cmp | Kw::Like | Kw::Is | Kw::In) => {
                cond = true
            }
            Some(Kind::Func | Kind::Var) => cond = true,
            Some(Kind::Num) if j == when + 1 => cond = true,
            _ => {}
        }
    }
    false
}

fn operand(v: &V, mut i: usize) -> Option<Operand> {
    let paren = v.is(i, Kind::LParen);
    if paren {
        i += 1;
    }
    let simple = |opd| Operand {
        end: i + 1,
        tok: i,
        opd,
        sure: false,
        fcall: false,
        sql: false,
    };
    let mut r = match v.kind(i)? {
        Kind::Num | Kind::Str => simple(Opd::Lit),
        Kind::Var => simple(Opd::Var),
        Kind::Func => call(v, i, true),
        Kind::Name if v.is(i + 1, Kind::LParen) => call(v, i, false),
        Kind::Name => simple(Opd::Name),
        Kind::Stmt if paren && v.kw(i) == Kw::Select && select_list(v, i + 1, false) => Operand {
            sure: true,
            ..simple(Opd::Other)
        },
        Kind::Kw if case_when(v, i) => Operand {
            sure: true,
            ..simple(Opd::Other)
        },
        _ => return None,
    };
    while v.is(r.end, Kind::RParen) {
        r.end += 1;
    }
    Some(r)
}

#[derive(Clone, Copy, Debug)]
struct Chain {
    end: usize,
    tok: usize,
    first: Opd,
    single: bool,
    /// Every operand is a literal or a variable.
    lit: bool,
    sure: bool,
    fcall: bool,
}

/// Operand followed by any number of `<arith-op> <operand>`.
fn chain(v: &V, i: usize) -> Option<Chain> {
    let a = operand(v, i)?;
    let mut c = Chain {
        end: a.end,
        tok: a.tok,
        first: a.opd,
        single: true,
        lit: matches!(a.opd, Opd::Lit | Opd::Var),
        sure: a.sure,
        fcall: a.fcall,
    };
    while v.is(c.end, Kind::Op) && v.kw(c.end) == Kw::Arith {
        let Some(b) = operand(v, c.end + 1) else {
            break;
        };
        c.end = b.end;
        c.single = false;
        c.lit &= matches!(b.opd, Opd::Lit | Opd::Var);
        c.sure |= b.sure;
        c.fcall |= b.fcall;
    }
    Some(c)
}

fn same_name(v: &V, a: &Chain, b: &Chain) -> bool {
    a.single
        && b.single
        && a.first == Opd::Name
        && b.first == Opd::Name
        && v.text(a.tok).eq_ignore_ascii_case(v.text(b.tok))
}

/// A boolean predicate as injected after AND/OR/WHERE/HAVING.  Except in
/// [`Mode::Tight`], where the context already shows the injection shape, a
/// comparison must be tautology-like (literal vs literal, or the same name on
/// both sides) or involve a function call / sub-select.
fn pred(v: &V, i: usize) -> bool {
    let tight = v.mode == Mode::Tight;
    // `AND SELECT x FROM t ...` (sloppy but unmistakable)
    if v.is(i, Kind::Stmt) && v.kw(i) == Kw::Select {
        return select_list(v, i + 1, true);
    }
    let Some(c) = chain(v, i) else {
        return false;
    };
    if c.sure || c.fcall {
        return true;
    }
    let j = c.end;
    let lit_ok = tight || c.lit;
    // `' OR f('x') OR '`: any call with SQL arguments in a quote context.
    if tight && c.first == Opd::Call && call(v, c.tok, false).sql {
        return true;
    }
    match (v.kind(j), v.kw(j)) {
        (Some(Kind::Op), Kw::Cmp) => chain(v, j + 1).is_some_and(|d| {
            d.sure || d.fcall || tight || (c.lit && d.lit) || same_name(v, &c, &d)
        }),
        (Some(Kind::Op), Kw::Like) => chain(v, j + 1)
            .is_some_and(|d| d.sure || d.fcall || (d.first == Opd::Lit && d.single && lit_ok)),
        (Some(Kind::Op), Kw::In) => {
            v.is(j + 1, Kind::LParen)
                && (operand(v, j + 1).is_some_and(|d| d.sure)
                    || (lit_ok
                        && matches!(v.kind(j + 2), Some(Kind::Num | Kind::Str | Kind::Func))))
        }
        (Some(Kind::Op), Kw::Is) => lit_ok && v.is(j + 1, Kind::Num),
        (Some(Kind::Op), Kw::Between) => {
            lit_ok
                && chain(v, j + 1).is_some_and(|d| {
                    d.lit && v.is(d.end, Kind::Logic) && chain(v, d.end + 1).is_some_and(|e| e.lit)
                })
        }
        // `' OR 1--`, `OR TRUE#`, `' OR 1;` (a string literal only in a
        // quote context: `"a" and "b";` is prose)
        (Some(Kind::Comment | Kind::Semi), _) => {
            c.single && c.first == Opd::Lit && (v.mode != Mode::Bare || v.is(c.tok, Kind::Num))
        }
        // `x' OR 'x`, `' or ''-'` (the original query supplies the closing
        // quote; the last string must be a single word too)
        (None, _) => tight && c.lit && v.is(c.tok, Kind::Str) && last_str_tight(v),
        // `' OR 1 GROUP BY ...`, `OR 1 UNION ...`: a bare true literal
        // followed by a clause.
        (Some(Kind::Group | Kind::Union), _) => c.single && c.first == Opd::Lit,
        _ => false,
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum List {
    /// Not a select list ("select the best option").
    No,
    /// `name FROM name` / `name WHERE`: SQL-shaped but also possible prose.
    Weak,
    /// Literal, variable, `*`, function call, sub-expression, CASE,
    /// `a, b`: only SQL writes this after SELECT.
    Strong,
}

/// Classifies the select list after SELECT at `i` (DISTINCT/ALL/TOP n
/// skipped).  Returns the class and the index of the first item.
fn list_class(v: &V, mut i: usize) -> (List, usize) {
    for _ in 0..3 {
        match v.kw(i) {
            Kw::Distinct | Kw::All => i += 1,
            Kw::Top => {
                i += 1;
                if v.is(i, Kind::Num) {
                    i += 1;
                }
            }
            _ => break,
        }
    }
    let strong = match v.kind(i) {
        Some(Kind::Num | Kind::Str | Kind::Var | Kind::Func | Kind::LParen) => true,
        Some(Kind::Op) => v.text(i) == b"*",
        Some(Kind::Kw) => case_when(v, i),
        Some(Kind::Name) => {
            v.is(i + 1, Kind::LParen)
                || (v.is(i + 1, Kind::Comma)
                    && matches!(
                        v.kind(i + 2),
                        Some(Kind::Name | Kind::Num | Kind::Str | Kind::Var | Kind::Func)
                    ))
        }
        _ => false,
    };
    let weak = v.is(i, Kind::Name)
        && ((v.kw(i + 1) == Kw::From && v.is(i + 2, Kind::Name)) || v.kw(i + 1) == Kw::Where);
    let class = if strong {
        List::Strong
    } else if weak {
        List::Weak
    } else {
        List::No
    };
    (class, i)
}

/// Index of the first `FROM <name|(>` within the lookahead, if any.
fn find_from(v: &V, i: usize) -> Option<usize> {
    (i..i + LOOKAHEAD)
        .find(|&j| v.kw(j) == Kw::From && matches!(v.kind(j + 1), Some(Kind::Name | Kind::LParen)))
}

/// True if the token at `j` ends a statement or starts a clause that only
/// follows a complete query.
fn stmt_end(v: &V, j: usize) -> bool {
    matches!(
        v.kind(j),
        None | Some(Kind::Semi | Kind::Comment | Kind::Union | Kind::Group | Kind::RParen)
    ) || matches!(v.kw(j), Kw::Where)
}

/// Select list after SELECT at `i`.  Without `need_from` (after UNION, `;`
/// or `(`) any SQL-shaped list is accepted.  With `need_from` (a value that
/// *starts* with SELECT, where prose is possible) the list must be strong
/// and followed by `FROM <name>`, or be a single call / variable ending the
/// statement (`SELECT version();`), or be `name FROM name` followed by a
/// statement end or WHERE.
fn select_list(v: &V, i: usize, need_from: bool) -> bool {
    let (class, first) = list_class(v, i);
    if !need_from {
        return class != List::No;
    }
    match class {
        List::No => false,
        List::Weak => v.kw(first + 1) == Kw::From && stmt_end(v, first + 3),
        List::Strong => {
            find_from(v, first).is_some()
                || match v.kind(first) {
                    Some(Kind::Var) => stmt_end(v, first + 1),
                    Some(Kind::Func | Kind::Name) if v.is(first + 1, Kind::LParen) => {
                        let c = call(v, first, true);
                        c.sql && matches!(v.kind(c.end), None | Some(Kind::Semi | Kind::Comment))
                    }
                    _ => false,
                }
        }
    }
}

/// `UNION [ALL] [(] SELECT <list>` with the UNION at `i - 1`.
fn union_select(v: &V, mut i: usize) -> bool {
    if v.is(i, Kind::LParen) {
        i += 1;
    }
    v.kw(i) == Kw::Select && select_list(v, i + 1, false)
}

/// `UNION [ALL] SELECT` that ends the value (a column-count probe prefix)
/// or is followed by a list; only used where the UNION directly follows the
/// injection point.
fn union_probe(v: &V, i: usize) -> bool {
    union_select(v, i)
        || (v.mode != Mode::Quote
            && v.kw(i) == Kw::Select
            && matches!(v.kind(i + 1), None | Some(Kind::Comment)))
}

/// Target of EXEC: `@v`, `(@v)`, `xp_cmdshell`, `master..xp_cmdshell`,
/// `sp_executesql`, and (after `;` only, `after_semi`) `('..')` and
/// `pkg.proc(args)` (`exec("...")` alone is also Python).  A plain word or string after "exec" is prose
/// ("exec's", `"exec" at the start`).
fn exec_target(v: &V, i: usize, after_semi: bool) -> bool {
    match v.kind(i) {
        Some(Kind::Var) => true,
        Some(Kind::LParen) => v.is(i + 1, Kind::Var) || (after_semi && v.is(i + 1, Kind::Str)),
        Some(Kind::Name) => {
            v.kw(i) == Kw::Proc
                || (after_semi && v.is(i + 1, Kind::LParen) && call(v, i, false).sql)
        }
        _ => false,
    }
}

const DDL_OBJECTS: &[&str] = &[
    "TABLE",
    "DATABASE",
    "SCHEMA",
    "USER",
    "VIEW",
    "PROCEDURE",
    "FUNCTION",
    "INDEX",
    "TRIGGER",
    "LOGIN",
];

/// A complete-looking SQL statement starting at `i`.  `bare_start`: the value
/// itself starts with it (no `;` before), so require more structure.
fn stmt(v: &V, i: usize, bare_start: bool) -> bool {
    match (v.kind(i), v.kw(i)) {
        (Some(Kind::Stmt), Kw::Select) => select_list(v, i + 1, bare_start),
        (Some(Kind::Stmt), Kw::Insert) => {
            v.kw(i + 1) == Kw::Into
                && v.is(i + 2, Kind::Name)
                && (!bare_start
                    || matches!(v.kind(i + 3), Some(Kind::LParen | Kind::Stmt))
                    || v.word_in(i + 3, &["VALUES"]))
        }
        (Some(Kind::Stmt), Kw::Update) => {
            v.is(i + 1, Kind::Name)
                && v.kw(i + 2) == Kw::Set
                && (!bare_start || (v.is(i + 3, Kind::Name) && v.kw(i + 4) == Kw::Cmp))
        }
        (Some(Kind::Stmt), Kw::Delete) => {
            v.kw(i + 1) == Kw::From
                && v.is(i + 2, Kind::Name)
                && (!bare_start || matches!(v.kind(i + 3), None | Some(Kind::Comment | Kind::Semi)))
                || (!bare_start && v.is(i + 1, Kind::Name) && v.kw(i + 2) == Kw::Where)
        }
        (Some(Kind::Stmt), Kw::Ddl) => {
            v.word_in(i + 1, DDL_OBJECTS)
                && (!bare_start
                    || (matches!(v.kind(i + 2), Some(Kind::Name | Kind::Str))
                        && (matches!(
                            v.kind(i + 3),
                            Some(Kind::Comment | Kind::Semi | Kind::LParen)
                        ) || v.kw(i + 3) == Kw::As)))
        }
        (Some(Kind::Stmt), Kw::Exec) => exec_target(v, i + 1, !bare_start),
        (Some(Kind::Stmt), Kw::ExecImmediate) => v.is(i + 1, Kind::Str),
        (Some(Kind::Stmt), Kw::Declare) => v.is(i + 1, Kind::Var),
        (Some(Kind::Stmt), Kw::Shutdown) => !bare_start || v.kw(i + 1) == Kw::With,
        (Some(Kind::Stmt), Kw::Grant) => !bare_start,
        (Some(Kind::Delay), _) => v.is(i + 1, Kind::Str),
        (Some(Kind::Kw), Kw::Set) => !bare_start && v.is(i + 1, Kind::Var),
        // `; IF(1=1) ...`, `; SLEEP(5)`: a function call as a statement.
        (Some(Kind::Func), _) => {
            let c = call(v, i, true);
            !bare_start && (c.sure || (c.sql && v.word_in(i, &["IF"])))
        }
        // `; BEGIN DBMS_LOCK.SLEEP(5); END`, `; CALL proc(...)`
        (Some(Kind::Stmt), Kw::Begin | Kw::Call) => {
            !bare_start && matches!(v.kind(i + 1), Some(Kind::Stmt | Kind::Func))
        }
        _ => false,
    }
}

/// `ORDER BY 3`, `GROUP BY 1,2,3` followed by the end of the value, a
/// comment, `;`, a logic operator, `)` or UNION (column-count probing).
fn order_probe(v: &V, mut i: usize, need_terminator: bool) -> bool {
    if !v.is(i, Kind::Num) {
        return false;
    }
    i += 1;
    while v.is(i, Kind::Comma) && v.is(i + 1, Kind::Num) {
        i += 2;
    }
    match v.kind(i) {
        Some(Kind::Comment | Kind::Semi) => true,
        None | Some(Kind::Logic | Kind::RParen | Kind::Union) => !need_terminator,
        _ => false,
    }
}

/// Continuation after the injection point `j` (after the closing string in a
/// quote context, after the leading operand in the bare context).  `prev`
/// is the leading operand (bare context), for the tautology check.
fn tail(v: &V, j: usize, prev: Option<Chain>) -> bool {
    let mut j = v.skip_closers(j);
    let quote = v.mode != Mode::Bare;
    let tight = v.mode == Mode::Tight;
    let start_num = prev.is_some_and(|c| c.first == Opd::Lit && v.is(c.tok, Kind::Num));
    let mut prev = prev;
    let mut taut = false;
    // Binary operators continuing the expression: `' + SLEEP(5) + '`,
    // `1=user_name()`, `1 RLIKE (SELECT ...)`, `' = 1 OR ...`.
    while v.is(j, Kind::Op)
        && matches!(
            v.kw(j),
            Kw::Cmp | Kw::Arith | Kw::Like | Kw::In | Kw::Is | Kw::Assign
        )
    {
        let Some(d) = chain(v, j + 1) else {
            break;
        };
        if d.sure || (tight && d.fcall) {
            return true;
        }
        // `(7819=7819)*4548`, `1=1--`: the same literal compared with
        // itself is a tautology nobody writes except to probe.
        if v.kw(j) == Kw::Cmp {
            if let Some(p) = prev {
                taut |= v.is(p.tok, Kind::Num)
                    && v.is(d.tok, Kind::Num)
                    && v.text(p.tok) == v.text(d.tok)
                    && (!d.single || v.is(d.end, Kind::Comment));
            }
        }
        prev = Some(d);
        j = v.skip_closers(d.end);
    }
    if taut {
        return true;
    }
    match (v.kind(j), v.kw(j)) {
        (Some(Kind::Logic), _) => pred(v, j + 1),
        (Some(Kind::Kw), Kw::Where) => pred(v, j + 1),
        (Some(Kind::Group), Kw::Having) => pred(v, j + 1),
        (Some(Kind::Group), _) => {
            ((tight || start_num) && order_probe(v, j + 1, false))
                || (quote && order_probe(v, j + 1, true))
                || group_having(v, j + 1)
        }
        (Some(Kind::Semi), _) => stmt(v, j + 1, false) || (tight && v.is(j + 1, Kind::Comment)),
        (Some(Kind::Union), _) => union_probe(v, j + 1),
        (Some(Kind::Delay), _) => v.is(j + 1, Kind::Str),
        (Some(Kind::Kw), Kw::IntoOutfile) => v.is(j + 1, Kind::Str),
        // `1,(CASE WHEN ...)`, `1' (SELECT ...)`: a sub-select / CASE
        // juxtaposed or appended as another column.
        (Some(Kind::Comma), _) => operand(v, j + 1).is_some_and(|d| d.sure),
        (Some(Kind::LParen), _) => operand(v, j).is_some_and(|d| d.sure),
        // T-SQL needs no `;` between statements: `' SELECT ... FROM ...`.
        (Some(Kind::Stmt), _) => tight && stmt(v, j, true),
        _ => false,
    }
}

/// `GROUP BY a, b HAVING <pred>` after the injection point.
fn group_having(v: &V, mut i: usize) -> bool {
    while v.is(i, Kind::Name) {
        i += 1;
        if !v.is(i, Kind::Comma) {
            break;
        }
        i += 1;
    }
    v.kw(i) == Kw::Having && pred(v, i + 1)
}

/// Operand position: a function call here is evaluated as an expression.
fn expr_position(v: &V, i: usize) -> bool {
    i == 0 || v.kind(i - 1).is_some_and(Kind::expects_operand)
}

fn anywhere(v: &V) -> Option<usize> {
    (0..v.t.len()).find(|&i| match (v.kind(i), v.kw(i)) {
        (Some(Kind::Func), Kw::Danger) => expr_position(v, i) && call(v, i, true).sure,
        (Some(Kind::Union), _) => union_select(v, i + 1),
        (Some(Kind::Semi), _) => stmt(v, i + 1, false),
        (Some(Kind::Delay), _) => v.is(i + 1, Kind::Str),
        (Some(Kind::Stmt), Kw::Declare) => v.is(i + 1, Kind::Var),
        (Some(Kind::Stmt), Kw::Exec) => exec_target(v, i + 1, false),
        (Some(Kind::Stmt), Kw::ExecImmediate) => v.is(i + 1, Kind::Str),
        (Some(Kind::Kw), Kw::IntoOutfile) => v.is(i + 1, Kind::Str),
        // LOAD DATA [LOCAL] INFILE '...'
        (Some(Kind::Name), Kw::Infile) => {
            v.is(i + 1, Kind::Str) && i > 0 && v.word_in(i - 1, &["DATA", "LOCAL"])
        }
        // `SELECT @@version` anywhere: system variables are SQL-only.
        (Some(Kind::Stmt), Kw::Select) => {
            v.is(i + 1, Kind::Var) && v.text(i + 1).starts_with(b"@@")
        }
        (Some(Kind::LParen), _) => {
            expr_position(v, i) && v.kw(i + 1) == Kw::Select && subselect(v, i + 2)
        }
        _ => false,
    })
}

/// `(SELECT ...` in expression position, anywhere: the list must be strong
/// and not a bare number followed by prose ("(select 3 or more)").
fn subselect(v: &V, i: usize) -> bool {
    let (class, first) = list_class(v, i);
    if class != List::Strong {
        return false;
    }
    match v.kind(first) {
        Some(Kind::Num) => {
            matches!(
                v.kind(first + 1),
                None | Some(Kind::RParen | Kind::Comma | Kind::Union | Kind::Comment)
            ) || matches!(v.kw(first + 1), Kw::From | Kw::Where)
        }
        _ => true,
    }
}

fn fingerprint_is(v: &V, fp: &str) -> bool {
    v.t.len() == fp.len()
        && v.t
            .iter()
            .zip(fp.chars())
            .all(|(t, c)| t.kind.letter() == c)
}

/// `admin'--`, `1'#`, `x')/*`: the value closes the string (and maybe
/// parentheses) and comments out the rest of the query.  To keep prose away
/// the string part must be a single short word and the comment must be one
/// MySQL would accept and must not contain the quote again (`'--'` is data).
fn string_then_comment(v: &V, j: usize, q: u8) -> bool {
    let Some(c) = v.t.get(j) else {
        return false;
    };
    let ctext = v.src.get(c.start..c.end).unwrap_or(&[]);
    v.mode == Mode::Tight && c.flag && !ctext.contains(&q)
}

/// Short, no whitespace: what precedes an injected quote in real payloads
/// (`admin`, `1`, `-2931`, `x`, empty), unlike prose before a quoted word.
fn word_like(b: &[u8]) -> bool {
    b.len() <= 32 && !b.iter().any(|&c| super::tokenize::is_ws(c) || c == 0xa0)
}

/// The last token is a string whose content is word-like.
fn last_str_tight(v: &V) -> bool {
    match v.t.last() {
        Some(t) if t.kind == Kind::Str => word_like(v.src.get(t.start + 1..t.end).unwrap_or(&[])),
        _ => false,
    }
}

fn quoted(v: &V, q: u8) -> bool {
    let Some(first) = v.t.first() else {
        return false;
    };
    if first.kind != Kind::Str || !first.flag {
        return false;
    }
    let mut j = 1;
    while v.closer(j) {
        j += 1;
    }
    if v.is(j, Kind::Comment) && string_then_comment(v, j, q) {
        return true;
    }
    if v.mode == Mode::Tight
        && v.src.len() <= SHORT
        && last_str_tight(v)
        && QUOTE_EXACT.iter().any(|fp| fingerprint_is(v, fp))
    {
        return true;
    }
    tail(v, 1, None)
}

fn bare(v: &V) -> bool {
    match (v.kind(0), v.kw(0)) {
        (None, _) => false,
        // `OR 1=1--`, `AND SLEEP(5)`, `OR x=y`: the value starts with the
        // logic operator, so any comparison after it is SQL.
        (Some(Kind::Logic), _) => pred(v, 1),
        (Some(Kind::Union), _) => union_probe(v, 1),
        (Some(Kind::Semi), _) => stmt(v, 1, false),
        (Some(Kind::Group), Kw::Having) => pred(v, 1),
        (Some(Kind::Kw), Kw::Where) => pred(v, 1),
        // `ORDER BY 5--`, `ORDER BY 3` (column-count probe),
        // `GROUP BY x HAVING 1=1`
        (Some(Kind::Group), _) => order_probe(v, 1, false) || group_having(v, 1),
        (Some(Kind::Stmt), _) | (Some(Kind::Delay), _) => stmt(v, 0, true),
        // `) OR 1=1--`, `)) UNION SELECT ...`, `AS x WHERE 1=1`; a leading
        // byte that is no SQL at all (control character, `?`, `{`) is
        // skipped the same way.
        (Some(Kind::RParen), _) | (Some(Kind::Kw), Kw::As) => tail(v, 0, None),
        (Some(Kind::Other), _) => {
            let mut j = 0;
            while v.is(j, Kind::Other) {
                j += 1;
            }
            match v.kind(j) {
                Some(Kind::Logic) => pred(v, j + 1),
                _ => tail(v, j, None),
            }
        }
        _ => match chain(v, 0) {
            Some(c) => c.sure || tail(v, c.end, Some(c)),
            None => false,
        },
    }
}

/// Runs every rule on the folded stream `t` of `src`.  `quote` is the
/// context's quote byte (`None` for the bare context).
pub(super) fn check(t: &[Tok], src: &[u8], quote: Option<u8>) -> Option<Hit> {
    let mode = match (quote, t.first()) {
        (None, _) => Mode::Bare,
        (Some(_), Some(s))
            if word_like(src.get(s.start..s.end.saturating_sub(1)).unwrap_or(&[])) =>
        {
            Mode::Tight
        }
        (Some(_), _) => Mode::Quote,
    };
    let v = V { t, src, mode };
    let anchored = match quote {
        Some(q) => quoted(&v, q),
        None => bare(&v),
    };
    if anchored {
        return Some(Hit { start: 0 });
    }
    anywhere(&v).map(|start| Hit { start })
}
