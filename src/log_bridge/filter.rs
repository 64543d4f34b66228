//! Level filters per target, in the style of `env_logger` (`info,hyper=warn,my_app::engine=trace`).

use log::{Level, LevelFilter};

/// A default level and levels for targets, the most specific target winning.
#[derive(Debug, Clone)]
pub(crate) struct TargetFilter {
    default: LevelFilter,
    /// Longest prefix first, so the first match is the most specific one.
    directives: Vec<Directive>,
    /// The most verbose level any directive or the default lets through.
    max: LevelFilter,
    /// The least verbose of them: a record at this level or more severe passes
    /// whatever its target.
    min: LevelFilter,
}

/// `target=level`: `prefix` and every target below it (`prefix::...`).
#[derive(Debug, Clone)]
struct Directive {
    prefix: Box<str>,
    level: LevelFilter,
    /// The first 8 bytes of `prefix`, zero-padded, compared as one word.
    head: u64,
    /// Selects the bytes of a target's first word that `head` holds.
    head_mask: u64,
    /// The 8 bytes ending the prefix, when it is 9 to 16 bytes long.
    tail: u64,
}

impl Directive {
    fn new(prefix: &str, level: LevelFilter) -> Self {
        let bytes = prefix.as_bytes();
        let len = bytes.len();
        let head_mask = if len >= 8 {
            u64::MAX
        } else {
            // The first `len` bytes in memory order, whatever the endianness.
            u64::from_ne_bytes(std::array::from_fn(|i| if i < len { 0xff } else { 0 }))
        };
        let tail = match len.checked_sub(8) {
            Some(at) if len > 8 => word_at(bytes, at).unwrap_or(0),
            _ => 0,
        };
        Self {
            prefix: prefix.into(),
            level,
            head: head_word(bytes),
            head_mask,
            tail,
        }
    }

    /// `target` is the prefix or lies below it.
    #[inline]
    fn matches(&self, target: &[u8]) -> bool {
        let prefix = self.prefix.as_bytes();
        let len = prefix.len();
        if target.len() < len {
            return false;
        }
        // Word comparisons first: most targets differ in their first bytes, and a
        // general comparison costs a call to `memcmp`.
        if head_word(target) & self.head_mask != self.head {
            return false;
        }
        let rest_equal = match len {
            0..=8 => true,
            9..=16 => word_at(target, len - 8) == Some(self.tail),
            _ => target.get(8..len) == prefix.get(8..),
        };
        rest_equal
            && match target.get(len..) {
                Some(rest) => rest.is_empty() || rest.starts_with(b"::"),
                None => false,
            }
    }
}

/// The 8 bytes of `bytes` from `at`, as a word in memory order.
#[inline]
fn word_at(bytes: &[u8], at: usize) -> Option<u64> {
    let chunk: [u8; 8] = bytes.get(at..at.checked_add(8)?)?.try_into().ok()?;
    Some(u64::from_ne_bytes(chunk))
}

/// The first 8 bytes of `bytes` as a word (in memory order), zero-padded.
#[inline]
fn head_word(bytes: &[u8]) -> u64 {
    match word_at(bytes, 0) {
        Some(word) => word,
        None => {
            let mut word = [0u8; 8];
            for (to, from) in word.iter_mut().zip(bytes) {
                *to = *from;
            }
            u64::from_ne_bytes(word)
        }
    }
}

impl TargetFilter {
    pub(crate) fn new(default: LevelFilter) -> Self {
        Self {
            default,
            directives: Vec::new(),
            max: default,
            min: default,
        }
    }

    pub(crate) fn set_default(&mut self, level: LevelFilter) {
        self.default = level;
        self.recompute_bounds();
    }

    /// Sets the level of `target` and of every target below it (`target::...`).
    pub(crate) fn set_target(&mut self, target: &str, level: LevelFilter) {
        match self.directives.iter_mut().find(|d| &*d.prefix == target) {
            Some(directive) => directive.level = level,
            None => self.directives.push(Directive::new(target, level)),
        }
        self.directives.sort_by(|a, b| {
            b.prefix
                .len()
                .cmp(&a.prefix.len())
                .then_with(|| a.prefix.cmp(&b.prefix))
        });
        self.recompute_bounds();
    }

    fn recompute_bounds(&mut self) {
        let levels = self.directives.iter().map(|d| d.level);
        self.max = levels.clone().fold(self.default, std::cmp::max);
        self.min = levels.fold(self.default, std::cmp::min);
    }

    pub(crate) fn max(&self) -> LevelFilter {
        self.max
    }

    /// The level that applies to `target`.
    pub(crate) fn level_for(&self, target: &str) -> LevelFilter {
        let target = target.as_bytes();
        for directive in &self.directives {
            if directive.matches(target) {
                return directive.level;
            }
        }
        self.default
    }

    #[inline]
    pub(crate) fn enabled(&self, level: Level, target: &str) -> bool {
        // A level nobody wants costs one comparison, a level everybody wants two;
        // only the levels in between look at the target.
        level <= self.max && (level <= self.min || level <= self.level_for(target))
    }

    /// Parses `env_logger`-style directives: comma-separated `level` or `target=level`
    /// items, e.g. `info,hyper=warn,my_app::engine=trace`. Later items win.
    pub(crate) fn parse_into(&mut self, spec: &str) -> Result<(), FilterParseError> {
        for (index, item) in spec.split(',').enumerate() {
            let item = item.trim();
            if item.is_empty() {
                continue;
            }
            match item.split_once('=') {
                None => match parse_level(item) {
                    Some(level) => self.set_default(level),
                    // A bare word that is not a level is a target enabled at every level.
                    None => self.set_target(item, LevelFilter::Trace),
                },
                Some((target, level)) => {
                    let target = target.trim();
                    let level_text = level.trim();
                    let level = parse_level(level_text).ok_or_else(|| FilterParseError {
                        item: index + 1,
                        text: item.chars().take(64).collect(),
                        reason: format!(
                            "unknown level {level_text:?} (expected off, error, warn, info, debug or trace)"
                        ),
                    })?;
                    if target.is_empty() {
                        return Err(FilterParseError {
                            item: index + 1,
                            text: item.chars().take(64).collect(),
                            reason: "empty target before '='".into(),
                        });
                    }
                    self.set_target(target, level);
                }
            }
        }
        Ok(())
    }
}

fn parse_level(text: &str) -> Option<LevelFilter> {
    if text.eq_ignore_ascii_case("warning") {
        return Some(LevelFilter::Warn);
    }
    text.parse().ok()
}

/// A filter specification that cannot be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid log filter item {item} ({text:?}): {reason}")]
pub struct FilterParseError {
    /// The 1-based position of the bad item in the comma-separated list.
    pub item: usize,
    /// The bad item (at most 64 characters of it).
    pub text: String,
    /// What is wrong with it.
    pub reason: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn most_specific_target_wins_at_module_boundaries() {
        let mut f = TargetFilter::new(LevelFilter::Info);
        f.set_target("hyper", LevelFilter::Warn);
        f.set_target("a_long_crate_name::module", LevelFilter::Off);
        assert!(!f.enabled(Level::Error, "a_long_crate_name::module::x"));
        assert!(f.enabled(Level::Info, "a_long_crate_name::modulex"));
        assert!(f.enabled(Level::Info, "a_long_crate_name::other"));
        assert!(!f.enabled(Level::Info, "hyper"));
        assert!(f.enabled(Level::Info, "hype"));
        assert!(f.enabled(Level::Info, ""));
        f.set_target("exactly_sixteen_", LevelFilter::Off);
        assert!(!f.enabled(Level::Error, "exactly_sixteen_::x"));
        assert!(f.enabled(Level::Info, "exactly_sixteen?::x"));
        assert!(f.enabled(Level::Info, "exactly_sixteen"));
        f.set_target("nine_char", LevelFilter::Off);
        assert!(!f.enabled(Level::Error, "nine_char"));
        assert!(f.enabled(Level::Info, "nine_chaX"));
        f.set_target("", LevelFilter::Error);
        assert!(!f.enabled(Level::Warn, ""));
        assert!(f.enabled(Level::Warn, "other"));
        f.set_target("app::engine", LevelFilter::Trace);
        assert!(f.enabled(Level::Info, "app"));
        assert!(!f.enabled(Level::Debug, "app"));
        assert!(f.enabled(Level::Trace, "app::engine::fill"));
        assert!(!f.enabled(Level::Info, "hyper::client"));
        // `hyperx` is not below `hyper`.
        assert!(f.enabled(Level::Info, "hyperx"));
        assert_eq!(f.max(), LevelFilter::Trace);
    }

    #[test]
    fn parses_env_logger_style_specs_and_reports_bad_items() {
        let mut f = TargetFilter::new(LevelFilter::Off);
        f.parse_into("warn, app=debug ,net::ws=off,verbose")
            .unwrap();
        assert_eq!(f.level_for("other"), LevelFilter::Warn);
        assert_eq!(f.level_for("app::x"), LevelFilter::Debug);
        assert_eq!(f.level_for("net::ws"), LevelFilter::Off);
        assert_eq!(f.level_for("verbose"), LevelFilter::Trace);
        let err = f.parse_into("info,app=loud").unwrap_err();
        assert_eq!(err.item, 2);
        assert!(err.to_string().contains("\"loud\""), "{err}");
        assert!(f.parse_into("=info").is_err());
    }
}
