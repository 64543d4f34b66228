//! The hand-written JSON writer of the hub's hot path: events, their framing, trades
//! and results, written as exactly the bytes serde_json's compact serializer writes for
//! their `Serialize` forms.
//!
//! It skips serde's generic path and serde_json's per-byte escaping loop for the common
//! string that needs no escape, and formats numbers with serde_json's own formatter; it
//! writes a frame in about a third of the time serde_json takes (`cargo bench --bench
//! events`). `tests/wire_properties.rs` compares its bytes with serde_json's over random
//! events.

use serde_json::ser::{CompactFormatter, Formatter};

use crate::wire::envelope::{Envelope, EventFrame};
use crate::wire::event::{
    BacktestComplete, BacktestError, BacktestProgress, BacktestStart, Event, LogEntry,
};
use crate::wire::results::{Entry, Results};
use crate::wire::timestamp::Timestamp;
use crate::wire::topic::Topic;
use crate::wire::trade::{Side, Trade};

impl Event {
    /// Appends the event's JSON (`{"type":...,"data":{...}}`) to `out`: the bytes its
    /// `Serialize` form writes, written by hand (see the [module](crate::wire)).
    pub fn write_json(&self, out: &mut Vec<u8>) {
        event_object(out, self, None, None);
    }

    /// The event's JSON text (`{"type":...,"data":{...}}`).
    pub fn to_json(&self) -> String {
        into_string(|out| self.write_json(out))
    }
}

impl Envelope {
    /// Appends the envelope's JSON (`{"type":...,"data":{...},"topic":"..."}`) to `out`:
    /// the bytes its `Serialize` form writes, written by hand (see the [module](crate::wire)).
    pub fn write_json(&self, out: &mut Vec<u8>) {
        event_object(out, &self.event, Some(&self.topic), None);
    }

    /// The envelope's JSON text.
    pub fn to_json(&self) -> String {
        into_string(|out| self.write_json(out))
    }
}

impl EventFrame {
    /// Appends the frame's JSON to `out`: the bytes its `Serialize` form writes, written
    /// by hand (see the [module](crate::wire)).
    pub fn write_json(&self, out: &mut Vec<u8>) {
        Self::write_numbered(&self.envelope, self.seq, out);
    }

    /// Appends the JSON of `envelope` numbered `seq`, without building a frame: what the
    /// WebSocket hub does once per event.
    pub fn write_numbered(envelope: &Envelope, seq: u64, out: &mut Vec<u8>) {
        event_object(out, &envelope.event, Some(&envelope.topic), Some(seq));
    }

    /// The frame's JSON text.
    pub fn to_json(&self) -> String {
        into_string(|out| self.write_json(out))
    }
}

/// Writes into a fresh buffer and returns it as text.
fn into_string(write: impl FnOnce(&mut Vec<u8>)) -> String {
    let mut out = Vec::with_capacity(256);
    write(&mut out);
    // Only valid UTF-8 is written.
    String::from_utf8(out).unwrap_or_default()
}

/// Appends `{"type":...,"data":{...}}`, with `"topic"` and `"seq"` after `data` when
/// given: an [`Event`], an [`Envelope`] or an [`EventFrame`].
fn event_object(out: &mut Vec<u8>, event: &Event, topic: Option<&Topic>, seq: Option<u64>) {
    match event {
        Event::BacktestStart(e) => start(out, e),
        Event::BacktestProgress(e) => progress(out, e),
        Event::LogEntry(e) => log_entry(out, e),
        Event::BacktestComplete(e) => complete(out, e),
        Event::BacktestError(e) => error(out, e),
    }
    // Every payload writer leaves the outer object open after `data`.
    if let Some(topic) = topic {
        out.extend_from_slice(br#","topic":"#);
        string(out, topic.as_str());
    }
    if let Some(seq) = seq {
        out.extend_from_slice(br#","seq":"#);
        u64(out, seq);
    }
    out.push(b'}');
}

fn progress(out: &mut Vec<u8>, p: &BacktestProgress) {
    out.extend_from_slice(br#"{"type":"backtest_progress","data":{"backtest_id":"#);
    string(out, p.backtest_id.as_str());
    out.extend_from_slice(br#","progress":"#);
    f64_or_null(out, p.progress);
    out.extend_from_slice(br#","status":"#);
    string(out, &p.status);
    out.extend_from_slice(br#","bars_processed":"#);
    u64(out, p.bars_processed);
    out.extend_from_slice(br#","total_bars":"#);
    u64(out, p.total_bars);
    out.extend_from_slice(br#","current_date":"#);
    string(out, &p.current_date);
    out.extend_from_slice(br#","trades_count":"#);
    u64(out, p.trades_count);
    out.extend_from_slice(br#","current_pnl":"#);
    f64_or_null(out, p.current_pnl);
    out.extend_from_slice(br#","timestamp":"#);
    timestamp(out, &p.timestamp);
    out.push(b'}');
}

fn log_entry(out: &mut Vec<u8>, l: &LogEntry) {
    out.extend_from_slice(br#"{"type":"log_entry","data":{"backtest_id":"#);
    match &l.backtest_id {
        Some(id) => string(out, id.as_str()),
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(br#","timestamp":"#);
    timestamp(out, &l.timestamp);
    out.extend_from_slice(br#","level":""#);
    out.extend_from_slice(l.level.as_str().as_bytes());
    out.extend_from_slice(br#"","message":"#);
    string(out, &l.message);
    out.extend_from_slice(br#","module":"#);
    string(out, &l.module);
    out.extend_from_slice(br#","function":"#);
    string(out, &l.function);
    out.extend_from_slice(br#","line":"#);
    u64(out, u64::from(l.line));
    out.extend_from_slice(br#","logger_name":"#);
    string(out, &l.logger_name);
    out.push(b'}');
}

fn start(out: &mut Vec<u8>, s: &BacktestStart) {
    out.extend_from_slice(br#"{"type":"backtest_start","data":{"backtest_id":"#);
    string(out, s.backtest_id.as_str());
    out.extend_from_slice(br#","variant":"#);
    string(out, &s.variant);
    out.extend_from_slice(br#","symbol":"#);
    string(out, &s.symbol);
    out.extend_from_slice(br#","timeframe":"#);
    string(out, &s.timeframe);
    out.extend_from_slice(br#","start_date":"#);
    string(out, &s.start_date);
    out.extend_from_slice(br#","end_date":"#);
    string(out, &s.end_date);
    out.extend_from_slice(br#","timestamp":"#);
    timestamp(out, &s.timestamp);
    out.push(b'}');
}

fn error(out: &mut Vec<u8>, e: &BacktestError) {
    out.extend_from_slice(br#"{"type":"backtest_error","data":{"backtest_id":"#);
    string(out, e.backtest_id.as_str());
    out.extend_from_slice(br#","error":"#);
    string(out, &e.error);
    out.extend_from_slice(br#","error_details":"#);
    string(out, &e.error_details);
    out.extend_from_slice(br#","timestamp":"#);
    timestamp(out, &e.timestamp);
    out.push(b'}');
}

fn complete(out: &mut Vec<u8>, c: &BacktestComplete) {
    out.extend_from_slice(br#"{"type":"backtest_complete","data":{"backtest_id":"#);
    string(out, c.backtest_id.as_str());
    out.extend_from_slice(br#","final_balance":"#);
    f64_or_null(out, c.final_balance);
    out.extend_from_slice(br#","total_trades":"#);
    u64(out, c.total_trades);
    out.extend_from_slice(br#","win_rate":"#);
    f64_or_null(out, c.win_rate);
    out.extend_from_slice(br#","sharpe_ratio":"#);
    f64_or_null(out, c.sharpe_ratio);
    out.extend_from_slice(br#","drawdown":"#);
    f64_or_null(out, c.drawdown);
    out.extend_from_slice(br#","return_pct":"#);
    f64_or_null(out, c.return_pct);
    out.extend_from_slice(br#","duration_seconds":"#);
    f64_or_null(out, c.duration_seconds);
    out.extend_from_slice(br#","timestamp":"#);
    timestamp(out, &c.timestamp);
    out.extend_from_slice(br#","results":"#);
    results(out, &c.results);
    out.push(b'}');
}

/// Appends a [`Results`] object: its keys in order, the typed trade list in its place.
fn results(out: &mut Vec<u8>, results: &Results) {
    out.push(b'{');
    for (i, entry) in results.entries().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        match entry {
            Entry::Trades(trades) => trade_list(out, trades),
            Entry::Field(key, value) => {
                string(out, key);
                out.push(b':');
                // Writing a JSON value into memory cannot fail: every key is a string.
                if serde_json::to_writer(&mut *out, value).is_err() {
                    debug_assert!(false, "serializing a JSON value into memory failed");
                }
            }
        }
    }
    out.push(b'}');
}

/// Appends `"trades":[...]`.
fn trade_list(out: &mut Vec<u8>, trades: &[Trade]) {
    // About 190 bytes a trade with prices of a few digits.
    out.reserve(trades.len().saturating_mul(192).saturating_add(12));
    out.extend_from_slice(br#""trades":["#);
    for (i, t) in trades.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        trade(out, t);
    }
    out.push(b']');
}

/// Appends a [`Trade`], its keys in alphabetical order.
fn trade(out: &mut Vec<u8>, t: &Trade) {
    out.extend_from_slice(if t.closed_at_end {
        br#"{"closed_at_end":true,"entry_price":"#
    } else {
        br#"{"closed_at_end":false,"entry_price":"#
    });
    f64_or_null(out, t.entry_price);
    out.extend_from_slice(br#","entry_time":"#);
    timestamp(out, &t.entry_time);
    out.extend_from_slice(br#","exit_price":"#);
    f64_or_null(out, t.exit_price);
    out.extend_from_slice(br#","exit_time":"#);
    timestamp(out, &t.exit_time);
    out.extend_from_slice(br#","pnl":"#);
    f64_or_null(out, t.pnl);
    out.extend_from_slice(match t.side {
        Side::Long => br#","side":"long","size":"#,
        Side::Short => br#","side":"short","size":"#,
    });
    f64_or_null(out, t.size);
    out.push(b'}');
}

/// Appends a timestamp as a JSON string (what its `Serialize` writes).
#[inline]
fn timestamp(out: &mut Vec<u8>, t: &Timestamp) {
    let text = t.text();
    out.reserve(text.len() + 2);
    out.push(b'"');
    out.extend_from_slice(&text);
    out.push(b'"');
}

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
fn string(out: &mut Vec<u8>, value: &str) {
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
fn u64(out: &mut Vec<u8>, value: u64) {
    // Writing into a Vec cannot fail.
    let _ = CompactFormatter.write_u64(out, value);
}

/// Appends a float as the `finite_or_null` fields are written: `null` when not finite.
#[inline]
fn f64_or_null(out: &mut Vec<u8>, value: f64) {
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
