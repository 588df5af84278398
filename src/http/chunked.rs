//! Streaming decoder for the chunked transfer coding (RFC 9112 §7.1).
//!
//! Holds a few counters between segments, never the data: chunk data is
//! handed on as slices of the input. Lenient where servers are (a bare LF
//! ends a line; whitespace before an extension), an error where a reading
//! would be ambiguous (a size that is not hex, data not followed by a line
//! end): the caller stops following the flow under its policy.

/// Longest chunk-size line (size, extensions) accepted.
pub const MAX_SIZE_LINE: u32 = 4096;
/// Most trailer bytes accepted after the last chunk.
pub const MAX_TRAILER: u32 = 16 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
enum State {
    /// Reading hex digits of a chunk size.
    #[default]
    Size,
    /// Whitespace after the size: only more of it, `;` or the line end.
    SizeWs,
    /// In a chunk extension, up to the line end.
    Ext,
    /// Saw CR ending the size line.
    SizeLf,
    /// In chunk data.
    Data,
    /// After chunk data: CR expected.
    DataCr,
    /// After chunk data and CR: LF expected.
    DataLf,
    /// In the trailer section, at the start of a line.
    TrailerStart,
    /// In a trailer line.
    Trailer,
    /// Saw CR at the start of a trailer line: LF ends the message.
    TrailerEndLf,
    /// The message is complete.
    Done,
}

/// One step of decoding.
#[derive(Debug, PartialEq, Eq)]
pub enum Step<'a> {
    /// Chunk data (part of the body).
    Data(&'a [u8]),
    /// The last chunk and the trailers are done: the body ended.
    Done,
    /// The input is used up; more is needed.
    More,
    /// The coding is broken here: the body's end cannot be known.
    Error(&'static str),
}

/// Decoder state for one chunked body.
#[derive(Clone, Copy, Debug, Default)]
pub struct Chunked {
    state: State,
    size: u64,
    digits: u8,
    line: u32,
}

impl Chunked {
    /// Decodes from the front of `input`, advancing it past what was used.
    pub fn step<'a>(&mut self, input: &mut &'a [u8]) -> Step<'a> {
        use State::*;
        while let Some((&c, rest)) = input.split_first() {
            if self.state == Data {
                let n = (input.len() as u64).min(self.size) as usize;
                let (data, rest) = input.split_at(n);
                *input = rest;
                self.size -= n as u64;
                if self.size == 0 {
                    self.state = DataCr;
                }
                return Step::Data(data);
            }
            *input = rest;
            self.line = self.line.saturating_add(1);
            match self.state {
                Size => match c {
                    b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F' => {
                        if self.digits == 16 {
                            return self.fail("chunk size too large");
                        }
                        self.digits += 1;
                        let d = (c as char).to_digit(16).unwrap_or(0) as u64;
                        self.size = self.size << 4 | d;
                    }
                    _ if self.digits == 0 => return self.fail("chunk size is not hex"),
                    b';' => self.state = Ext,
                    b' ' | b'\t' => self.state = SizeWs,
                    b'\r' => self.state = SizeLf,
                    b'\n' => self.end_size_line(),
                    _ => return self.fail("chunk size is not hex"),
                },
                SizeWs => match c {
                    b' ' | b'\t' => {}
                    b';' => self.state = Ext,
                    b'\r' => self.state = SizeLf,
                    b'\n' => self.end_size_line(),
                    _ => return self.fail("junk after a chunk size"),
                },
                Ext => match c {
                    b'\n' => self.end_size_line(),
                    b'\r' => self.state = SizeLf,
                    _ if self.line > MAX_SIZE_LINE => return self.fail("chunk extension too long"),
                    _ => {}
                },
                SizeLf => match c {
                    b'\n' => self.end_size_line(),
                    _ => return self.fail("CR without LF after a chunk size"),
                },
                DataCr => match c {
                    b'\r' => self.state = DataLf,
                    b'\n' => self.start_size(),
                    _ => return self.fail("chunk data longer than its size"),
                },
                DataLf => match c {
                    b'\n' => self.start_size(),
                    _ => return self.fail("CR without LF after chunk data"),
                },
                TrailerStart => match c {
                    b'\r' => self.state = TrailerEndLf,
                    b'\n' => return self.done(),
                    _ => self.state = Trailer,
                },
                Trailer if c == b'\n' => self.state = TrailerStart,
                Trailer => {}
                TrailerEndLf => match c {
                    b'\n' => return self.done(),
                    _ => return self.fail("CR without LF after the trailers"),
                },
                Data | Done => {}
            }
            if matches!(self.state, TrailerStart | Trailer | TrailerEndLf)
                && self.line > MAX_TRAILER
            {
                return self.fail("chunked trailers too long");
            }
        }
        Step::More
    }

    fn end_size_line(&mut self) {
        if self.size == 0 {
            self.state = State::TrailerStart;
            self.line = 0;
        } else {
            self.state = State::Data;
        }
    }

    fn start_size(&mut self) {
        *self = Chunked::default();
    }

    fn done(&mut self) -> Step<'static> {
        self.state = State::Done;
        Step::Done
    }

    fn fail(&mut self, why: &'static str) -> Step<'static> {
        self.state = State::Done;
        Step::Error(why)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes `input` fed in pieces of `piece` bytes.
    fn decode(input: &[u8], piece: usize) -> (Vec<u8>, Result<usize, &'static str>) {
        let mut c = Chunked::default();
        let mut body = Vec::new();
        let mut used = 0;
        for part in input.chunks(piece.max(1)) {
            let mut rest = part;
            loop {
                match c.step(&mut rest) {
                    Step::Data(d) => body.extend_from_slice(d),
                    Step::More => break,
                    Step::Done => return (body, Ok(used + part.len() - rest.len())),
                    Step::Error(e) => return (body, Err(e)),
                }
            }
            used += part.len();
        }
        (body, Err("incomplete"))
    }

    #[test]
    fn decodes_sizes_extensions_trailers_in_any_pieces() {
        let msg = b"5;name=\"v\"\r\nhello\r\na \t;x\r\n, world!!!\r\n0\r\nX-Trailer: 1\r\n\r\nGET";
        for piece in 1..msg.len() {
            let (body, end) = decode(msg, piece);
            assert_eq!(body, b"hello, world!!!", "piece {piece}");
            assert_eq!(end, Ok(msg.len() - 3), "piece {piece}");
        }
        let (body, end) = decode(b"3\nabc\n0\n\n", 4);
        assert_eq!((body.as_slice(), end), (&b"abc"[..], Ok(9)));
    }

    #[test]
    fn broken_coding_is_an_error() {
        for (msg, why) in [
            (&b"x\r\n"[..], "not hex"),
            (b"\r\n", "not hex"),
            (b"3\r\nabcd\r\n", "longer than its size"),
            (b"11111111111111111\r\n", "too large"),
            (b"3\rx", "CR without LF"),
            (b"5 6\r\nhello", "junk after"),
        ] {
            assert!(
                matches!(decode(msg, 64).1, Err(e) if e.contains(why)),
                "{msg:?}"
            );
        }
        let long_ext = [b"1;".as_slice(), &[b'a'; 5000]].concat();
        assert_eq!(decode(&long_ext, 100).1, Err("chunk extension too long"));
    }
}
