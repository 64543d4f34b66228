//! The terminal watcher run as a real process against real servers on 127.0.0.1.

// The library's test helpers, shared by path: a real server and real clients, and a
// process whose output is collected as it comes.
#[path = "../../../tests/process_support/mod.rs"]
mod process_support;
#[path = "../../../tests/server_support/mod.rs"]
mod server_support;

use std::net::SocketAddr;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use backtest_stream::server::{Server, ServerConfig};
use backtest_stream::wire::{BacktestComplete, Event, LogEntry, LogLevel, Topic};
use server_support::{TestServer, id, progress, start, ts};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

use process_support::{WAIT, Watched};

fn watcher(url: &str, extra: &[&str]) -> Watched {
    let mut command = Command::new(env!("CARGO_BIN_EXE_watch"));
    command.arg(url).args(extra);
    Watched::spawn(command)
}

fn log(run: &str, level: LogLevel, message: &str) -> Event {
    Event::LogEntry(LogEntry {
        backtest_id: Some(id(run)),
        timestamp: ts(),
        level,
        message: message.into(),
        module: "watch_example".into(),
        function: "test".into(),
        line: 1,
        logger_name: format!("backtest.{run}"),
    })
}

fn complete(run: &str, final_balance: f64) -> Event {
    Event::BacktestComplete(BacktestComplete {
        backtest_id: id(run),
        final_balance,
        total_trades: 17,
        win_rate: 58.82,
        sharpe_ratio: f64::NAN,
        drawdown: 3.25,
        return_pct: 23.4567,
        duration_seconds: 1.5,
        timestamp: ts(),
        results: Default::default(),
    })
}

fn occurrences(haystack: &str, needle: &str) -> usize {
    haystack.matches(needle).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watcher_follows_a_live_run_and_prints_its_results() {
    let server = TestServer::start(ServerConfig::default()).await;
    let mut watch = watcher(&server.url(), &["--exit-after-complete", "0.5"]);
    server
        .wait_stats(|s| s.subscriptions.get(&Topic::BACKTEST) == Some(&1))
        .await;

    let run = "live-run-1";
    server.publish(Topic::BACKTEST, start(run));
    for bars in [100, 200, 300] {
        server.publish(Topic::BACKTEST, progress(run, bars));
    }
    server.publish(
        Topic::BACKTEST,
        log(run, LogLevel::Warning, "margin is getting thin"),
    );
    server.publish(Topic::BACKTEST, complete(run, 12_345.67));

    let status = watch.wait_exit().await;
    let out = watch.stdout();
    assert!(
        status.success(),
        "exit {status}\nstdout:\n{out}\nstderr:\n{}",
        watch.stderr()
    );
    assert!(out.contains(&format!("started {run}")), "{out}");
    assert!(out.contains("margin is getting thin"), "{out}");
    assert!(out.contains("WARN"), "{out}");
    assert!(out.contains(&format!("complete {run}")), "{out}");
    assert!(out.contains("12345.67"), "{out}");
    assert!(out.contains("23.46 %"), "return: {out}");
    // A Sharpe ratio sent as null is shown as a dash.
    let sharpe = out
        .lines()
        .find(|l| l.trim_start().starts_with("Sharpe"))
        .expect("a Sharpe row");
    assert!(sharpe.ends_with('—'), "{sharpe:?}");
    // Not a terminal: no colour codes, no bar drawing.
    assert!(!out.contains('\x1b'), "{out:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watcher_shows_runs_that_ran_before_it_connected_and_their_errors() {
    let server = TestServer::start(ServerConfig::default()).await;
    server.publish(Topic::BACKTEST, start("early-ok"));
    server.publish(Topic::BACKTEST, progress("early-ok", 10_000));
    server.publish(Topic::BACKTEST, complete("early-ok", 9_876.5));
    server.publish(Topic::BACKTEST, start("early-bad"));
    server.publish(Topic::BACKTEST, server_support::error("early-bad"));
    server.wait_stats(|s| s.events_published == 5).await;

    let mut watch = watcher(&server.url(), &["--exit-after-complete", "0.2"]);
    let status = watch.wait_exit().await;
    let out = watch.stdout();
    assert!(status.success(), "exit {status}\n{out}\n{}", watch.stderr());
    assert!(out.contains("complete early-ok"), "{out}");
    assert!(out.contains("9876.50"), "{out}");
    assert!(
        out.contains("backtest_error early-bad: Strategy execution failed"),
        "{out}"
    );
    assert!(out.contains("ZeroDivisionError"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watcher_with_a_run_filter_shows_only_that_run() {
    let server = TestServer::start(ServerConfig::default()).await;
    let mut watch = watcher(
        &server.url(),
        &["--backtest-id", "mine", "--exit-after-complete", "1"],
    );
    server
        .wait_stats(|s| s.subscriptions.get(&Topic::BACKTEST) == Some(&1))
        .await;
    for run in ["other", "mine"] {
        server.publish(Topic::BACKTEST, start(run));
        server.publish(
            Topic::BACKTEST,
            log(run, LogLevel::Info, &format!("fill of {run}")),
        );
    }
    server.publish(Topic::BACKTEST, complete("other", 1.0));
    server.publish(Topic::BACKTEST, complete("mine", 2.0));
    let status = watch.wait_exit().await;
    let out = watch.stdout();
    assert!(status.success(), "exit {status}\n{out}\n{}", watch.stderr());
    assert!(out.contains("fill of mine"), "{out}");
    assert!(!out.contains("other"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watcher_exits_with_a_clear_message_when_the_server_is_unreachable() {
    // A port that was free a moment ago: nothing listens on it.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr").port()
    };
    let url = format!("ws://127.0.0.1:{port}/ws");
    let mut watch = watcher(&url, &[]);
    let status = watch.wait_exit().await;
    assert!(!status.success(), "exit {status}");
    assert_eq!(
        watch.stderr().trim_end(),
        format!("error: cannot connect to {url}: connection refused")
    );
}

/// A TCP relay between the watcher and the server that the test can cut.
struct Relay {
    addr: SocketAddr,
    down: Arc<std::sync::atomic::AtomicBool>,
    links: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl Relay {
    async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind relay");
        let addr = listener.local_addr().expect("relay addr");
        let down = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let links: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>> = Arc::default();
        let (is_down, all) = (Arc::clone(&down), Arc::clone(&links));
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if is_down.load(std::sync::atomic::Ordering::SeqCst) {
                    drop(client); // refused while the link is down
                    continue;
                }
                let link = tokio::spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                all.lock().expect("links").push(link);
            }
        });
        Self { addr, down, links }
    }

    /// Cuts every open connection and refuses new ones.
    fn cut(&self) {
        self.down.store(true, std::sync::atomic::Ordering::SeqCst);
        for link in self.links.lock().expect("links").drain(..) {
            link.abort();
        }
    }

    fn restore(&self) {
        self.down.store(false, std::sync::atomic::Ordering::SeqCst);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watcher_resumes_after_a_dropped_connection_without_losing_or_repeating_events() {
    let server = TestServer::start(ServerConfig::default()).await;
    let relay = Relay::start(server.addr).await;
    let url = format!("ws://{}/ws", relay.addr);
    let mut watch = watcher(&url, &["--exit-after-complete", "0.3"]);
    server
        .wait_stats(|s| s.subscriptions.get(&Topic::BACKTEST) == Some(&1))
        .await;

    let run = "resumed-run";
    server.publish(Topic::BACKTEST, start(run));
    server.publish(
        Topic::BACKTEST,
        log(run, LogLevel::Info, "line-before-drop"),
    );
    watch.wait_for("line-before-drop").await;

    relay.cut();
    server.wait_stats(|s| s.connections == 0).await;
    watch.wait_for("connection lost").await;
    for n in 1..=3 {
        server.publish(
            Topic::BACKTEST,
            log(run, LogLevel::Info, &format!("line-while-down-{n}")),
        );
    }
    server.publish(Topic::BACKTEST, progress(run, 5_000));
    relay.restore();
    watch.wait_for("line-while-down-3").await;

    server.publish(
        Topic::BACKTEST,
        log(run, LogLevel::Info, "line-after-resume"),
    );
    server.publish(Topic::BACKTEST, complete(run, 11_111.11));
    let status = watch.wait_exit().await;
    let out = watch.stdout();
    assert!(status.success(), "exit {status}\n{out}\n{}", watch.stderr());
    assert!(out.contains("reconnected"), "{out}");
    // Resumed with since: no snapshot reload was needed.
    assert!(!out.contains("loading its current state"), "{out}");
    for line in [
        "line-before-drop",
        "line-while-down-1",
        "line-while-down-2",
        "line-while-down-3",
        "line-after-resume",
    ] {
        assert_eq!(occurrences(&out, line), 1, "{line} once in:\n{out}");
    }
    assert_eq!(occurrences(&out, &format!("started {run}")), 1, "{out}");
    assert!(out.contains("11111.11"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watcher_fails_over_to_its_next_url_and_resumes_there() {
    // Two ways to one stream, as two gateways of one Redis are (same seq, same epoch).
    let server = TestServer::start(ServerConfig::default()).await;
    let (first, second) = (
        Relay::start(server.addr).await,
        Relay::start(server.addr).await,
    );
    let urls = [first.addr, second.addr].map(|addr| format!("ws://{addr}/ws"));
    let mut command = Command::new(env!("CARGO_BIN_EXE_watch"));
    command.args(&urls).args(["--exit-after-complete", "0.3"]);
    let mut watch = Watched::spawn(command);
    server
        .wait_stats(|s| s.subscriptions.get(&Topic::BACKTEST) == Some(&1))
        .await;
    let run = "failed-over";
    server.publish(Topic::BACKTEST, start(run));
    server.publish(Topic::BACKTEST, log(run, LogLevel::Info, "line-on-first"));
    watch.wait_for("line-on-first").await;

    // The first "gateway" dies for good; what is published meanwhile comes from the second.
    first.cut();
    server.wait_stats(|s| s.connections == 0).await;
    for n in 1..=3 {
        let line = format!("line-while-moving-{n}");
        server.publish(Topic::BACKTEST, log(run, LogLevel::Info, &line));
    }
    watch.wait_for(&format!("reconnected to {}", urls[1])).await;
    watch.wait_for("line-while-moving-3").await;
    server.publish(Topic::BACKTEST, complete(run, 12_345.67));
    let status = watch.wait_exit().await;
    let out = watch.stdout();
    assert!(status.success(), "exit {status}\n{out}\n{}", watch.stderr());
    assert!(
        !out.contains("loading its current state"),
        "resumed, not reloaded: {out}"
    );
    for line in [
        "line-on-first",
        "line-while-moving-1",
        "line-while-moving-3",
    ] {
        assert_eq!(occurrences(&out, line), 1, "{line} once in:\n{out}");
    }
    assert!(out.contains("12345.67"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watcher_reports_missed_events_and_reloads_when_the_history_no_longer_reaches_back() {
    let history = 4;
    let server = TestServer::start(ServerConfig::default().history_size(history)).await;
    let relay = Relay::start(server.addr).await;
    let url = format!("ws://{}/ws", relay.addr);
    let mut watch = watcher(&url, &["--exit-after-complete", "0.3"]);
    server
        .wait_stats(|s| s.subscriptions.get(&Topic::BACKTEST) == Some(&1))
        .await;
    let run = "evicted-run";
    server.publish(Topic::BACKTEST, start(run));
    server.publish(Topic::BACKTEST, log(run, LogLevel::Info, "seen-line"));
    watch.wait_for("seen-line").await;

    relay.cut();
    server.wait_stats(|s| s.connections == 0).await;
    let while_down = 10;
    for n in 1..=while_down {
        server.publish(
            Topic::BACKTEST,
            log(run, LogLevel::Info, &format!("down-line-{n}.")),
        );
    }
    relay.restore();
    let missed = while_down - history;
    watch.wait_for(&format!("missed {missed} event(s)")).await;
    watch.wait_for("no longer holds every missed event").await;
    server.publish(Topic::BACKTEST, complete(run, 4_242.0));

    let status = watch.wait_exit().await;
    let out = watch.stdout();
    assert!(status.success(), "exit {status}\n{out}\n{}", watch.stderr());
    for n in 1..=while_down {
        let expected = usize::from(n > missed);
        assert_eq!(
            occurrences(&out, &format!("down-line-{n}.")),
            expected,
            "line {n}:\n{out}"
        );
    }
    // The snapshot reload does not start the run a second time.
    assert_eq!(occurrences(&out, &format!("started {run}")), 1, "{out}");
    assert!(out.contains("4242.00"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watcher_exits_with_the_servers_reason_when_its_subscription_is_refused() {
    let server = TestServer::start(ServerConfig::default().max_subscriptions(0)).await;
    let mut watch = watcher(&server.url(), &[]);
    let status = watch.wait_exit().await;
    assert!(!status.success(), "exit {status}");
    let stderr = watch.stderr();
    assert!(
        stderr.starts_with(&format!(
            "error: {} refused the subscription: ",
            server.url()
        )),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
}

/// Starts a server on `addr` (a fixed port after the first); its stop handle.
async fn serve_on(
    addr: SocketAddr,
) -> (
    SocketAddr,
    backtest_stream::server::Hub,
    oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
) {
    let deadline = Instant::now() + WAIT;
    let server = loop {
        match Server::bind(ServerConfig::default().bind(addr)).await {
            Ok(server) => break server,
            Err(error) => {
                assert!(Instant::now() < deadline, "cannot bind {addr}: {error}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    let local = server.local_addr();
    let hub = server.hub().clone();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let _ = server
            .run_until(async {
                let _ = stopped.await;
            })
            .await;
    });
    (local, hub, stop, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watcher_reloads_state_after_the_server_restarts() {
    let (addr, hub, stop, task) = serve_on(SocketAddr::from(([127, 0, 0, 1], 0))).await;
    let url = format!("ws://{addr}/ws");
    let mut watch = watcher(&url, &["--exit-after-complete", "0.3"]);
    let publish = |hub: &backtest_stream::server::Hub, event: Event| {
        hub.publish(&backtest_stream::wire::Envelope::new(
            Topic::BACKTEST,
            event,
        ))
        .expect("publish");
    };
    let deadline = Instant::now() + WAIT;
    while hub.stats().subscriptions.get(&Topic::BACKTEST) != Some(&1) {
        assert!(Instant::now() < deadline, "the watcher never subscribed");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    publish(&hub, start("before-restart"));
    publish(&hub, progress("before-restart", 100));
    watch.wait_for("started before-restart").await;

    let _ = stop.send(());
    task.await.expect("server task");
    watch.wait_for("connection lost").await;

    // A new server (new epoch) on the same port: the watcher cannot resume, so it loads
    // the new server's state with a snapshot, which holds a run made while it was away.
    let (_, hub, stop, task) = serve_on(addr).await;
    publish(&hub, start("after-restart"));
    publish(&hub, progress("after-restart", 100));
    watch.wait_for("server restarted").await;
    // The run the old server was streaming will never end: it is closed as lost, so
    // that --exit-after-complete still ends.
    watch
        .wait_for("lost track of 1 unfinished run(s): before-restart")
        .await;
    watch.wait_for("started after-restart").await;
    publish(&hub, complete("after-restart", 200.5));

    let status = watch.wait_exit().await;
    let out = watch.stdout();
    assert!(status.success(), "exit {status}\n{out}\n{}", watch.stderr());
    assert!(out.contains("complete after-restart"), "{out}");
    assert!(out.contains("200.50"), "{out}");
    assert!(!out.contains("complete before-restart"), "{out}");
    let _ = stop.send(());
    let _ = task.await;
}
