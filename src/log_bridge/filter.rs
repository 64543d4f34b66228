//! Level filters per target, in the style of `env_logger` (`info,hyper=warn,my_app::engine=trace`).

use log::{Level, LevelFilter};

/// A default level and levels for targets, the most specific target winning.
#[derive(Debug, Clone)]
pub(crate) struct TargetFilter {
    default: LevelFilter,
    /// `(target prefix, level)`, longest prefix first.
    directives: Vec<(Box<str>, LevelFilter)>,
    /// The most verbose level any directive or the default lets through.
    max: LevelFilter,
}

impl TargetFilter {
    pub(crate) fn new(default: LevelFilter) -> Self {
        Self {
            default,
            directives: Vec::new(),
            max: default,
        }
    }

    pub(crate) fn set_default(&mut self, level: LevelFilter) {
        self.default = level;
        self.recompute_max();
    }

    /// Sets the level of `target` and of every target below it (`target::...`).
    pub(crate) fn set_target(&mut self, target: &str, level: LevelFilter) {
        match self.directives.iter_mut().find(|(t, _)| &**t == target) {
            Some((_, l)) => *l = level,
            None => self.directives.push((target.into(), level)),
        }
        // Longest first, so the first match is the most specific one.
        self.directives
            .sort_by(|(a, _), (b, _)| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        self.recompute_max();
    }

    fn recompute_max(&mut self) {
        self.max = self
            .directives
            .iter()
            .map(|(_, l)| *l)
            .fold(self.default, std::cmp::max);
    }

    pub(crate) fn max(&self) -> LevelFilter {
        self.max
    }

    /// The level that applies to `target`.
    pub(crate) fn level_for(&self, target: &str) -> LevelFilter {
        for (prefix, level) in &self.directives {
            if target_matches(target, prefix) {
                return *level;
            }
        }
        self.default
    }

    #[inline]
    pub(crate) fn enabled(&self, level: Level, target: &str) -> bool {
        // The common case (a level nobody wants) costs one comparison; without
        // directives `max` is the default level.
        level <= self.max && (self.directives.is_empty() || level <= self.level_for(target))
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

/// `target` is `prefix` or lies below it (`prefix::...`).
fn target_matches(target: &str, prefix: &str) -> bool {
    match target.strip_prefix(prefix) {
        Some(rest) => rest.is_empty() || rest.starts_with("::"),
        None => false,
    }
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
