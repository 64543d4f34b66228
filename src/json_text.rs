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
    // Eight bytes per step (exact bit tricks: a word has a byte below 0x20, or equal
    // to `"` or `\\`, iff the test is non-zero); the table for the remainder.
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let has_zero = |v: u64| v.wrapping_sub(ONES) & !v & HIGHS;
    let mut words = bytes.chunks_exact(8);
    for word in &mut words {
        let mut le = [0u8; 8];
        le.copy_from_slice(word);
        let x = u64::from_le_bytes(le);
        let below_space = x.wrapping_sub(ONES * 0x20) & !x & HIGHS;
        if below_space
            | has_zero(x ^ (ONES * u64::from(b'"')))
            | has_zero(x ^ (ONES * u64::from(b'\\')))
            != 0
        {
            return false;
        }
    }
    !words.remainder().iter().any(|&b| ESCAPED[usize::from(b)])
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
    fn every_char_at_every_place_of_a_word_matches_serde_json() {
        // Each ASCII byte, and multi-byte characters (bytes >= 0x80 must never look like
        // an escape), at each position of a 19-byte string: the eight-byte words and the
        // remainder are both covered.
        let mut chars: Vec<char> = (0u8..=0x7f).map(char::from).collect();
        chars.extend([
            '\u{80}',
            'é',
            '\u{7ff}',
            '€',
            '\u{ffff}',
            '😀',
            '\u{10ffff}',
        ]);
        for c in chars {
            for at in 0..19 {
                let sample: String = (0..19).map(|i| if i == at { c } else { 'a' }).collect();
                let mut ours = Vec::new();
                string(&mut ours, &sample);
                assert_eq!(ours, serde_json::to_vec(&sample).unwrap(), "{sample:?}");
                let needs_escape = c < ' ' || c == '"' || c == '\\';
                assert_eq!(verbatim(sample.as_bytes()), !needs_escape, "{sample:?}");
            }
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
