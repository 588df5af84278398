//! Byte-level SQL tokenizer.
//!
//! The tokenizer never fails and never panics: every input byte is either
//! skipped as SQL whitespace or ends up inside exactly one token.  It works on
//! raw bytes (values may be non-UTF-8); bytes >= 0x80 are treated as identifier
//! characters (MySQL accepts them in unquoted identifiers), except a stand-alone
//! 0xA0 (Latin-1 NBSP) and the UTF-8 NBSP `C2 A0`, which are whitespace.
//!
//! The dialect is a permissive union of MySQL, MSSQL, PostgreSQL, Oracle and
//! SQLite: `#` and `--` comments, `/* */` comments, MySQL `/*! ... */`
//! executable comments (their content is tokenized as code), backslash and
//! doubled-quote escapes inside strings, `N'..'`/`X'..'`/`B'..'` prefixed
//! strings, backtick identifiers and `@var` / `@@sysvar` variables.

/// Token class. [`Kind::letter`] gives the fingerprint alphabet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kind {
    /// String literal (`'..'`, `".."`, `N'..'`, `X'..'`).
    Str,
    /// Number (decimal, float, scientific, `0x..`, `0b..`) and TRUE/FALSE/NULL.
    Num,
    /// Bareword / identifier that is not a keyword (also backtick identifiers).
    Name,
    /// `@var` or `@@sysvar`.
    Var,
    /// Known SQL function name directly followed by `(` (set during folding).
    Func,
    /// Other SQL keyword (FROM, WHERE, INTO, CASE, ...).
    Kw,
    /// Statement-starting keyword (SELECT, INSERT, DROP, EXEC, DECLARE, ...).
    Stmt,
    /// Set operator: `UNION [ALL|DISTINCT]`, INTERSECT, EXCEPT, MINUS.
    Union,
    /// ORDER BY, GROUP BY, HAVING.
    Group,
    /// Logic operator: AND, OR, XOR, `&&`, `||`.
    Logic,
    /// Other operator (comparison, arithmetic, LIKE, IN, IS, BETWEEN, `:=`).
    Op,
    /// T-SQL `WAITFOR DELAY` / `WAITFOR TIME`.
    Delay,
    /// `(`
    LParen,
    /// `)`
    RParen,
    /// `,`
    Comma,
    /// `;`
    Semi,
    /// Comment (`--`, `#`, `/* */`).
    Comment,
    /// Anything else (`[`, `{`, `\`, lone `@`, `:` ...).
    Other,
}

impl Kind {
    /// Whatever follows a token of this kind stands where an operand is
    /// expected: an operator there is unary, a function call is evaluated.
    pub(super) fn expects_operand(self) -> bool {
        matches!(
            self,
            Kind::Op
                | Kind::Logic
                | Kind::LParen
                | Kind::Comma
                | Kind::Semi
                | Kind::Stmt
                | Kind::Union
                | Kind::Group
                | Kind::Kw
                | Kind::Delay
        )
    }

    /// Fingerprint letter of this class.
    pub(super) fn letter(self) -> char {
        match self {
            Kind::Str => 's',
            Kind::Num => '1',
            Kind::Name => 'n',
            Kind::Var => 'v',
            Kind::Func => 'f',
            Kind::Kw => 'k',
            Kind::Stmt => 'E',
            Kind::Union => 'U',
            Kind::Group => 'B',
            Kind::Logic => '&',
            Kind::Op => 'o',
            Kind::Delay => 'T',
            Kind::LParen => '(',
            Kind::RParen => ')',
            Kind::Comma => ',',
            Kind::Semi => ';',
            Kind::Comment => 'c',
            Kind::Other => '?',
        }
    }
}

/// Finer identity of a token, where the rules need it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kw {
    /// Nothing more specific.
    None,
    // statements
    Select,
    Insert,
    Update,
    Delete,
    /// DROP, CREATE, ALTER, TRUNCATE, RENAME.
    Ddl,
    /// EXEC, EXECUTE.
    Exec,
    /// EXECUTE IMMEDIATE (merged by folding).
    ExecImmediate,
    Declare,
    Shutdown,
    /// GRANT, REVOKE.
    Grant,
    // clause keywords
    From,
    Where,
    Into,
    /// INTO OUTFILE / INTO DUMPFILE (merged by folding).
    IntoOutfile,
    Outfile,
    Set,
    Case,
    When,
    Then,
    Distinct,
    All,
    Top,
    With,
    /// ORDER / GROUP (become `Group` when followed by BY).
    Order,
    By,
    Having,
    Waitfor,
    Delay,
    Immediate,
    Not,
    Sounds,
    // operators
    /// `=`, `<`, `>`, `<=`, `>=`, `<>`, `!=`, `<=>`, `==`, `!<`, `!>`.
    Cmp,
    /// `+ - * / % ^ | & ~ ! << >>`, DIV, MOD.
    Arith,
    /// `:=`
    Assign,
    /// LIKE, RLIKE, REGEXP, ILIKE, SOUNDS LIKE (and NOT variants).
    Like,
    In,
    Is,
    Between,
    // functions
    /// Ordinary SQL function.
    Func,
    /// Function that is practically only used by injections (time delays,
    /// error-based extraction, file access, privilege probes).
    Danger,
    /// `sp_*` / `xp_*` stored procedure name.
    Proc,
    // more keywords
    As,
    /// BEGIN (PL/SQL, T-SQL block).
    Begin,
    /// CALL (stored procedure invocation).
    Call,
    /// INFILE (LOAD DATA INFILE).
    Infile,
    /// A stray closing delimiter of some outer construct the value was
    /// injected into: an unbalanced backtick, `*/` outside a comment, `]`,
    /// PostgreSQL `$$`.  It can only be valid SQL if it closes something of
    /// the original query, which is what an injection does.
    Closer,
}

/// One token: class, identity and byte span in the value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Tok {
    /// Class.
    pub(super) kind: Kind,
    /// Identity.
    pub(super) kw: Kw,
    /// First byte (inclusive).
    pub(super) start: usize,
    /// Last byte (exclusive).
    pub(super) end: usize,
    /// Str: the closing quote was found.  Comment: valid in MySQL too
    /// (`--` followed by whitespace or end, `#`, `/* */`).
    pub(super) flag: bool,
}

impl Tok {
    fn new(kind: Kind, kw: Kw, start: usize, end: usize) -> Tok {
        Tok {
            kind,
            kw,
            start,
            end,
            flag: false,
        }
    }
}

/// SQL whitespace (MySQL/MSSQL accept all of these between tokens).
pub(super) fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c | 0)
}

fn is_word_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_' || b == b'$' || b >= 0x80
}

fn is_word_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'$' | b'.' | b'@') || b >= 0x80
}

/// Word character at `i`, with the two NBSP forms (UTF-8 `C2 A0`, and a
/// stand-alone Latin-1 `A0` after an ASCII byte) counting as whitespace.
fn word_char_at(src: &[u8], i: usize) -> bool {
    match src.get(i) {
        None => false,
        Some(0xc2) => src.get(i + 1) != Some(&0xa0),
        Some(0xa0) => !(i == 0 || src.get(i - 1).is_some_and(|&p| p < 0x80)),
        Some(&b) => is_word_char(b),
    }
}

/// Scans string content starting at `i` (just after the opening quote).
/// Returns (end exclusive, closed).  `backslash`: `\` escapes the next byte
/// (MySQL); doubled quotes are escapes in every dialect.
fn scan_string(src: &[u8], mut i: usize, q: u8, backslash: bool) -> (usize, bool) {
    loop {
        match src.get(i) {
            None => return (src.len(), false),
            Some(b'\\') if backslash => i += 2,
            Some(&c) if c == q => {
                if src.get(i + 1) == Some(&q) {
                    i += 2;
                } else {
                    return (i + 1, true);
                }
            }
            Some(_) => i += 1,
        }
    }
}

fn find(src: &[u8], from: usize, pat: &[u8]) -> Option<usize> {
    src.get(from..)
        .and_then(|s| s.windows(pat.len()).position(|w| w == pat))
        .map(|p| p + from)
}

/// Tokenizes `src` into `out`.  With `open = Some(q)` the value is assumed
/// to start inside a string quoted with `q` (quote-context injection), so the
/// first token is the rest of that string up to its closing quote.
pub(super) fn tokenize(src: &[u8], open: Option<u8>, out: &mut Vec<Tok>) {
    let n = src.len();
    let mut pos = 0;
    if let Some(q) = open {
        // The string the application built around the value: whether a
        // backslash escapes its closing quote depends on the database (only
        // MySQL does by default), so the closing quote is taken literally.
        let (end, closed) = scan_string(src, 0, q, false);
        let mut t = Tok::new(Kind::Str, Kw::None, 0, end);
        t.flag = closed;
        out.push(t);
        pos = end;
    }
    let mut in_exec = false;
    while let Some(&b) = src.get(pos) {
        let next = src.get(pos + 1).copied();
        if is_ws(b) {
            pos += 1;
            continue;
        }
        if b == 0xa0 && (pos == 0 || src.get(pos - 1).is_some_and(|&p| p < 0x80)) {
            pos += 1;
            continue;
        }
        if b == 0xc2 && next == Some(0xa0) {
            pos += 2;
            continue;
        }
        let start = pos;
        let op = |kw: Kw, len: usize| Tok::new(Kind::Op, kw, start, start + len);
        let tok = match b {
            b'\'' | b'"' => {
                let (end, closed) = scan_string(src, pos + 1, b, true);
                let mut t = Tok::new(Kind::Str, Kw::None, start, end);
                t.flag = closed;
                t
            }
            b'`' => match find(src, pos + 1, b"`") {
                Some(p) => Tok::new(Kind::Name, Kw::None, start, p + 1),
                None => Tok::new(Kind::Other, Kw::Closer, start, start + 1),
            },
            b']' => Tok::new(Kind::Other, Kw::Closer, start, start + 1),
            b'$' if next == Some(b'$') => Tok::new(Kind::Other, Kw::Closer, start, start + 2),
            b'*' if !in_exec && next == Some(b'/') => {
                Tok::new(Kind::Other, Kw::Closer, start, start + 2)
            }
            b'0'..=b'9' => number(src, pos),
            b'.' if next.is_some_and(|c| c.is_ascii_digit()) => number(src, pos),
            b'@' => variable(src, pos),
            b'-' if next == Some(b'-') => {
                let end = find(src, pos, b"\n").unwrap_or(n);
                let mut t = Tok::new(Kind::Comment, Kw::None, start, end);
                t.flag = src.get(pos + 2).is_none_or(|&c| is_ws(c));
                t
            }
            b'#' => {
                let end = find(src, pos, b"\n").unwrap_or(n);
                let mut t = Tok::new(Kind::Comment, Kw::None, start, end);
                t.flag = true;
                t
            }
            b'/' if next == Some(b'*') => {
                if src.get(pos + 2) == Some(&b'!') {
                    // MySQL executable comment: skip `/*!` and an optional
                    // version number, then tokenize the content as code.
                    in_exec = true;
                    pos += 3;
                    let mut d = 0;
                    while d < 6 && src.get(pos).is_some_and(|c| c.is_ascii_digit()) {
                        pos += 1;
                        d += 1;
                    }
                    continue;
                }
                // An unterminated `/*` comments out the rest of the query just
                // the same (`admin'/*`), so the flag is set either way.
                let end = find(src, pos + 2, b"*/").map_or(n, |p| p + 2);
                let mut t = Tok::new(Kind::Comment, Kw::None, start, end);
                t.flag = true;
                t
            }
            b'*' if in_exec && next == Some(b'/') => {
                in_exec = false;
                pos += 2;
                continue;
            }
            b'(' => Tok::new(Kind::LParen, Kw::None, start, start + 1),
            b')' => Tok::new(Kind::RParen, Kw::None, start, start + 1),
            b',' => Tok::new(Kind::Comma, Kw::None, start, start + 1),
            b';' => Tok::new(Kind::Semi, Kw::None, start, start + 1),
            b'=' => op(Kw::Cmp, if next == Some(b'=') { 2 } else { 1 }),
            b'<' => match (next, src.get(pos + 2)) {
                (Some(b'='), Some(b'>')) => op(Kw::Cmp, 3),
                (Some(b'=' | b'>'), _) => op(Kw::Cmp, 2),
                (Some(b'<'), _) => op(Kw::Arith, 2),
                _ => op(Kw::Cmp, 1),
            },
            b'>' => match next {
                Some(b'=') => op(Kw::Cmp, 2),
                Some(b'>') => op(Kw::Arith, 2),
                _ => op(Kw::Cmp, 1),
            },
            b'!' => match next {
                Some(b'=' | b'<' | b'>') => op(Kw::Cmp, 2),
                _ => op(Kw::Arith, 1),
            },
            b'|' if next == Some(b'|') => Tok::new(Kind::Logic, Kw::None, start, start + 2),
            b'&' if next == Some(b'&') => Tok::new(Kind::Logic, Kw::None, start, start + 2),
            b':' if next == Some(b'=') => op(Kw::Assign, 2),
            b'+' | b'-' | b'*' | b'/' | b'%' | b'^' | b'~' | b'|' | b'&' => op(Kw::Arith, 1),
            _ if is_word_start(b) => word(src, pos),
            _ => Tok::new(Kind::Other, Kw::None, start, start + 1),
        };
        // Every branch consumes at least one byte.
        pos = tok.end.max(pos + 1);
        out.push(tok);
    }
}

fn variable(src: &[u8], start: usize) -> Tok {
    let mut p = start + 1;
    if src.get(p) == Some(&b'@') {
        p += 1;
    }
    match src.get(p) {
        Some(&q @ (b'\'' | b'"' | b'`')) => {
            let (end, _) = scan_string(src, p + 1, q, true);
            return Tok::new(Kind::Var, Kw::None, start, end);
        }
        _ => {
            while word_char_at(src, p) {
                p += 1;
            }
        }
    }
    if p == start + 1 {
        Tok::new(Kind::Other, Kw::None, start, p)
    } else {
        Tok::new(Kind::Var, Kw::None, start, p)
    }
}

fn number(src: &[u8], start: usize) -> Tok {
    let at = |i: usize| src.get(i).copied();
    let mut p = start;
    let radix = match (at(start), at(start + 1), at(start + 2)) {
        (Some(b'0'), Some(b'x' | b'X'), Some(c)) if c.is_ascii_hexdigit() => 16,
        (Some(b'0'), Some(b'b' | b'B'), Some(b'0' | b'1')) => 2,
        _ => 10,
    };
    if radix == 10 {
        while at(p).is_some_and(|c| c.is_ascii_digit()) {
            p += 1;
        }
        if at(p) == Some(b'.') {
            p += 1;
            while at(p).is_some_and(|c| c.is_ascii_digit()) {
                p += 1;
            }
        }
        if matches!(at(p), Some(b'e' | b'E')) {
            let q = if matches!(at(p + 1), Some(b'+' | b'-')) {
                p + 2
            } else {
                p + 1
            };
            if at(q).is_some_and(|c| c.is_ascii_digit()) {
                p = q;
                while at(p).is_some_and(|c| c.is_ascii_digit()) {
                    p += 1;
                }
            }
        }
    } else {
        p += 2;
        while at(p).is_some_and(|c| c.is_ascii_hexdigit()) {
            p += 1;
        }
    }
    if word_char_at(src, p) && src.get(p) != Some(&b'$') {
        // Digits glued to letters: `1st`, `90s`, `5px` are identifiers, but
        // `1and`, `1union`, `0or` (a classic filter-evasion trick accepted by
        // MySQL) split into number + keyword.
        let mut q = p;
        while word_char_at(src, q) {
            q += 1;
        }
        let suffix = src.get(p..q).unwrap_or(&[]);
        let splits = lookup(suffix).is_some_and(|(k, kw)| {
            matches!(k, Kind::Logic | Kind::Union | Kind::Stmt | Kind::Group)
                || matches!(kw, Kw::Order | Kw::From | Kw::Where | Kw::Like)
        });
        if !splits {
            return Tok::new(Kind::Name, Kw::None, start, q);
        }
    }
    Tok::new(Kind::Num, Kw::None, start, p)
}

fn word(src: &[u8], start: usize) -> Tok {
    let mut p = start;
    while word_char_at(src, p) {
        p += 1;
    }
    let w = src.get(start..p).unwrap_or(&[]);
    // String prefixes: N'..', X'..', B'..', E'..', _charset'..'.
    if src.get(p) == Some(&b'\'')
        && ((w.len() == 1 && matches!(w.first(), Some(b'n' | b'N' | b'x' | b'X' | b'b' | b'B')))
            || (w.len() > 1 && w.first() == Some(&b'_')))
    {
        let (end, closed) = scan_string(src, p + 1, b'\'', true);
        let mut t = Tok::new(Kind::Str, Kw::None, start, end);
        t.flag = closed;
        return t;
    }
    match lookup(w) {
        Some((kind, kw)) => Tok::new(kind, kw, start, p),
        None if is_proc(w) => Tok::new(Kind::Name, Kw::Proc, start, p),
        None => Tok::new(Kind::Name, Kw::None, start, p),
    }
}

/// `xp_cmdshell`, `master..xp_cmdshell`, `sp_executesql`, `master.dbo.sp_addlogin`.
fn is_proc(w: &[u8]) -> bool {
    let last = w.rsplit(|&c| c == b'.').next().unwrap_or(w);
    last.len() > 3
        && (last
            .get(..3)
            .is_some_and(|p| p.eq_ignore_ascii_case(b"xp_"))
            || last
                .get(..3)
                .is_some_and(|p| p.eq_ignore_ascii_case(b"sp_")))
}

/// Case-insensitive keyword lookup.
pub(super) fn lookup(w: &[u8]) -> Option<(Kind, Kw)> {
    let mut buf = [0u8; 40];
    let up = buf.get_mut(..w.len())?;
    for (d, s) in up.iter_mut().zip(w) {
        *d = s.to_ascii_uppercase();
    }
    keyword(up)
}

/// The keyword table (upper case).  A `match` on byte strings compiles to a
/// length switch plus comparisons, which is as fast as a sorted table.
fn keyword(w: &[u8]) -> Option<(Kind, Kw)> {
    use Kind as K;
    Some(match w {
        b"AND" | b"OR" | b"XOR" => (K::Logic, Kw::None),
        b"NOT" => (K::Op, Kw::Not),
        b"LIKE" | b"RLIKE" | b"REGEXP" | b"ILIKE" => (K::Op, Kw::Like),
        b"IN" => (K::Op, Kw::In),
        b"IS" => (K::Op, Kw::Is),
        b"BETWEEN" => (K::Op, Kw::Between),
        b"DIV" => (K::Op, Kw::Arith),
        b"SOUNDS" => (K::Name, Kw::Sounds),
        b"SELECT" => (K::Stmt, Kw::Select),
        b"INSERT" => (K::Stmt, Kw::Insert),
        b"UPDATE" => (K::Stmt, Kw::Update),
        b"DELETE" => (K::Stmt, Kw::Delete),
        b"DROP" | b"CREATE" | b"ALTER" | b"TRUNCATE" | b"RENAME" => (K::Stmt, Kw::Ddl),
        b"EXEC" | b"EXECUTE" => (K::Stmt, Kw::Exec),
        b"DECLARE" => (K::Stmt, Kw::Declare),
        b"SHUTDOWN" => (K::Stmt, Kw::Shutdown),
        b"GRANT" | b"REVOKE" => (K::Stmt, Kw::Grant),
        b"UNION" | b"INTERSECT" | b"EXCEPT" | b"MINUS" => (K::Union, Kw::None),
        b"HAVING" => (K::Group, Kw::Having),
        b"ORDER" | b"GROUP" => (K::Name, Kw::Order),
        b"BY" => (K::Kw, Kw::By),
        b"WAITFOR" => (K::Name, Kw::Waitfor),
        b"DELAY" => (K::Name, Kw::Delay),
        b"IMMEDIATE" => (K::Name, Kw::Immediate),
        b"OUTFILE" | b"DUMPFILE" => (K::Name, Kw::Outfile),
        b"FROM" => (K::Kw, Kw::From),
        b"WHERE" => (K::Kw, Kw::Where),
        b"INTO" => (K::Kw, Kw::Into),
        b"SET" => (K::Kw, Kw::Set),
        b"CASE" => (K::Kw, Kw::Case),
        b"WHEN" => (K::Kw, Kw::When),
        b"THEN" => (K::Kw, Kw::Then),
        b"DISTINCT" => (K::Kw, Kw::Distinct),
        b"ALL" => (K::Kw, Kw::All),
        b"TOP" => (K::Kw, Kw::Top),
        b"WITH" => (K::Kw, Kw::With),
        b"AS" => (K::Kw, Kw::As),
        b"BEGIN" => (K::Stmt, Kw::Begin),
        b"CALL" => (K::Stmt, Kw::Call),
        b"INFILE" => (K::Name, Kw::Infile),
        b"ATTACH" => (K::Stmt, Kw::Ddl),
        b"ELSE" | b"END" | b"ON" | b"JOIN" | b"TABLE" | b"VALUES" | b"LIMIT" | b"OFFSET"
        | b"ASC" | b"DESC" | b"PROCEDURE" | b"COLLATE" | b"ESCAPE" => (K::Kw, Kw::None),
        b"NULL" | b"TRUE" | b"FALSE" => (K::Num, Kw::None),
        // Functions used almost exclusively by injections: time-based blind
        // (SLEEP, BENCHMARK, PG_SLEEP, DBMS_LOCK.SLEEP, DBMS_PIPE, RANDOMBLOB),
        // error-based extraction (EXTRACTVALUE, UPDATEXML, GTID_SUBSET,
        // NAME_CONST, XMLTYPE), conditional blind helpers (ELT, MAKE_SET, IIF),
        // privilege / identity probes (USER_NAME, DB_NAME, ...), file and OS
        // access (LOAD_FILE, PG_READ_FILE, LO_IMPORT, SYS_EVAL), out-of-band
        // (UTL_INADDR, UTL_HTTP, DBMS_LDAP) and mass extraction (GROUP_CONCAT).
        b"SLEEP"
        | b"BENCHMARK"
        | b"PG_SLEEP"
        | b"PG_SLEEP_FOR"
        | b"EXTRACTVALUE"
        | b"UPDATEXML"
        | b"LOAD_FILE"
        | b"USER_NAME"
        | b"DB_NAME"
        | b"SUSER_NAME"
        | b"SUSER_SNAME"
        | b"IS_SRVROLEMEMBER"
        | b"IS_MEMBER"
        | b"HOST_NAME"
        | b"ELT"
        | b"MAKE_SET"
        | b"IIF"
        | b"GTID_SUBSET"
        | b"GTID_SUBTRACT"
        | b"NAME_CONST"
        | b"RANDOMBLOB"
        | b"PG_READ_FILE"
        | b"PG_LS_DIR"
        | b"LO_IMPORT"
        | b"SYS_EVAL"
        | b"SYS_EXEC"
        | b"DBMS_PIPE.RECEIVE_MESSAGE"
        | b"DBMS_LOCK.SLEEP"
        | b"DBMS_SESSION.SLEEP"
        | b"USER_LOCK.SLEEP"
        | b"UTL_INADDR.GET_HOST_NAME"
        | b"UTL_INADDR.GET_HOST_ADDRESS"
        | b"UTL_HTTP.REQUEST"
        | b"DBMS_LDAP.INIT"
        | b"CTXSYS.DRITHSX.SN"
        | b"DBMS_XMLGEN.GETXML"
        | b"XMLTYPE"
        | b"GROUP_CONCAT"
        | b"SYS.FN_SQLVARBASETOSTR"
        | b"OPENROWSET"
        | b"OPENQUERY"
        | b"DBMS_UTILITY.SQLID_TO_SQLHASH"
        | b"SYS_CONTEXT"
        | b"CURRENT_DATABASE"
        | b"PG_CLIENT_ENCODING"
        | b"SQLITE_VERSION"
        | b"JSON_KEYS" => (K::Func, Kw::Danger),
        b"IF"
        | b"IFNULL"
        | b"NULLIF"
        | b"ISNULL"
        | b"COALESCE"
        | b"NVL"
        | b"DECODE"
        | b"CHAR"
        | b"CHR"
        | b"NCHAR"
        | b"ASCII"
        | b"ORD"
        | b"UNICODE"
        | b"SUBSTRING"
        | b"SUBSTR"
        | b"MID"
        | b"LEFT"
        | b"RIGHT"
        | b"LENGTH"
        | b"LEN"
        | b"DATALENGTH"
        | b"CONCAT"
        | b"CONCAT_WS"
        | b"CONVERT"
        | b"CAST"
        | b"HEX"
        | b"UNHEX"
        | b"BIN"
        | b"MD5"
        | b"SHA1"
        | b"SHA2"
        | b"VERSION"
        | b"DATABASE"
        | b"SCHEMA"
        | b"USER"
        | b"CURRENT_USER"
        | b"SYSTEM_USER"
        | b"SESSION_USER"
        | b"COUNT"
        | b"SUM"
        | b"MAX"
        | b"MIN"
        | b"AVG"
        | b"FLOOR"
        | b"CEIL"
        | b"RAND"
        | b"RANDOM"
        | b"ROUND"
        | b"ABS"
        | b"LOWER"
        | b"UPPER"
        | b"LCASE"
        | b"UCASE"
        | b"REPLACE"
        | b"REVERSE"
        | b"TRIM"
        | b"LTRIM"
        | b"RTRIM"
        | b"INSTR"
        | b"LOCATE"
        | b"POSITION"
        | b"STRCMP"
        | b"CHARINDEX"
        | b"NOW"
        | b"SYSDATE"
        | b"GETDATE"
        | b"TO_CHAR"
        | b"TO_NUMBER"
        | b"EXP"
        | b"POW"
        | b"POWER"
        | b"EXISTS"
        | b"JSON_EXTRACT"
        | b"CONV"
        | b"SPACE"
        | b"REPEAT"
        | b"LPAD"
        | b"RPAD"
        | b"FIELD"
        | b"FIND_IN_SET"
        | b"UUID"
        | b"CRC32"
        | b"MOD"
        | b"ROW"
        | b"OBJECT_ID"
        | b"OBJECT_NAME"
        | b"COL_NAME"
        | b"HAS_DBACCESS"
        | b"QUOTENAME"
        | b"STUFF"
        | b"UTL_RAW.CAST_TO_VARCHAR2"
        | b"REGEXP_SUBSTR"
        | b"REGEXP_SUBSTRING"
        | b"CRYPT_KEY"
        | b"REGEXP_LIKE"
        | b"STRING_AGG"
        | b"LISTAGG"
        | b"ARRAY_AGG"
        | b"TYPEOF"
        | b"SQLITE_MASTER"
        | b"SUBSTRING_INDEX"
        | b"ATAN"
        | b"SIN"
        | b"COS"
        | b"SQRT"
        | b"LOG"
        | b"LN"
        | b"GREATEST"
        | b"LEAST"
        | b"BIT_LENGTH"
        | b"CHAR_LENGTH"
        | b"CHARACTER_LENGTH"
        | b"OCTET_LENGTH"
        | b"SOUNDEX"
        | b"QUOTE"
        | b"INET_ATON"
        | b"EXPORT_SET"
        | b"FORMAT"
        | b"TO_BASE64"
        | b"FROM_BASE64"
        | b"COMPRESS"
        | b"UNCOMPRESS"
        | b"ENCODE"
        | b"DES_ENCRYPT"
        | b"AES_ENCRYPT"
        | b"PASSWORD"
        | b"CHECKSUM"
        | b"BINARY_CHECKSUM"
        | b"NEWID"
        | b"ROWNUM"
        | b"ROW_NUMBER"
        | b"TO_DATE"
        | b"TRY_CONVERT"
        | b"TRY_CAST" => (K::Func, Kw::Func),
        _ => return None,
    })
}
