//! HTTP/1.x requests as a client sends them: the head ([`head`]), the
//! chunked body coding ([`chunked`]), the normalized views signatures
//! match ([`normalize`]) and the parameter values the SQL detector judges
//! ([`params`]). Everything here works on bytes it is handed; the
//! flow that feeds it lives in [`crate::stream`].

pub mod chunked;
pub mod head;
pub mod normalize;
pub mod params;

pub use head::{BodyKind, Framing, Head};
pub use normalize::{decode, normalize, Norm, Normalizer, Scratch};

const METHODS: [&[u8]; 9] = [
    b"GET ",
    b"POST ",
    b"PUT ",
    b"HEAD ",
    b"DELETE ",
    b"OPTIONS ",
    b"PATCH ",
    b"TRACE ",
    b"CONNECT ",
];

/// Does this look like the start of a common HTTP/1.x request? Needs the
/// method and its space; shorter prefixes of a method answer "maybe"
/// (`None`). Used to pick up a flow mid-stream, where a false start would
/// inspect the middle of some other protocol; once a flow is followed, any
/// method token is accepted ([`head::method_ok`]).
pub fn starts_request(buf: &[u8]) -> Option<bool> {
    // Most payloads picked up mid-stream are not HTTP (floods carry
    // padding, other protocols share the port range): one byte says so.
    // Only methods with this first byte can match (an HTTP response's
    // `H` is compared with `HEAD ` alone).
    let first = *buf.first()?;
    for m in METHODS.iter().filter(|m| m.first() == Some(&first)) {
        let n = m.len().min(buf.len());
        if buf[..n] == m[..n] {
            return if n == m.len() { Some(true) } else { None };
        }
    }
    Some(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_starts() {
        assert_eq!(starts_request(b"GE"), None);
        assert_eq!(starts_request(b"GET /"), Some(true));
        assert_eq!(starts_request(b"SSH-2.0"), Some(false));
        assert_eq!(starts_request(b"XXXX"), Some(false));
        assert_eq!(starts_request(b"P"), None);
        assert_eq!(starts_request(b"PUT /"), Some(true));
        assert_eq!(starts_request(b"POSTAL"), Some(false));
        assert_eq!(starts_request(b""), None);
    }
}
