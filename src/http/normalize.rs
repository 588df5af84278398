//! Streaming normalization of request buffers for signature matching.
//!
//! Attackers encode SQL injection to slip past literal matching; servers
//! decode it again before it reaches the database. So signatures match a
//! normalized copy of each buffer: percent-decoded (twice, for `%2527`),
//! `+` as space in query and form data, JSON `\uXXXX` escapes undone, ASCII
//! case-folded, SQL block comments removed (`UNION/**/SELECT` → `union
//! select`; MySQL `/*!50000UNION*/` keeps its content), short line comments
//! removed (`UNION--x\nSELECT`) and whitespace runs collapsed to one space.
//!
//! [`Normalizer`] is a streaming transducer: it takes a body in whatever
//! pieces TCP delivers and produces exactly the bytes it would produce for
//! the whole body at once (a unit test checks every split point), holding
//! only a few bytes of state between pieces. So a body of any size is
//! normalized once, byte by byte, without being buffered.

/// How to normalize a buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Norm {
    /// `+` means space (query strings, form bodies).
    pub plus_is_space: bool,
    /// Undo JSON `\uXXXX` and `\"`-style escapes.
    pub json: bool,
}

impl Norm {
    /// Query strings and form bodies.
    pub const FORM: Norm = Norm {
        plus_is_space: true,
        json: false,
    };
    /// Header lines and bodies of other types.
    pub const PLAIN: Norm = Norm {
        plus_is_space: false,
        json: false,
    };
    /// JSON bodies.
    pub const JSON: Norm = Norm {
        plus_is_space: false,
        json: true,
    };
}

/// Longest line comment (`-- x` or `# x`) removed: one whose newline comes
/// within this many bytes. A longer one, or one the buffer ends inside,
/// stays visible, so a `#` in a URL cannot hide the rest of it.
pub const LINE_COMMENT_WINDOW: usize = 64;

/// Normalizes `raw` in one go into `out` (cleared first).
pub fn normalize(raw: &[u8], how: Norm, out: &mut Vec<u8>, tmp: &mut Scratch) {
    out.clear();
    let mut n = Normalizer::new(how);
    n.push(raw, out, tmp);
    n.finish(out, tmp);
}

/// Decodes `raw` as a server would before using it — percent-decoding
/// (twice), `+` as space, JSON escapes as `how` says — without folding
/// case, comments or whitespace: what the structural SQL detector reads.
/// Appends to `out`.
pub fn decode(raw: &[u8], how: Norm, out: &mut Vec<u8>, s: &mut Scratch) {
    s.a.clear();
    percent_decode(raw, how.plus_is_space, &mut s.a, true);
    if how.json {
        s.b.clear();
        percent_decode(&s.a, false, &mut s.b, true);
        json_unescape(&s.b, out, true);
    } else {
        percent_decode(&s.a, false, out, true);
    }
}

/// Reusable intermediate buffers for [`Normalizer`] (one per shard: a
/// flow's state stays small).
#[derive(Debug, Default)]
pub struct Scratch {
    a: Vec<u8>,
    b: Vec<u8>,
    c: Vec<u8>,
}

/// The streaming normalizer's state between pieces of one buffer.
#[derive(Clone, Debug)]
pub struct Normalizer {
    json: bool,
    first: Percent,
    second: Percent,
    unescape: JsonUnescape,
    fold: Fold,
}

impl Normalizer {
    /// A normalizer at the start of a buffer.
    pub fn new(how: Norm) -> Normalizer {
        Normalizer {
            json: how.json,
            first: Percent::new(how.plus_is_space),
            second: Percent::new(false),
            unescape: JsonUnescape::default(),
            fold: Fold::default(),
        }
    }

    /// Normalizes the next piece, appending to `out`.
    pub fn push(&mut self, raw: &[u8], out: &mut Vec<u8>, s: &mut Scratch) {
        if !self.decodes_to_itself(raw) {
            return self.push_staged(raw, out, s);
        }
        // Most header lines and many bodies: the decoding stages would
        // copy the piece through unchanged ('+' aside), twice. Fold it
        // straight from the input instead.
        if self.first.plus_is_space && memchr::memchr(b'+', raw).is_some() {
            let mut d = std::mem::take(&mut s.c);
            d.clear();
            d.extend(raw.iter().map(|&b| if b == b'+' { b' ' } else { b }));
            self.fold.push(&d, out);
            s.c = d;
        } else {
            self.fold.push(raw, out);
        }
    }

    /// Whether the decoding stages would pass `raw` to the folder as it is
    /// (but for `+` as space): nothing is held back from the last piece and
    /// `raw` has no `%` (nor, for JSON, `\`) to start an escape. Percent-
    /// decoding then only turns `+` into a space, which starts no escape
    /// for the second round either.
    fn decodes_to_itself(&self, raw: &[u8]) -> bool {
        self.holds_nothing()
            && memchr::memchr(b'%', raw).is_none()
            && !(self.json && memchr::memchr(b'\\', raw).is_some())
    }

    /// No decoding stage holds back bytes (an escape cut by a piece end).
    fn holds_nothing(&self) -> bool {
        self.first.held.len == 0 && self.second.held.len == 0 && self.unescape.held.len == 0
    }

    /// [`Normalizer::push`] through every decoding stage: what the fast
    /// path must equal (a property test compares them).
    fn push_staged(&mut self, raw: &[u8], out: &mut Vec<u8>, s: &mut Scratch) {
        let mut d = std::mem::take(&mut s.c);
        d.clear();
        self.decode_push(raw, &mut d, s);
        self.fold.push(&d, out);
        s.c = d;
    }

    /// Ends the buffer: flushes held-back bytes (an incomplete escape is
    /// kept literally; a comment left open leaves its marker).
    pub fn finish(&mut self, out: &mut Vec<u8>, s: &mut Scratch) {
        // With nothing held back the decoding stages flush nothing.
        if !self.holds_nothing() {
            let mut d = std::mem::take(&mut s.c);
            d.clear();
            self.decode_finish(&mut d, s);
            self.fold.push(&d, out);
            s.c = d;
        }
        self.fold.finish(out);
    }

    /// The decoding stages alone (percent-decoding twice, JSON escapes):
    /// appends to `out` exactly the bytes [`Normalizer::push`] hands to the
    /// case/comment/whitespace folder. Folding only lowercases, turns
    /// whitespace and comments into one space and drops comment content,
    /// so a run of non-whitespace bytes in the normalized output is a
    /// substring (ASCII case aside) of these decoded bytes: the signature
    /// prefilter relies on that. Use one normalizer either for `push` or
    /// for `decode_push`, not both.
    pub fn decode_push(&mut self, raw: &[u8], out: &mut Vec<u8>, s: &mut Scratch) {
        s.a.clear();
        self.first.push(raw, &mut s.a);
        if self.json {
            s.b.clear();
            self.second.push(&s.a, &mut s.b);
            self.unescape.push(&s.b, out);
        } else {
            self.second.push(&s.a, out);
        }
    }

    /// Ends a buffer fed through [`Normalizer::decode_push`]: appends the
    /// decoded bytes held back (what [`Normalizer::finish`] would fold).
    pub fn decode_finish(&mut self, out: &mut Vec<u8>, s: &mut Scratch) {
        s.a.clear();
        self.first.finish(&mut s.a);
        if self.json {
            s.b.clear();
            self.second.push(&s.a, &mut s.b);
            self.second.finish(&mut s.b);
            self.unescape.push(&s.b, out);
            self.unescape.finish(out);
        } else {
            self.second.push(&s.a, out);
            self.second.finish(out);
        }
    }
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Up to 6 bytes held back between pieces (`%uXXXX`, `\uXXXX`).
#[derive(Clone, Copy, Debug, Default)]
struct Held {
    buf: [u8; 6],
    len: u8,
}

impl Held {
    fn bytes(&self) -> &[u8] {
        &self.buf[..self.len as usize]
    }

    fn set(&mut self, b: &[u8]) {
        let n = b.len().min(6);
        self.buf[..n].copy_from_slice(&b[..n]);
        self.len = n as u8;
    }
}

/// Runs `decode` over the held bytes joined with the new piece: the join is
/// copied only when something was held (an escape cut by a piece boundary).
/// `decode` returns how many bytes it consumed; the rest (an escape that may
/// still complete) is held for the next piece.
fn with_held(
    held: &mut Held,
    raw: &[u8],
    out: &mut Vec<u8>,
    decode: impl Fn(&[u8], &mut Vec<u8>, bool) -> usize,
) {
    if held.len == 0 {
        let used = decode(raw, out, false);
        held.set(&raw[used..]);
        return;
    }
    let mut joined = Vec::with_capacity(held.len as usize + raw.len());
    joined.extend_from_slice(held.bytes());
    joined.extend_from_slice(raw);
    let used = decode(&joined, out, false);
    held.set(&joined[used..]);
}

/// One round of percent-decoding (`%XX`, IIS `%uXXXX`, and `+` as space
/// when asked).
#[derive(Clone, Copy, Debug)]
struct Percent {
    plus_is_space: bool,
    held: Held,
}

impl Percent {
    fn new(plus_is_space: bool) -> Percent {
        Percent {
            plus_is_space,
            held: Held::default(),
        }
    }

    fn push(&mut self, raw: &[u8], out: &mut Vec<u8>) {
        let plus = self.plus_is_space;
        with_held(&mut self.held, raw, out, |d, o, end| {
            percent_decode(d, plus, o, end)
        });
    }

    fn finish(&mut self, out: &mut Vec<u8>) {
        let held = self.held;
        self.held = Held::default();
        percent_decode(held.bytes(), self.plus_is_space, out, true);
    }
}

/// Decodes `raw` into `out`; returns the bytes consumed. Unless `at_end`,
/// stops before a `%` whose escape could still complete with more bytes.
fn percent_decode(raw: &[u8], plus_is_space: bool, out: &mut Vec<u8>, at_end: bool) -> usize {
    out.reserve(raw.len());
    let mut i = 0;
    while i < raw.len() {
        // Copy the run up to the next byte that needs decoding in one go.
        let next = if plus_is_space {
            memchr::memchr2(b'%', b'+', &raw[i..])
        } else {
            memchr::memchr(b'%', &raw[i..])
        };
        let Some(k) = next else {
            out.extend_from_slice(&raw[i..]);
            return raw.len();
        };
        out.extend_from_slice(&raw[i..i + k]);
        i += k;
        if raw[i] == b'+' {
            out.push(b' ');
            i += 1;
            continue;
        }
        // %XX, and IIS-style %uXXXX.
        match escape_at(raw, i + 1) {
            Escape::Byte(b) => {
                out.push(b);
                i += 3;
            }
            Escape::Unicode(cp) => {
                push_codepoint(cp, out);
                i += 6;
            }
            Escape::Incomplete if !at_end => return i,
            Escape::Incomplete | Escape::Invalid => {
                out.push(b'%');
                i += 1;
            }
        }
    }
    raw.len()
}

enum Escape {
    Byte(u8),
    Unicode(u32),
    /// Could still become an escape with more bytes.
    Incomplete,
    Invalid,
}

/// What follows a `%` (or `\` for JSON's `u`) at `at`.
fn escape_at(raw: &[u8], at: usize) -> Escape {
    let rest = &raw[at.min(raw.len())..];
    match rest {
        [] => Escape::Incomplete,
        [b'u' | b'U', digits @ ..] => {
            let mut cp = 0u32;
            for k in 0..4 {
                match digits.get(k) {
                    None => return Escape::Incomplete,
                    Some(&c) => match hex(c) {
                        Some(h) => cp = cp << 4 | h as u32,
                        None => return percent_pair(rest),
                    },
                }
            }
            Escape::Unicode(cp)
        }
        _ => percent_pair(rest),
    }
}

fn percent_pair(rest: &[u8]) -> Escape {
    match (rest.first().map(|&c| hex(c)), rest.get(1).map(|&c| hex(c))) {
        (Some(Some(h)), Some(Some(l))) => Escape::Byte(h << 4 | l),
        (Some(Some(_)), None) | (None, _) => Escape::Incomplete,
        _ => Escape::Invalid,
    }
}

/// Fullwidth forms (U+FF01..FF5E) fold to ASCII: some stacks do the same.
fn push_codepoint(cp: u32, out: &mut Vec<u8>) {
    let cp = if (0xff01..=0xff5e).contains(&cp) {
        cp - 0xfee0
    } else {
        cp
    };
    match char::from_u32(cp) {
        Some(c) => {
            let mut b = [0u8; 4];
            out.extend_from_slice(c.encode_utf8(&mut b).as_bytes());
        }
        None => out.push(b'?'),
    }
}

/// JSON string escapes undone (`\uXXXX`, `\"`, `\\`, `\/`; `\n`-style
/// control escapes become a space).
#[derive(Clone, Copy, Debug, Default)]
struct JsonUnescape {
    held: Held,
}

impl JsonUnescape {
    fn push(&mut self, raw: &[u8], out: &mut Vec<u8>) {
        with_held(&mut self.held, raw, out, json_unescape);
    }

    fn finish(&mut self, out: &mut Vec<u8>) {
        let held = self.held;
        self.held = Held::default();
        json_unescape(held.bytes(), out, true);
    }
}

fn json_unescape(raw: &[u8], out: &mut Vec<u8>, at_end: bool) -> usize {
    let mut i = 0;
    while i < raw.len() {
        let Some(k) = memchr::memchr(b'\\', &raw[i..]) else {
            out.extend_from_slice(&raw[i..]);
            return raw.len();
        };
        out.extend_from_slice(&raw[i..i + k]);
        i += k;
        match raw.get(i + 1) {
            None if !at_end => return i,
            Some(b'u') => match escape_at(raw, i + 1) {
                Escape::Unicode(cp) => {
                    push_codepoint(cp, out);
                    i += 6;
                    continue;
                }
                Escape::Incomplete if !at_end && raw.len() - i < 6 => return i,
                _ => {}
            },
            Some(&c @ (b'"' | b'\\' | b'/')) => {
                out.push(c);
                i += 2;
                continue;
            }
            Some(b'n' | b't' | b'r' | b'f' | b'b') => {
                out.push(b' ');
                i += 2;
                continue;
            }
            _ => {}
        }
        out.push(b'\\');
        i += 1;
    }
    raw.len()
}

/// Bytes the folder must look at one by one: whitespace and control
/// characters, and the first bytes of comment syntax.
static SPECIAL: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = is_space(c) || c == b'/' || c == b'*' || c == b'-' || c == b'#';
        b += 1;
    }
    t
};

/// SQL and HTTP whitespace, control characters included.
const fn is_space(c: u8) -> bool {
    c.is_ascii_whitespace() || c == 0 || c == 0x0b
}

/// Where the folder is in comment syntax.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum FoldState {
    #[default]
    Text,
    /// Saw `/`: a comment may open.
    Slash,
    /// Saw `*` outside a comment: `*/` may close a kept `/*!` comment.
    Star,
    /// Saw `-`: `--` may open a line comment.
    Dash,
    /// Just after `/*`: `!` makes it a kept MySQL comment.
    Open,
    /// Skipping the version digits of `/*!50000`.
    Version,
    /// Inside `/* ... */`.
    Block,
    /// Inside a block comment, just after `*`.
    BlockStar,
    /// Inside a line comment (its bytes held in `line`).
    Line,
}

/// Lowercases ASCII, replaces `/* ... */` with a space (keeping the body of
/// MySQL `/*! ... */` executable comments), removes short line comments,
/// turns control characters and whitespace runs into one space.
#[derive(Clone, Debug, Default)]
struct Fold {
    state: FoldState,
    last_space: bool,
    /// Last byte written that is not a space: decides whether a line
    /// comment is a terminator worth keeping visible (after a quote).
    last_sig: u8,
    /// The marker (`--` or `#`) and text of an open line comment, held
    /// until its newline (or [`LINE_COMMENT_WINDOW`] bytes).
    line: Vec<u8>,
}

impl Fold {
    fn emit(&mut self, out: &mut Vec<u8>, b: u8) {
        if is_space(b) {
            if !self.last_space {
                out.push(b' ');
            }
            self.last_space = true;
        } else {
            let b = b.to_ascii_lowercase();
            out.push(b);
            self.last_space = false;
            self.last_sig = b;
        }
    }

    fn push(&mut self, raw: &[u8], out: &mut Vec<u8>) {
        out.reserve(raw.len());
        let mut i = 0;
        while i < raw.len() {
            if self.state == FoldState::Text {
                // Fast path: a run the state machine would only lowercase —
                // ordinary bytes, a single ' ' after a non-space, and a `/`
                // `*` or `-` whose next byte (in this piece) opens no
                // comment — is copied lowercased in one go.
                let start = i;
                let mut space = self.last_space;
                while let Some(&c) = raw.get(i) {
                    if !SPECIAL[c as usize] {
                        space = false;
                        i += 1;
                        continue;
                    }
                    let next = raw.get(i + 1).copied();
                    let plain = match c {
                        b' ' => !space,
                        b'/' => next.is_some_and(|n| n != b'*'),
                        b'*' => next.is_some_and(|n| n != b'/'),
                        b'-' => next.is_some_and(|n| n != b'-'),
                        _ => false,
                    };
                    if !plain {
                        break;
                    }
                    space = c == b' ';
                    i += 1;
                }
                if i > start {
                    let run = &raw[start..i];
                    let at = out.len();
                    out.extend_from_slice(run);
                    out[at..].make_ascii_lowercase();
                    self.last_space = space;
                    // A run holds no two spaces in a row: its last byte
                    // that is not a space is one of its last two.
                    if let Some(&b) = run.iter().rev().take(2).find(|&&b| b != b' ') {
                        self.last_sig = b.to_ascii_lowercase();
                    }
                    continue;
                }
            }
            self.step(raw[i], out);
            i += 1;
        }
    }

    fn step(&mut self, c: u8, out: &mut Vec<u8>) {
        use FoldState::*;
        match self.state {
            Text => match c {
                b'/' => self.state = Slash,
                b'*' => self.state = Star,
                b'-' => self.state = Dash,
                b'#' => self.open_line(b"#"),
                _ => self.emit(out, c),
            },
            Slash => {
                self.state = Text;
                if c == b'*' {
                    self.emit(out, b' ');
                    self.state = Open;
                } else {
                    self.emit(out, b'/');
                    self.step(c, out);
                }
            }
            Star => {
                self.state = Text;
                if c == b'/' {
                    // End of a kept /*! comment.
                    self.emit(out, b' ');
                } else {
                    self.emit(out, b'*');
                    self.step(c, out);
                }
            }
            Dash => {
                self.state = Text;
                if c == b'-' {
                    self.open_line(b"--");
                } else {
                    self.emit(out, b'-');
                    self.step(c, out);
                }
            }
            Open => {
                self.state = match c {
                    // `/*!`: MySQL executes the content: keep it, drop the
                    // version digits.
                    b'!' => Version,
                    b'*' => BlockStar,
                    _ => Block,
                };
            }
            Block => {
                if c == b'*' {
                    self.state = BlockStar;
                }
            }
            BlockStar => {
                self.state = match c {
                    b'/' => Text,
                    b'*' => BlockStar,
                    _ => Block,
                };
            }
            Version => {
                if !c.is_ascii_digit() {
                    self.state = Text;
                    self.step(c, out);
                }
            }
            Line => {
                if c == b'\n' || c == b'\r' {
                    // A complete short comment: gone. After a quote it is the
                    // terminator itself (`admin'--`): keep it visible.
                    let keep = matches!(self.last_sig, b'\'' | b'"');
                    self.state = Text;
                    self.emit(out, b' ');
                    if keep {
                        let marker: &[u8] = if self.line.first() == Some(&b'#') {
                            b"#\n"
                        } else {
                            b"--\n"
                        };
                        out.extend_from_slice(marker);
                        self.last_space = false;
                        self.last_sig = b'\n';
                    }
                    self.emit(out, b' ');
                    self.line.clear();
                } else {
                    self.line.push(c);
                    if self.line.len() > LINE_COMMENT_WINDOW {
                        self.spill_line(out);
                    }
                }
            }
        }
    }

    fn open_line(&mut self, marker: &[u8]) {
        self.state = FoldState::Line;
        self.line.clear();
        self.line.extend_from_slice(marker);
    }

    /// A line comment that is not one we remove: its bytes are text after
    /// all (the marker visible, the rest folded as usual).
    fn spill_line(&mut self, out: &mut Vec<u8>) {
        let held = std::mem::take(&mut self.line);
        self.state = FoldState::Text;
        let marker = match held.first() {
            Some(b'#') => 1,
            Some(_) => 2.min(held.len()),
            None => 0,
        };
        for &b in &held[..marker] {
            self.emit(out, b);
        }
        // The text may open another comment, which fills `line` afresh.
        self.push(&held[marker..], out);
    }

    fn finish(&mut self, out: &mut Vec<u8>) {
        // A spilled line comment is text again and may leave a new state
        // open: loop until none is (each spill consumes its marker).
        loop {
            let state = std::mem::take(&mut self.state);
            match state {
                FoldState::Slash => self.emit(out, b'/'),
                FoldState::Star => self.emit(out, b'*'),
                FoldState::Dash => self.emit(out, b'-'),
                FoldState::Open | FoldState::Block | FoldState::BlockStar => {
                    // Unterminated: the database ignores the rest, which is
                    // itself a tell (`admin'/*`): keep a marker.
                    out.extend_from_slice(b"/*");
                }
                FoldState::Line => {
                    self.state = FoldState::Line;
                    self.spill_line(out);
                    continue;
                }
                FoldState::Text | FoldState::Version => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm_with(s: &[u8], how: Norm) -> String {
        let (mut o, mut t) = (Vec::new(), Scratch::default());
        normalize(s, how, &mut o, &mut t);
        String::from_utf8_lossy(&o).into_owned()
    }

    fn norm(s: &str, plus: bool) -> String {
        norm_with(s.as_bytes(), if plus { Norm::FORM } else { Norm::PLAIN })
    }

    #[test]
    fn decodes_folds_and_strips() {
        assert_eq!(
            norm("/p?id=1%27%20UnIoN/**/SeLeCt+1,2--", true),
            "/p?id=1' union select 1,2--"
        );
        assert_eq!(norm("id=1%2527%2520or%25201=1", true), "id=1' or 1=1");
        assert_eq!(
            norm("1/*!50000UNION*//*!50000SELECT*/1", false),
            "1 union select 1"
        );
        assert_eq!(norm("a%09%0a%0d%0a  b", false), "a b");
        assert_eq!(norm("x%u0027 or 1=1", false), "x' or 1=1");
        assert_eq!(norm("%zz%4", false), "%zz%4", "invalid escapes are kept");
        assert_eq!(norm("O'Brien", true), "o'brien");
        assert_eq!(norm("admin'/*", true), "admin' /*");
        assert_eq!(
            norm("1--x%0aUNION--y%0aSELECT#z%0a1", true),
            "1 union select 1"
        );
        assert_eq!(norm("admin'--%0a", true), "admin' --\n ");
        assert_eq!(norm("5--", true), "5--");
        // A `#` or `--` without a near newline hides nothing.
        assert_eq!(
            norm("/?c=%23fff&id=1+union+select+1", true),
            "/?c=#fff&id=1 union select 1"
        );
        let far = format!("1--{}%0aunion", "x".repeat(LINE_COMMENT_WINDOW));
        assert!(
            norm(&far, true).starts_with("1--xxx"),
            "{}",
            norm(&far, true)
        );
    }

    #[test]
    fn json_escapes() {
        assert_eq!(
            norm_with(br#"{"q":"1\u0027 OR \u00271\u0027=\u00271"}"#, Norm::JSON),
            r#"{"q":"1' or '1'='1"}"#
        );
        assert_eq!(norm_with(br#"a\"b\\c\nd\q"#, Norm::JSON), r#"a"b\c d\q"#);
    }

    proptest::proptest! {
        /// The folder's fast path (runs copied in one go, decided with a
        /// byte of lookahead) gives what the byte-at-a-time state machine
        /// gives: one piece per byte never takes the lookahead.
        #[test]
        fn fast_path_equals_byte_at_a_time(
            // Mostly ordinary bytes, so that long runs occur as often as
            // the specials that end them.
            input in proptest::collection::vec(proptest::sample::select(
                b"aaaaaaaaZZZZ11 \t\n\r\x00\x0b/*-#!5'%+\\u\x80\xff".to_vec()), 0..200),
            json in proptest::bool::ANY,
        ) {
            let how = if json { Norm::JSON } else { Norm::FORM };
            let whole = norm_with(&input, how);
            let (mut o, mut s) = (Vec::new(), Scratch::default());
            let mut n = Normalizer::new(how);
            for b in &input {
                n.push(std::slice::from_ref(b), &mut o, &mut s);
            }
            n.finish(&mut o, &mut s);
            proptest::prop_assert_eq!(String::from_utf8_lossy(&o), whole);
        }
    }

    proptest::proptest! {
        /// A piece with nothing to decode skips the decoding stages (and a
        /// finish with nothing held flushes none): the output is what the
        /// stages give, whatever the input and wherever it is cut.
        #[test]
        fn skipping_the_decoding_stages_changes_nothing(
            input in proptest::collection::vec(proptest::sample::select(
                b"aZ1 +%27uU\\/*-#'\"\n".to_vec()), 0..80),
            cuts in proptest::collection::vec(0usize..80, 0..4),
            how in proptest::sample::select(vec![Norm::FORM, Norm::PLAIN, Norm::JSON]),
        ) {
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(input.len())).collect();
            cuts.sort_unstable();
            cuts.push(input.len());
            let (mut fast, mut staged, mut s) = (Vec::new(), Vec::new(), Scratch::default());
            let (mut a, mut b) = (Normalizer::new(how), Normalizer::new(how));
            let mut from = 0;
            for to in cuts {
                a.push(&input[from..to], &mut fast, &mut s);
                b.push_staged(&input[from..to], &mut staged, &mut s);
                from = to;
            }
            a.finish(&mut fast, &mut s);
            let mut d = Vec::new();
            b.decode_finish(&mut d, &mut s);
            b.fold.push(&d, &mut staged);
            b.fold.finish(&mut staged);
            proptest::prop_assert_eq!(fast, staged);
        }
    }

    /// Every way of cutting a buffer in two gives the same output as the
    /// whole: escapes, comments and whitespace runs cut by a piece boundary
    /// are held, not lost or doubled.
    #[test]
    fn streaming_equals_block_at_every_split() {
        let inputs: [(&[u8], Norm); 7] = [
            (
                b"id=1%2527%2520UnIoN/**/SeLeCt+1,%u0027x%27--y%0aa",
                Norm::FORM,
            ),
            (
                b"a/*!50000select*/ b /* c */ d*/e -- f\n g # h\r i - j / k * l",
                Norm::PLAIN,
            ),
            (br#"{"q":"\u0027 or 1=1 \/\/ \"x\" %2527"}"#, Norm::JSON),
            (b"x'--\ny%", Norm::FORM),
            (b"%u00%4%%%25%2", Norm::PLAIN),
            (b"a\\u00", Norm::JSON),
            (b"x--a#b--c-- d#", Norm::FORM),
        ];
        for (input, how) in inputs {
            let whole = norm_with(input, how);
            for cut in 0..=input.len() {
                for cut2 in cut..=input.len() {
                    let (mut o, mut s) = (Vec::new(), Scratch::default());
                    let mut n = Normalizer::new(how);
                    n.push(&input[..cut], &mut o, &mut s);
                    n.push(&input[cut..cut2], &mut o, &mut s);
                    n.push(&input[cut2..], &mut o, &mut s);
                    n.finish(&mut o, &mut s);
                    assert_eq!(
                        String::from_utf8_lossy(&o),
                        whole,
                        "{:?} cut at {cut},{cut2}",
                        String::from_utf8_lossy(input)
                    );
                }
            }
        }
    }
}
