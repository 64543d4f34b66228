//! Hand-written compact JSON output for the events on the hot path.
//!
//! It writes exactly the bytes serde_json's compact serializer writes (the
//! `json_text_matches_serde_json_byte_for_byte` test in `tests/event_model.rs` compares
//! them), but skips serde_json's per-byte escaping loop for the common string that
//! needs no escape. Numbers are formatted by serde_json's own formatter.

use serde_json::ser::{CompactFormatter, Formatter};

/// The bytes serde_json escapes inside a string: control characters (below 0x20),
/// `"` and `\\`.
const ESCAPED: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 0x20 {
        table[b] = true;
        b += 1;
    }
    table[b'"' as usize] = true;
    table[b'\\' as usize] = true;
    table
};

/// Whether serde_json writes `bytes` verbatim inside quotes.
#[inline]
fn verbatim(bytes: &[u8]) -> bool {
    // One table load per byte; a branch per 16 bytes for longer strings.
    let mut chunks = bytes.chunks_exact(16);
    for chunk in &mut chunks {
        let mut escape = false;
        for &b in chunk {
            escape |= ESCAPED[usize::from(b)];
        }
        if escape {
            return false;
        }
    }
    !chunks.remainder().iter().any(|&b| ESCAPED[usize::from(b)])
}

/// Appends `value` as a JSON string (quoted and escaped as serde_json does).
#[inline]
pub(crate) fn string(out: &mut Vec<u8>, value: &str) {
    let bytes = value.as_bytes();
    if verbatim(bytes) {
        out.reserve(bytes.len() + 2);
        out.push(b'"');
        out.extend_from_slice(bytes);
        out.push(b'"');
    } else {
        escaped(out, value);
    }
}

#[cold]
fn escaped(out: &mut Vec<u8>, value: &str) {
    // serde_json's own escaping, for the rare string that needs it. Writing a string
    // into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, value);
}

/// Appends an unsigned integer.
#[inline]
pub(crate) fn u64(out: &mut Vec<u8>, value: u64) {
    // Writing into a Vec cannot fail.
    let _ = CompactFormatter.write_u64(out, value);
}

/// Appends a float as the `finite_or_null` fields are written: `null` when not finite.
#[inline]
pub(crate) fn f64_or_null(out: &mut Vec<u8>, value: f64) {
    if value.is_finite() {
        // Writing into a Vec cannot fail.
        let _ = CompactFormatter.write_f64(out, value);
    } else {
        out.extend_from_slice(b"null");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_match_serde_json_for_every_ascii_byte_and_unicode() {
        let mut samples: Vec<String> = (0u8..=0x7f).map(|b| char::from(b).to_string()).collect();
        samples.extend(
            [
                "",
                "plain text that is longer than sixteen bytes",
                "quote \" inside a long enough string",
                "back\\slash at 5, and more text after it",
                "0123456789abcdef\n",
                "0123456789abcde\"",
                "tab\there",
                "\u{7f}\u{80}\u{7ff}\u{800}\u{ffff}\u{10000}\u{10ffff}",
                "é€😀 unicode ✓ and a \u{1} control",
                "\u{2028}\u{2029} line separators",
            ]
            .map(String::from),
        );
        for sample in samples {
            let mut ours = Vec::new();
            string(&mut ours, &sample);
            assert_eq!(ours, serde_json::to_vec(&sample).unwrap(), "{sample:?}");
        }
    }

    #[test]
    fn numbers_match_serde_json() {
        for value in [
            0.0,
            -0.0,
            1.0,
            0.1,
            -2.5e-300,
            1.7976931348623157e308,
            f64::MIN_POSITIVE,
            5e-324,
            123456789.123,
            1e21,
            1e15,
        ] {
            let mut ours = Vec::new();
            f64_or_null(&mut ours, value);
            assert_eq!(ours, serde_json::to_vec(&value).unwrap(), "{value}");
        }
        for value in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            let mut ours = Vec::new();
            f64_or_null(&mut ours, value);
            assert_eq!(ours, b"null");
        }
        for value in [0, 1, 9, 10, 99, 12345, u64::MAX] {
            let mut ours = Vec::new();
            u64(&mut ours, value);
            assert_eq!(ours, value.to_string().into_bytes());
        }
    }
}
