//! What the load test reads off the process and off each frame: clocks, memory, CPU
//! time, and the numbers inside a frame's text (without parsing the JSON).

use std::time::{SystemTime, UNIX_EPOCH};

/// Nanoseconds since the Unix epoch.
pub(crate) fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// (current RSS, peak RSS) of this process in KiB.
pub(crate) fn rss_kib() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// On-CPU time of every thread of this process so far, in nanoseconds (Linux; 0
/// elsewhere).
pub(crate) fn cpu_ns() -> u64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    tasks
        .filter_map(|task| {
            let path = task.ok()?.path().join("schedstat");
            let text = std::fs::read_to_string(path).ok()?;
            text.split_whitespace().next()?.parse::<u64>().ok()
        })
        .sum()
}

/// The `seq` at the end of an event frame (`..."seq":N}`).
pub(crate) fn trailing_seq(text: &str) -> Option<u64> {
    let bytes = text.as_bytes();
    let end = bytes.len().checked_sub(1)?;
    if bytes[end] != b'}' {
        return None;
    }
    let start = bytes[..end]
        .iter()
        .rposition(|b| !b.is_ascii_digit())
        .map_or(0, |i| i + 1);
    if !text[..start].ends_with("\"seq\":") {
        return None;
    }
    text[start..end].parse().ok()
}

/// The text after the first `key`.
pub(crate) fn field_after<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    let at = text.find(key)? + key.len();
    Some(&text[at..])
}

/// The number at the start of `text`.
pub(crate) fn leading_digits(text: &str) -> Option<u64> {
    let end = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    text[..end].parse().ok()
}
