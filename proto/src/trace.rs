//! W3C Trace Context (<https://www.w3.org/TR/trace-context/>): the `traceparent` a request
//! carries from the client through the gateway into each service, their logs and the events
//! they record.
//!
//! Each process continues the trace it was given (or starts one when there is none, or it is
//! malformed) under a span id of its own, and passes `traceparent` naming that span on. The
//! `tracestate` header is not kept.

use std::fmt;

/// The `traceparent` header and gRPC metadata key.
pub const TRACEPARENT: &str = "traceparent";

/// One process's part in a trace: the trace's id, this span's id, and whether the trace is
/// sampled (the only trace flag defined).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct TraceContext {
    trace_id: [u8; 16],
    span_id: [u8; 8],
    sampled: bool,
}

impl TraceContext {
    /// A span of this process in the trace `traceparent` names; a new trace when it is absent
    /// or malformed.
    pub fn continue_from(traceparent: Option<&str>) -> Self {
        match traceparent.and_then(Parent::parse) {
            Some(parent) => Self {
                trace_id: parent.trace_id,
                span_id: random_nonzero(),
                sampled: parent.sampled,
            },
            None => Self::start(),
        }
    }

    /// A new trace (sampled: this process decided to record it).
    pub fn start() -> Self {
        Self {
            trace_id: random_nonzero(),
            span_id: random_nonzero(),
            sampled: true,
        }
    }

    /// The `traceparent` value naming this span as the parent of the next hop.
    pub fn traceparent(&self) -> String {
        format!(
            "00-{}-{}-{:02x}",
            hex(&self.trace_id),
            hex(&self.span_id),
            u8::from(self.sampled)
        )
    }

    /// The trace id: 32 lowercase hex digits.
    pub fn trace_id(&self) -> String {
        hex(&self.trace_id)
    }

    /// This span's id: 16 lowercase hex digits.
    pub fn span_id(&self) -> String {
        hex(&self.span_id)
    }
}

impl fmt::Debug for TraceContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.traceparent())
    }
}

/// What a valid `traceparent` says.
struct Parent {
    trace_id: [u8; 16],
    sampled: bool,
}

impl Parent {
    /// Version 00 exactly (`00-` 32 hex `-` 16 hex `-` 2 hex, lowercase, ids not all zero);
    /// a later version by its first four fields, followed by nothing or `-` and more. Version
    /// `ff` is invalid.
    fn parse(value: &str) -> Option<Self> {
        let value = value.trim_matches([' ', '\t']);
        let bytes = value.as_bytes();
        if bytes.len() < 55 {
            return None;
        }
        let version = decode::<1>(&value[..2])?[0];
        if version == 0xff || (version == 0 && bytes.len() != 55) {
            return None;
        }
        if bytes.len() > 55 && bytes[55] != b'-' {
            return None;
        }
        if bytes[2] != b'-' || bytes[35] != b'-' || bytes[52] != b'-' {
            return None;
        }
        let trace_id = decode::<16>(&value[3..35])?;
        let parent_id = decode::<8>(&value[36..52])?;
        let flags = decode::<1>(&value[53..55])?[0];
        if trace_id == [0; 16] || parent_id == [0; 8] {
            return None;
        }
        Some(Self {
            trace_id,
            sampled: flags & 1 == 1,
        })
    }
}

/// `N` bytes from `2 * N` lowercase hex digits.
fn decode<const N: usize>(digits: &str) -> Option<[u8; N]> {
    let digits = digits.as_bytes();
    if digits.len() != 2 * N {
        return None;
    }
    let nibble = |d: u8| match d {
        b'0'..=b'9' => Some(d - b'0'),
        b'a'..=b'f' => Some(d - b'a' + 10),
        _ => None,
    };
    let mut out = [0; N];
    for (i, pair) in digits.chunks_exact(2).enumerate() {
        out[i] = nibble(pair[0])? << 4 | nibble(pair[1])?;
    }
    Some(out)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Random bytes, never all zero (an all-zero id is invalid).
fn random_nonzero<const N: usize>() -> [u8; N] {
    loop {
        let random = uuid::Uuid::new_v4().into_bytes();
        let mut out = [0; N];
        out.copy_from_slice(&random[..N]);
        if out != [0; N] {
            return out;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIVEN: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn a_valid_parent_is_continued_under_a_new_span() {
        let context = TraceContext::continue_from(Some(GIVEN));
        assert_eq!(context.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_ne!(context.span_id(), "00f067aa0ba902b7");
        assert_eq!(context.span_id().len(), 16);
        let passed_on = context.traceparent();
        assert_eq!(
            passed_on,
            format!(
                "00-4bf92f3577b34da6a3ce929d0e0e4736-{}-01",
                context.span_id()
            )
        );
        // What this process passes on is itself a valid parent of the same trace.
        let next = TraceContext::continue_from(Some(&passed_on));
        assert_eq!(next.trace_id(), context.trace_id());
    }

    #[test]
    fn the_sampled_flag_is_kept_and_other_flags_dropped() {
        let unsampled = GIVEN.replace("-01", "-00");
        assert!(
            TraceContext::continue_from(Some(&unsampled))
                .traceparent()
                .ends_with("-00")
        );
        let other_bits = GIVEN.replace("-01", "-03");
        assert!(
            TraceContext::continue_from(Some(&other_bits))
                .traceparent()
                .ends_with("-01")
        );
    }

    #[test]
    fn a_later_version_is_read_by_its_first_fields() {
        let later = "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-comes-next";
        let context = TraceContext::continue_from(Some(later));
        assert_eq!(context.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert!(context.traceparent().starts_with("00-"));
    }

    #[test]
    fn a_malformed_parent_starts_a_new_trace() {
        let malformed = [
            "",
            "00",
            "garbage",
            // Uppercase hex, all-zero ids, version ff, a version 00 with more after it.
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-more",
            "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01more",
            "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e47é-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0x",
        ];
        for value in malformed {
            let context = TraceContext::continue_from(Some(value));
            assert_ne!(
                context.trace_id(),
                "4bf92f3577b34da6a3ce929d0e0e4736",
                "{value:?} was taken"
            );
            assert_eq!(context.trace_id().len(), 32, "{value:?}");
            assert!(context.traceparent().ends_with("-01"));
        }
        assert_ne!(
            TraceContext::start().trace_id(),
            TraceContext::start().trace_id()
        );
    }
}
