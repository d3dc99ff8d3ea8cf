//! The W3C Trace Context `traceparent` header
//! (<https://www.w3.org/TR/trace-context/>): `00-<trace-id>-<parent-id>-<flags>`,
//! lowercase hex. A header that does not parse is ignored (the request starts
//! a new trace), never refused: tracing must not turn a request away.

use std::fmt;

/// The header's name.
pub const TRACEPARENT: &str = "traceparent";

/// Where a span sits in a trace: the trace, the span, and the flags
/// (bit 0: sampled).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TraceContext {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    pub flags: u8,
}

/// The `sampled` bit of the flags.
pub const SAMPLED: u8 = 0x01;

impl TraceContext {
    /// A new trace (random ids, sampled).
    pub fn new_root() -> Self {
        Self {
            trace_id: nonzero(),
            span_id: nonzero(),
            flags: SAMPLED,
        }
    }

    /// A new span in the same trace, with the same flags.
    pub fn child(&self) -> Self {
        Self {
            span_id: nonzero(),
            ..*self
        }
    }

    pub fn is_sampled(&self) -> bool {
        self.flags & SAMPLED != 0
    }

    /// Parses a `traceparent` value by the specification's rules: version
    /// `00` is exactly 55 characters; a later version may be longer (what
    /// follows a `-` at 55 is ignored) and is read as version `00`; `ff`,
    /// uppercase hex, and all-zero trace or parent ids are invalid.
    pub fn parse(raw: &str) -> Option<Self> {
        let raw = raw.trim_matches([' ', '\t']);
        let bytes = raw.as_bytes();
        if bytes.len() < 55 {
            return None;
        }
        let version = hex::<1>(&raw[..2])?[0];
        if version == 0xff {
            return None;
        }
        match (version, bytes.len()) {
            (0, 55) => {}
            (0, _) => return None,
            (_, 55) => {}
            (_, _) if bytes[55] == b'-' => {}
            _ => return None,
        }
        if bytes[2] != b'-' || bytes[35] != b'-' || bytes[52] != b'-' {
            return None;
        }
        let trace_id = hex::<16>(&raw[3..35]).filter(|id| id.iter().any(|b| *b != 0))?;
        let span_id = hex::<8>(&raw[36..52]).filter(|id| id.iter().any(|b| *b != 0))?;
        let flags = hex::<1>(&raw[53..55])?[0];
        Some(Self {
            trace_id,
            span_id,
            // Flags other than `sampled` are not ours to pass on from a later version.
            flags: if version == 0 { flags } else { flags & SAMPLED },
        })
    }

    /// The trace id as 32 lowercase hex digits.
    pub fn trace_hex(&self) -> String {
        to_hex(&self.trace_id)
    }

    /// The span id as 16 lowercase hex digits.
    pub fn span_hex(&self) -> String {
        to_hex(&self.span_id)
    }
}

/// The `traceparent` value, version `00`.
impl fmt::Display for TraceContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "00-{}-{}-{:02x}", self.trace_hex(), self.span_hex(), self.flags)
    }
}

/// Lowercase hex of `bytes`.
pub fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

/// `N` bytes from exactly `2N` lowercase hex digits.
fn hex<const N: usize>(text: &str) -> Option<[u8; N]> {
    let digits = text.as_bytes();
    if digits.len() != 2 * N {
        return None;
    }
    let nibble = |d: u8| match d {
        b'0'..=b'9' => Some(d - b'0'),
        b'a'..=b'f' => Some(d - b'a' + 10),
        _ => None,
    };
    let mut out = [0u8; N];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = nibble(digits[2 * i])? << 4 | nibble(digits[2 * i + 1])?;
    }
    Some(out)
}

fn nonzero<const N: usize>() -> [u8; N] {
    loop {
        let id: [u8; N] = rand::random();
        if id.iter().any(|b| *b != 0) {
            return id;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn the_specifications_examples_parse_and_format_back() {
        let context = TraceContext::parse(EXAMPLE).unwrap();
        assert_eq!(context.trace_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(context.span_hex(), "00f067aa0ba902b7");
        assert!(context.is_sampled());
        assert_eq!(context.to_string(), EXAMPLE);
        let unsampled = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00";
        let context = TraceContext::parse(unsampled).unwrap();
        assert!(!context.is_sampled());
        assert_eq!(context.to_string(), unsampled);
    }

    #[test]
    fn invalid_headers_are_none() {
        for bad in [
            "",
            "00",
            // uppercase
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01",
            // all-zero trace id, all-zero parent id
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            // version ff
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            // version 00 with more after it
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-011",
            // wrong separators, short fields, non-hex
            "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-600f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0g",
            "0x-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ] {
            assert_eq!(TraceContext::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn a_later_version_is_read_as_version_00() {
        let later = "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-09-something-new";
        let context = TraceContext::parse(later).unwrap();
        assert_eq!(context.trace_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(context.flags, SAMPLED, "only the sampled bit is kept");
        assert_eq!(context.to_string(), EXAMPLE);
        let exact = "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        assert!(TraceContext::parse(exact).is_some());
        let glued = "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x";
        assert_eq!(TraceContext::parse(glued), None);
    }

    #[test]
    fn children_keep_the_trace_and_get_a_new_span() {
        let root = TraceContext::new_root();
        assert!(root.is_sampled());
        let child = root.child();
        assert_eq!(child.trace_id, root.trace_id);
        assert_ne!(child.span_id, root.span_id);
        assert_ne!(TraceContext::new_root().trace_id, root.trace_id);
        assert_eq!(TraceContext::parse(&child.to_string()), Some(child));
    }
}
