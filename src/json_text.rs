//! Hand-written compact JSON output for the events on the hot path.
//!
//! It writes exactly the bytes serde_json's compact serializer writes (the
//! `json_text_matches_serde_json` tests in `tests/event_model.rs` compare them byte for
//! byte), but skips serde_json's per-byte escaping loop for the common string that
//! needs no escape, and writes into a `String` so that the result needs no UTF-8
//! validation. Numbers are formatted by serde_json's own formatter.

use serde_json::ser::{CompactFormatter, Formatter};

/// Whether serde_json writes `bytes` verbatim inside quotes: no control character
/// (below 0x20), no `"` and no `\`.
#[inline]
fn verbatim(bytes: &[u8]) -> bool {
    // A branch per 16 bytes rather than per byte, so the compiler can vectorise it.
    let mut chunks = bytes.chunks_exact(16);
    for chunk in &mut chunks {
        let mut escape = false;
        for &b in chunk {
            escape |= b < 0x20 || b == b'"' || b == b'\\';
        }
        if escape {
            return false;
        }
    }
    chunks
        .remainder()
        .iter()
        .all(|&b| b >= 0x20 && b != b'"' && b != b'\\')
}

/// Appends `value` as a JSON string (quoted and escaped as serde_json does).
#[inline]
pub(crate) fn string(out: &mut String, value: &str) {
    if verbatim(value.as_bytes()) {
        out.reserve(value.len() + 2);
        out.push('"');
        out.push_str(value);
        out.push('"');
    } else {
        escaped(out, value);
    }
}

#[cold]
fn escaped(out: &mut String, value: &str) {
    // serde_json's own escaping, for the rare string that needs it. Serializing a
    // string cannot fail.
    if let Ok(text) = serde_json::to_string(value) {
        out.push_str(&text);
    }
}

/// Runs one of serde_json's number formatters on a stack buffer and appends the text.
#[inline]
fn number(out: &mut String, write: impl FnOnce(&mut &mut [u8]) -> std::io::Result<()>) {
    // The longest f64 serde_json writes is 24 bytes, the longest u64 20.
    let mut buf = [0u8; 40];
    let mut rest: &mut [u8] = &mut buf;
    if write(&mut rest).is_ok() {
        let len = 40 - rest.len();
        ascii(out, &buf[..len]);
    }
}

/// Appends bytes known to be ASCII (digits, signs, `.`, `e`, `-`, `:`, `T`, `Z`).
#[inline]
pub(crate) fn ascii(out: &mut String, bytes: &[u8]) {
    debug_assert!(bytes.is_ascii());
    // Checking a short ASCII slice is a few word compares, cheaper than pushing it
    // char by char.
    if let Ok(text) = std::str::from_utf8(bytes) {
        out.push_str(text);
    }
}

/// Appends an unsigned integer.
#[inline]
pub(crate) fn u64(out: &mut String, value: u64) {
    number(out, |w| CompactFormatter.write_u64(w, value));
}

/// Appends a float as the `finite_or_null` fields are written: `null` when not finite.
#[inline]
pub(crate) fn f64_or_null(out: &mut String, value: f64) {
    if value.is_finite() {
        number(out, |w| CompactFormatter.write_f64(w, value));
    } else {
        out.push_str("null");
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
            let mut ours = String::new();
            string(&mut ours, &sample);
            assert_eq!(ours, serde_json::to_string(&sample).unwrap(), "{sample:?}");
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
            let mut ours = String::new();
            f64_or_null(&mut ours, value);
            assert_eq!(ours, serde_json::to_string(&value).unwrap(), "{value}");
        }
        for value in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            let mut ours = String::new();
            f64_or_null(&mut ours, value);
            assert_eq!(ours, "null");
        }
        for value in [0, 1, 9, 10, 99, 12345, u64::MAX] {
            let mut ours = String::new();
            u64(&mut ours, value);
            assert_eq!(ours, value.to_string());
        }
    }
}
