//! The browser harness of the dashboard tests: chromedriver and headless Chromium, and
//! readers of the page's stable test hooks.
#![allow(dead_code)]

pub mod auth_flow;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder};
use serde_json::{Value, json};

use crate::demo_support::Demo;

/// Set to `1` (as `.ci/run` does), a missing browser fails the tests instead of skipping
/// them.
pub const REQUIRE_ENV: &str = "BACKTEST_STREAM_REQUIRE_BROWSER";

pub type TestResult<T = ()> = Result<T, Box<dyn std::error::Error>>;

pub fn find_in_path(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| names.iter().map(move |n| dir.join(n)))
        .find(|p| p.is_file())
}

/// chromedriver, in a process group of its own with the Chromium it starts; the whole
/// group is killed when dropped, so a test that fails half-way leaves no browser behind.
pub struct Driver {
    child: Child,
    url: String,
}

impl Driver {
    fn start(binary: &Path) -> Driver {
        // A free port: bind port 0, read it, release it for chromedriver.
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let child = Command::new(binary)
            .arg(format!("--port={port}"))
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let mut driver = Driver {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            if let Ok(Some(status)) = driver.child.try_wait() {
                panic!("chromedriver exited at start: {status}");
            }
            assert!(
                Instant::now() < deadline,
                "chromedriver did not listen on {port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        driver
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // The group's id is chromedriver's pid (`process_group(0)`).
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Headless Chromium through chromedriver, with a fresh profile.
pub struct Browser {
    pub client: Client,
    driver: Driver,
    profile: PathBuf,
}

impl Browser {
    /// `None` (after saying why, past the test harness's capture) when Chromium or
    /// chromedriver is missing and the environment does not require them.
    pub async fn start(name: &str) -> Option<Browser> {
        let chromium = find_in_path(&["chromium", "chromium-browser", "google-chrome"]);
        let chromedriver = find_in_path(&["chromedriver"]);
        let (Some(chromium), Some(chromedriver)) = (chromium, chromedriver) else {
            let message = "browser test skipped: `chromium` and `chromedriver` are not both on \
                           the PATH (Debian: apt-get install chromium chromium-driver)";
            if std::env::var(REQUIRE_ENV).is_ok_and(|v| v == "1") {
                panic!("{message}, and {REQUIRE_ENV}=1 requires them");
            }
            // Straight to stderr: libtest captures only the print macros.
            use std::io::Write as _;
            let _ = writeln!(std::io::stderr(), "{name}: {message}");
            return None;
        };
        let profile = std::env::temp_dir().join(format!(
            "backtest-stream-chromium-{}-{name}",
            std::process::id()
        ));
        // On a loaded machine chromedriver now and then resets the first session
        // request: a fresh chromedriver and profile get another try.
        let mut attempt = 0;
        let (client, driver) = loop {
            attempt += 1;
            let driver = Driver::start(&chromedriver);
            let _ = std::fs::remove_dir_all(&profile);
            std::fs::create_dir_all(&profile).expect("a temp profile directory");
            match session(&chromium, &profile, &driver.url).await {
                Ok(client) => break (client, driver),
                Err(error) if attempt < 3 => {
                    use std::io::Write as _;
                    let _ = writeln!(
                        std::io::stderr(),
                        "{name}: no WebDriver session ({error}); again"
                    );
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                Err(error) => panic!("a WebDriver session with headless Chromium: {error}"),
            }
        };
        Some(Browser {
            client,
            driver,
            profile,
        })
    }

    /// Ends the session, chromedriver and the profile, then reports the outcome.
    pub async fn finish(self, outcome: Result<TestResult, tokio::time::error::Elapsed>) {
        let _ = self.client.close().await;
        drop(self.driver);
        let _ = std::fs::remove_dir_all(&self.profile);
        match outcome {
            Ok(Ok(())) => {}
            Ok(Err(error)) => panic!("{error}"),
            Err(_) => panic!("the browser test took more than {BUDGET:?}"),
        }
    }
}

/// A WebDriver session of headless Chromium (with a profile of its own) through the
/// chromedriver at `url`.
async fn session(
    chromium: &Path,
    profile: &Path,
    url: &str,
) -> Result<Client, fantoccini::error::NewSessionError> {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": chromium,
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage", "--window-size=1440,1180", "--hide-scrollbars",
                format!("--user-data-dir={}", profile.display()),
            ],
        }),
    );
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(url)
        .await
}

pub const BUDGET: Duration = Duration::from_secs(180);

pub async fn wait_live(client: &Client) -> TestResult {
    wait_until(
        client,
        "the WebSocket is live",
        Duration::from_secs(30),
        || async {
            let state = client
                .execute(
                    "const b = document.querySelector('#connection-status');
                 return b.getAttribute('data-state') + ' ' + b.textContent.trim();",
                    vec![],
                )
                .await?;
            Ok(state.as_str() == Some("open Live"))
        },
    )
    .await
}

pub async fn badge_state(client: &Client) -> TestResult<String> {
    let state = client
        .execute(
            "return document.querySelector('#connection-status').getAttribute('data-state');",
            vec![],
        )
        .await?;
    Ok(state.as_str().unwrap_or_default().to_owned())
}

/// Starts a run of 5,000 bars at 3 ms a bar (about 15 s) through the API and waits
/// until it has reached `min_progress` %, still running; returns its progress then.
pub async fn start_slow_run(demo: &Demo, id: &str, min_progress: f64) -> TestResult<f64> {
    let (status, reply) = demo.post(
        "/api/v1/backtest/run",
        &format!(r#"{{"backtest_id":"{id}","bars":5000,"bar_delay_us":3000,"fast":5,"slow":20}}"#),
    );
    assert_eq!(status, 202, "{reply}");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, run) = demo.get(&format!("/api/v1/backtest/{id}"));
        let progress = run["progress"].as_f64().unwrap_or(0.0);
        if progress >= min_progress {
            assert_eq!(
                run["status"], "running",
                "the run ended before the page opened: {run}"
            );
            return Ok(progress);
        }
        if Instant::now() >= deadline {
            return Err(format!("the run did not reach {min_progress} % in 60 s: {run}").into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A run card's status, progress, chart (through its test hooks) and log seqs, and
/// how many lagged notices the page shows; `null` while the card does not exist.
pub async fn read_run_chart(client: &Client, id: &str) -> TestResult<Value> {
    let value = client
        .execute(
            r#"const card = [...document.querySelectorAll('.run-card')]
                 .find((c) => c.getAttribute('data-backtest-id') === arguments[0]);
               if (!card) return null;
               const canvas = card.querySelector('canvas.pnl-chart');
               return {
                 status: card.getAttribute('data-status'),
                 progress: Number(card.querySelector('.progress-bar').getAttribute('data-progress')),
                 started: card.querySelector('.meta .started') != null,
                 points: Number(canvas.getAttribute('data-points') || 0),
                 firstBar: Number(canvas.getAttribute('data-first-bar') || -1),
                 lastBar: Number(canvas.getAttribute('data-last-bar') || -1),
                 seqs: [...card.querySelectorAll('.log-line')].map((l) => Number(l.getAttribute('data-seq'))),
                 lagged: document.querySelectorAll('.lagged-notice').length,
                 historyMissed: document.body.getAttribute('data-history-missed'),
               };"#,
            vec![json!(id)],
        )
        .await?;
    Ok(value)
}

pub async fn wait_for_error_box(client: &Client) -> TestResult<String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let text = client
            .execute(
                "const e = document.querySelector(
                   '.run-card[data-backtest-id=\"browser-broken\"][data-status=\"error\"] .error-box .error-message');
                 return e ? e.textContent : null;",
                vec![],
            )
            .await?;
        if let Value::String(text) = text {
            return Ok(text);
        }
        if Instant::now() >= deadline {
            return Err("the failed run's error box did not appear within 30 s".into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Lets run `id` finish on the page: the chart then covers the whole run, in bars
/// order, once each; the bar reached 100 % without moving backwards on the way (checked
/// by sampling).
pub async fn follow_to_completion(client: &Client, id: &str) -> TestResult {
    let mut last_progress = 0.0;
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let card = read_run_chart(client, id).await?;
        let progress = card["progress"].as_f64().unwrap_or(0.0);
        assert!(
            progress >= last_progress,
            "the progress bar moved backwards: {last_progress} -> {progress}"
        );
        last_progress = progress;
        if card["status"] == "complete" {
            break;
        }
        if Instant::now() >= deadline {
            return Err(format!("the run did not complete on the page: {card}").into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let points = client
        .execute(
            r#"const c = [...document.querySelectorAll('.run-card')]
                 .find((card) => card.getAttribute('data-backtest-id') === arguments[0])
                 .querySelector('canvas.pnl-chart');
               return Number(c.getAttribute('data-points'));"#,
            vec![json!(id)],
        )
        .await?
        .as_u64()
        .unwrap_or(0);
    assert!(
        points >= 190,
        "about 200 progress points over the whole run, got {points}"
    );
    Ok(())
}

/// What the page shows of each run card, read through the page's stable hooks.
pub async fn read_cards(client: &Client) -> TestResult<Vec<Value>> {
    let value = client
        .execute(
            r#"return [...document.querySelectorAll('#runs .run-card')].map((card) => {
                 const balance = card.querySelector('.results .result-final-balance');
                 return {
                   id: card.getAttribute('data-backtest-id'),
                   status: card.getAttribute('data-status'),
                   progress: card.querySelector('.progress-bar').getAttribute('data-progress'),
                   progressText: card.querySelector('.progress-text').textContent,
                   finalBalance: balance ? balance.getAttribute('data-value') : null,
                   finalBalanceText: balance ? balance.textContent : null,
                   logs: [...card.querySelectorAll('.log-line')].map((l) => ({
                     id: l.getAttribute('data-backtest-id'),
                     message: l.querySelector('.log-msg').textContent,
                   })),
                 };
               });"#,
            vec![],
        )
        .await?;
    match value {
        Value::Array(cards) => Ok(cards),
        other => Err(format!("unexpected cards: {other}").into()),
    }
}

pub async fn wait_until<F, Fut>(
    _client: &Client,
    what: &str,
    timeout: Duration,
    mut check: F,
) -> TestResult
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = TestResult<bool>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if check().await? {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!("timed out after {timeout:?} waiting until {what}").into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
