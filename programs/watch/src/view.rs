//! What the watcher shows: a live progress bar per run, the runs' log lines, and a
//! results table when a run ends (plain lines when stdout is not a terminal).

use std::collections::HashMap;
use std::io::IsTerminal;
use std::time::Duration;

use backtest_stream::wire::{
    BacktestComplete, BacktestError, BacktestProgress, BacktestStart, Event, LogEntry, LogLevel,
};
use console::Term;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::time::Instant;

/// One run on screen.
struct Run {
    bar: ProgressBar,
    label: String,
    ended: bool,
    /// Ended by a server restart that forgot it, not by its own terminal event.
    lost: bool,
}

/// Which log lines and tables to show.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Filter {
    /// The lowest level of log line shown.
    pub(crate) level: LogLevel,
    /// Only runs' starts and ends and the watcher's notices: no log lines, no tables.
    pub(crate) quiet: bool,
}

/// Width of the run-name column.
const NAME_WIDTH: usize = 12;

/// What the watcher shows, and the state behind it.
pub(crate) struct View {
    multi: MultiProgress,
    /// Bars are drawn (stdout is a terminal); else lines are printed plainly.
    live: bool,
    colour: bool,
    runs: HashMap<String, Run>,
    exit_after: Option<Duration>,
    /// When the last run ended (or a new run began).
    last_change: Instant,
    filter: Filter,
}

impl View {
    pub(crate) fn new(exit_after: Option<Duration>, filter: Filter) -> Self {
        let terminal = std::io::stdout().is_terminal();
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stdout());
        let live = terminal && !multi.is_hidden();
        Self {
            multi,
            live,
            colour: terminal,
            runs: HashMap::new(),
            exit_after,
            last_change: Instant::now(),
            filter,
        }
    }

    /// Whether the watcher knows run `id` (seen in the stream or a snapshot).
    pub(crate) fn knows(&self, id: &str) -> bool {
        self.runs.contains_key(id)
    }

    /// `text` wrapped at word boundaries to the terminal's width (unchanged when stdout
    /// is not a terminal), continuation lines indented by `indent` spaces.
    fn wrap(&self, text: &str, indent: usize) -> String {
        if !self.live {
            return text.to_string();
        }
        let width = usize::from(Term::stdout().size().1).max(indent + 20);
        wrap(text, width, indent)
    }

    /// Prints a line above the bars.
    fn line(&self, text: &str) {
        if self.live {
            let _ = self.multi.println(text);
        } else {
            println!("{text}");
        }
    }

    fn paint(&self, code: &str, text: &str) -> String {
        if self.colour {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }

    pub(crate) fn note(&self, text: &str) {
        self.line(&self.paint("2", &format!("· {text}")));
    }

    pub(crate) fn notice(&self, text: &str) {
        self.line(&self.paint("33", &format!("! {text}")));
    }

    /// Whether `--exit-after-complete` is satisfied.
    pub(crate) fn done(&self) -> bool {
        self.exit_after.is_some_and(|after| {
            !self.runs.is_empty()
                && self.runs.values().all(|run| run.ended)
                && self.last_change.elapsed() >= after
        })
    }

    /// Leaves the finished bars on screen, with the cursor below them.
    pub(crate) fn finish(&self) {
        for run in self.runs.values() {
            if !run.bar.is_finished() {
                run.bar.abandon();
            }
        }
    }

    /// Shows an event.
    pub(crate) fn event(&mut self, event: &Event) {
        match event {
            Event::BacktestStart(start) => self.start(start),
            Event::BacktestProgress(progress) => self.progress(progress),
            Event::LogEntry(entry) => self.log(entry),
            Event::BacktestComplete(complete) => self.complete(complete),
            Event::BacktestError(error) => self.error(error),
        }
    }

    /// Shows an error the server reported on a working subscription.
    pub(crate) fn server_error(&self, reason: &str) {
        self.line(&self.paint("31", &format!("server error: {reason}")));
    }

    /// The run's entry, made on first sight (a run may be first seen by its progress).
    fn run(&mut self, id: &str, total: u64) -> &mut Run {
        if !self.runs.contains_key(id) {
            let bar = self.multi.add(ProgressBar::new(total.max(1)));
            if !self.live {
                bar.set_draw_target(ProgressDrawTarget::hidden());
            }
            bar.set_style(
                ProgressStyle::with_template(
                    "{prefix:<12.bold} [{bar:30.cyan/blue}] {pos}/{len} {percent:>3}% {wide_msg}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            bar.set_prefix(short(id).to_string());
            self.last_change = Instant::now();
            self.runs.insert(
                id.to_string(),
                Run {
                    bar,
                    label: String::new(),
                    ended: false,
                    lost: false,
                },
            );
        }
        self.runs.get_mut(id).expect("inserted above")
    }

    /// A run ended: its bar leaves the live block (so the running runs stay on screen)
    /// and its one-line result is printed above.
    fn collapse(&mut self, id: &str, line: String) {
        if let Some(run) = self.runs.get_mut(id) {
            run.ended = true;
            run.bar.finish_and_clear();
            self.multi.remove(&run.bar);
        }
        self.last_change = Instant::now();
        let line = self.wrap(&line, 4);
        self.line(&line);
    }

    /// After a server restart, the runs that had not ended will never end: their bars
    /// are closed as lost.
    pub(crate) fn forget_unfinished_runs(&mut self) {
        let mut lost = Vec::new();
        for (id, run) in &mut self.runs {
            if !run.ended {
                run.lost = true;
                lost.push(id.clone());
            }
        }
        lost.sort();
        for id in &lost {
            let line = format!(
                "{} {id}: lost, the server restarted",
                self.paint("1;33", "? lost")
            );
            self.collapse(id, line);
        }
        if !lost.is_empty() {
            self.notice(&format!(
                "lost track of {} unfinished run(s): {}",
                lost.len(),
                lost.join(", ")
            ));
        }
    }

    fn start(&mut self, start: &BacktestStart) {
        let id = start.backtest_id.to_string();
        // A run id reused after a restart is a new run.
        if self.runs.get(&id).is_some_and(|run| run.lost) {
            self.runs.remove(&id);
        }
        let known = self.runs.contains_key(&id);
        let label = format!(
            "{} {} {} {} → {}",
            start.variant, start.symbol, start.timeframe, start.start_date, start.end_date
        );
        let run = self.run(&id, 1);
        if known && !run.label.is_empty() {
            return;
        }
        run.label = label.clone();
        self.line(&format!(
            "{} {id}  {label}",
            self.paint("1;36", "▶ started")
        ));
    }

    fn progress(&mut self, p: &BacktestProgress) {
        let id = p.backtest_id.to_string();
        let run = self.run(&id, p.total_bars);
        if run.ended {
            return;
        }
        run.bar.set_length(p.total_bars.max(1));
        run.bar.set_position(p.bars_processed);
        run.bar.set_message(format!(
            "{} · {} trades · P&L {}",
            p.current_date,
            p.trades_count,
            signed(p.current_pnl)
        ));
    }

    fn log(&mut self, entry: &LogEntry) {
        if self.filter.quiet || entry.level < self.filter.level {
            return;
        }
        let (code, name) = match entry.level {
            LogLevel::Error => ("31", "ERROR"),
            LogLevel::Warning => ("33", "WARN "),
            LogLevel::Info => ("32", "INFO "),
            LogLevel::Debug => ("34", "DEBUG"),
            LogLevel::Trace => ("2", "TRACE"),
        };
        let stamp = entry.timestamp.to_string();
        let time = stamp.get(11..23).unwrap_or(&stamp);
        let run = entry
            .backtest_id
            .as_ref()
            .map(|id| format!(" [{}]", short(id.as_str())))
            .unwrap_or_default();
        let text = format!("{time} {name}{run} {}", entry.message);
        let text = self.wrap(&text, 4);
        // Colour the time and level once wrapped (escape codes have no width).
        let painted = match text.get(time.len() + 1 + name.len()..) {
            Some(rest) if !self.colour => format!("{time} {name}{rest}"),
            Some(rest) => format!("{} {}{rest}", self.paint("2", time), self.paint(code, name)),
            None => text.clone(),
        };
        self.line(&painted);
    }

    fn complete(&mut self, c: &BacktestComplete) {
        let id = c.backtest_id.to_string();
        let run = self.run(&id, 1);
        if run.ended {
            return;
        }
        let label = run.label.clone();
        let summary = format!(
            "{} {:<NAME_WIDTH$} {label} · balance {} · return {} · {} trades",
            self.paint("1;32", "✔ complete"),
            id,
            number(c.final_balance, 2),
            percent(c.return_pct),
            c.total_trades
        );
        self.collapse(&id, summary);
        if self.filter.quiet {
            return;
        }
        let rows = [
            ("final balance", number(c.final_balance, 2)),
            ("return", percent(c.return_pct)),
            ("trades", c.total_trades.to_string()),
            ("win rate", percent(c.win_rate)),
            ("Sharpe", number(c.sharpe_ratio, 2)),
            ("drawdown", percent(c.drawdown)),
            ("duration", seconds(c.duration_seconds)),
        ];
        let table: Vec<String> = rows
            .iter()
            .map(|(name, value)| format!("    {name:<14} {value:>14}"))
            .collect();
        self.line(&table.join("\n"));
    }

    fn error(&mut self, e: &BacktestError) {
        let id = e.backtest_id.to_string();
        let run = self.run(&id, 1);
        if run.ended {
            return;
        }
        let mut text = format!(
            "{} {id}: {}",
            self.paint("1;31", "✘ backtest_error"),
            e.error
        );
        if !e.error_details.is_empty() && !self.filter.quiet {
            text.push_str(&format!(
                "\n    {}",
                e.error_details.replace('\n', "\n    ")
            ));
        }
        self.collapse(&id, text);
    }
}

/// `text` wrapped at spaces so that no line is wider than `width` characters (a word
/// longer than that stays whole), continuation lines indented by `indent` spaces;
/// existing line breaks are kept.
pub(crate) fn wrap(text: &str, width: usize, indent: usize) -> String {
    let mut out = String::new();
    for (n, source) in text.split('\n').enumerate() {
        if n > 0 {
            out.push('\n');
        }
        let mut column = 0;
        for (i, word) in source.split(' ').enumerate() {
            let length = word.chars().count();
            if i > 0 {
                if column + 1 + length > width && column > indent {
                    out.push('\n');
                    out.push_str(&" ".repeat(indent));
                    column = indent;
                } else {
                    out.push(' ');
                    column += 1;
                }
            }
            out.push_str(word);
            column += length;
        }
    }
    out
}

/// A short form of a run id for the bar's prefix (UUIDs are long).
fn short(id: &str) -> &str {
    match id.char_indices().nth(8) {
        Some((end, _)) if id.len() > 12 => &id[..end],
        _ => id,
    }
}

const MISSING: &str = "—";

/// A figure as `format` writes it, or a dash when it is not a number (`null` on the
/// wire: not reported).
fn figure(value: f64, format: impl FnOnce(f64) -> String) -> String {
    if value.is_finite() {
        format(value)
    } else {
        MISSING.into()
    }
}

fn number(value: f64, decimals: usize) -> String {
    figure(value, |v| format!("{v:.decimals$}"))
}

fn signed(value: f64) -> String {
    figure(value, |v| format!("{v:+.2}"))
}

fn percent(value: f64) -> String {
    figure(value, |v| format!("{v:.2} %"))
}

fn seconds(value: f64) -> String {
    figure(value, |v| format!("{v:.3} s"))
}

#[cfg(test)]
mod tests {
    use super::wrap;

    #[test]
    fn long_lines_wrap_between_words() {
        let text = "Strategy execution failed: division by zero in position sizing";
        let wrapped = wrap(text, 24, 4);
        assert!(
            wrapped.lines().all(|l| l.chars().count() <= 24),
            "{wrapped}"
        );
        assert_eq!(wrapped.replace("\n    ", " "), text);
        assert_eq!(wrap("short", 24, 4), "short");
        assert_eq!(wrap("a\nb c", 24, 4), "a\nb c");
    }
}
