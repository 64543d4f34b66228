//! The dashboard in a real browser: the demo binary on 127.0.0.1:0, headless Chromium
//! driven through chromedriver (WebDriver, with fantoccini).
//!
//! Without `chromium` and `chromedriver` on the PATH the test prints why and passes,
//! unless `BACKTEST_STREAM_REQUIRE_BROWSER=1` (as in `.ci/run`), then it fails.
//! `UPDATE_DASHBOARD_SCREENSHOT=1` saves the finished page to `docs/dashboard.png`;
//! `LATE_JOINER_SCREENSHOT=PATH` saves the page opened mid-run to PATH.
#![cfg(unix)]

mod browser_support;
mod demo_support;

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use browser_support::{
    BUDGET, Browser, TestResult, badge_state, follow_to_completion, read_cards, read_run_chart,
    start_slow_run, wait_for_error_box, wait_live, wait_until,
};
use demo_support::Demo;
use fantoccini::{Client, Locator};
use serde_json::{Value, json};

const SCREENSHOT_ENV: &str = "UPDATE_DASHBOARD_SCREENSHOT";
const LATE_SCREENSHOT_ENV: &str = "LATE_JOINER_SCREENSHOT";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_runs_started_from_the_form_finish_side_by_side() {
    let Some(browser) = Browser::start("two_runs").await else {
        return;
    };
    // The failed run reads a CSV file: runs may read files below --data-dir only.
    let data = std::env::temp_dir().join(format!("browser-demo-data-{}", std::process::id()));
    std::fs::create_dir_all(&data).expect("a data directory");
    let data_arg = data.to_str().expect("a UTF-8 path").to_owned();
    let demo = Demo::start_with(
        SocketAddr::from(([127, 0, 0, 1], 0)),
        &["--data-dir", &data_arg],
    );
    let outcome = tokio::time::timeout(BUDGET, drive(&browser.client, &demo, &data)).await;
    let _ = std::fs::remove_dir_all(&data);
    browser.finish(outcome).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_reconnects_after_the_server_restarts() {
    let Some(browser) = Browser::start("reconnect").await else {
        return;
    };
    let demo = Demo::start();
    let outcome = tokio::time::timeout(BUDGET, reconnect(&browser.client, demo)).await;
    browser.finish(outcome).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_opened_mid_run_shows_the_history_from_before_it_connected() {
    let Some(browser) = Browser::start("late_joiner").await else {
        return;
    };
    let demo = Demo::start();
    let outcome = tokio::time::timeout(BUDGET, late_joiner(&browser.client, &demo)).await;
    browser.finish(outcome).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_opened_after_the_history_wrapped_fills_the_rest_from_the_snapshot() {
    let Some(browser) = Browser::start("short_history").await else {
        return;
    };
    // 100 events per topic: a run of 5,000 bars publishes several hundred.
    let demo = Demo::start_with(SocketAddr::from(([127, 0, 0, 1], 0)), &["--history", "100"]);
    let outcome = tokio::time::timeout(BUDGET, short_history(&browser.client, &demo)).await;
    browser.finish(outcome).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_tokens_the_page_from_the_printed_url_starts_watches_and_cancels_runs() {
    let Some(browser) = Browser::start("auth").await else {
        return;
    };
    let dir = demo_support::tokens::TempDir::new("browser");
    let secret = dir.secret_file();
    let demo = Demo::start_args(&["--addr", "127.0.0.1:0", "--auth-secret-file", &secret]);
    let flow = browser_support::auth_flow::drive(&browser.client, &demo);
    let outcome = tokio::time::timeout(BUDGET, flow).await;
    browser.finish(outcome).await;
}

/// The demo stops and starts again on the same address: the page shows it is offline,
/// reconnects by itself, and follows a run of the new server.
async fn reconnect(client: &Client, demo: Demo) -> TestResult {
    client.goto(&format!("{}/", demo.base)).await?;
    wait_live(client).await?;
    let addr = demo.addr;
    drop(demo);
    let deadline = Instant::now() + Duration::from_secs(60);
    while badge_state(client).await? != "closed" {
        if Instant::now() >= deadline {
            return Err("the badge never showed the connection as closed".into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let demo = Demo::start_at(addr);
    wait_live(client).await?;
    let (status, reply) = demo.post(
        "/api/v1/backtest/run",
        r#"{"backtest_id":"after-restart","bars":500,"bar_delay_us":0}"#,
    );
    assert_eq!(status, 202, "{reply}");
    let done = demo.wait_finished("after-restart", Duration::from_secs(60));
    let expected = done["results"]["final_balance"]
        .as_f64()
        .ok_or("a balance")?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let cards = read_cards(client).await?;
        let shown = cards
            .iter()
            .find(|c| c["id"] == "after-restart")
            .and_then(|c| c["finalBalance"].as_str())
            .and_then(|v| v.parse::<f64>().ok());
        if let Some(shown) = shown {
            assert_eq!(shown, expected);
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!("no results for the run after the restart: {cards:#?}").into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A run started through the API before the page is opened: the page subscribes with
/// `since: 0` and shows the run's chart and log from its first bars, not only from the
/// moment it connected; nothing is applied twice or out of order.
async fn late_joiner(client: &Client, demo: &Demo) -> TestResult {
    const ID: &str = "late-joiner";
    const BARS: f64 = 5000.0;
    let progress_at_open = start_slow_run(demo, ID, 20.0).await?;

    client.goto(&format!("{}/", demo.base)).await?;
    wait_live(client).await?;
    let head = client
        .execute(
            "return Number(document.querySelector('#connection-status').getAttribute('data-head-seq'));",
            vec![],
        )
        .await?
        .as_u64()
        .ok_or("the confirmation's head seq")?;
    assert!(head > 0, "events were published before the page connected");

    // Read once the replayed history has been drawn.
    let read = || read_run_chart(client, ID);
    let mut card = Value::Null;
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        card = read().await?;
        if card["points"].as_u64().unwrap_or(0) > 1
            && card["seqs"].as_array().is_some_and(|s| !s.is_empty())
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let points = card["points"].as_u64().unwrap_or(0);
    assert!(
        points > 1,
        "the chart has the points from before the page connected: {card}"
    );
    // 200 progress events over 5,000 bars: the first one is at bar 25.
    let first_bar = card["firstBar"].as_f64().unwrap_or(-1.0);
    let bars_at_open = progress_at_open / 100.0 * BARS;
    assert!(
        (0.0..=50.0).contains(&first_bar) && first_bar < bars_at_open,
        "the chart starts at the run's first progress (bar {first_bar}), \
         not where the page joined (bar {bars_at_open}): {card}"
    );
    let seqs: Vec<u64> = card["seqs"]
        .as_array()
        .ok_or("log seqs")?
        .iter()
        .filter_map(Value::as_u64)
        .collect();
    assert!(
        seqs.iter().any(|&s| s <= head),
        "the log shows lines published before the page connected (head seq {head}): {card}"
    );
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "log lines in seq order, none twice: {seqs:?}"
    );
    assert_eq!(
        card["lagged"], 0,
        "the retained history was complete: {card}"
    );
    if let Some(path) = std::env::var_os(LATE_SCREENSHOT_ENV) {
        std::fs::write(path, client.screenshot().await?)?;
    }
    follow_to_completion(client, ID).await
}

/// The server no longer retains the start of the run: the page shows what is retained
/// (the latest chart points and log lines), the snapshot supplies the run's start
/// event, and the events from before the history are not reported as a lag of this
/// page (it never had them).
async fn short_history(client: &Client, demo: &Demo) -> TestResult {
    const ID: &str = "short-history";
    start_slow_run(demo, ID, 40.0).await?;
    client.goto(&format!("{}/", demo.base)).await?;
    wait_live(client).await?;
    let mut card = Value::Null;
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        card = read_run_chart(client, ID).await?;
        if card["points"].as_u64().unwrap_or(0) > 1
            && card["started"] == true
            && card["historyMissed"].is_string()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        card["points"].as_u64().unwrap_or(0) > 1,
        "the retained progress is charted: {card}"
    );
    assert_eq!(
        card["started"], true,
        "the start event came from the snapshot: {card}"
    );
    let missed: u64 = card["historyMissed"]
        .as_str()
        .and_then(|m| m.parse().ok())
        .ok_or_else(|| format!("the page noted the events before the history: {card}"))?;
    assert!(missed > 0, "{card}");
    assert_eq!(
        card["lagged"], 0,
        "history the page never had is no lag warning: {card}"
    );
    // 40 % of 5,000 bars at one point per 25 bars is 80 points: 100 events of the topic
    // (with the log lines among them) cannot hold them all.
    let first_bar = card["firstBar"].as_f64().unwrap_or(-1.0);
    assert!(
        first_bar > 25.0,
        "the chart starts where the retained history starts: {card}"
    );
    let seqs: Vec<u64> = card["seqs"]
        .as_array()
        .ok_or("log seqs")?
        .iter()
        .filter_map(Value::as_u64)
        .collect();
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "log lines in seq order, none twice: {seqs:?}"
    );
    let progress = card["progress"].as_f64().unwrap_or(0.0);
    assert!(
        progress >= 40.0,
        "the progress bar shows the latest progress: {card}"
    );
    Ok(())
}

/// The runs: (id, form values).
const RUNS: [(&str, &[(&str, &str)]); 2] = [
    (
        "browser-eurusd",
        &[
            ("symbol", "EURUSD"),
            ("bars", "1500"),
            ("bar_delay_us", "1500"),
            ("fast", "5"),
            ("slow", "20"),
        ],
    ),
    (
        "browser-gbpusd",
        &[
            ("symbol", "GBPUSD"),
            ("timeframe", "M15"),
            ("bars", "1800"),
            ("bar_delay_us", "1500"),
            ("fast", "8"),
            ("slow", "30"),
            ("size", "25"),
        ],
    ),
];

/// Two runs started from the form finish side by side; their cards show the results
/// the REST API has, and their own log lines; a reload and a failed run show too.
async fn drive(client: &Client, demo: &Demo, data: &Path) -> TestResult {
    client.goto(&format!("{}/", demo.base)).await?;
    // Subscribed: the badge says Live once the server confirmed the subscription.
    wait_live(client).await?;
    for (id, fields) in RUNS {
        start_from_the_form(client, id, fields).await?;
    }
    wait_until_both_complete(client).await?;
    // Let the last frame render (flushes are coalesced per animation frame).
    tokio::time::sleep(Duration::from_millis(400)).await;
    let balances = check_finished_cards(client, demo).await?;

    // No error notice, and no backtest_error on the page.
    let errors = client
        .execute(
            "return document.querySelectorAll('.error-box, .server-error-notice').length;",
            vec![],
        )
        .await?;
    assert_eq!(errors, json!(0));
    if std::env::var(SCREENSHOT_ENV).is_ok_and(|v| v == "1") {
        let png = client.screenshot().await?;
        // The repository's docs/, two levels above this program's crate.
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/dashboard.png");
        std::fs::write(&path, png)?;
        eprintln!("saved {}", path.display());
    }
    check_reload(client, &balances).await?;
    check_failed_run(client, demo, data).await?;
    check_cancel(client, demo).await
}

/// Fills the form with `fields` and the id, starts the run, and waits for the form's
/// confirmation.
async fn start_from_the_form(client: &Client, id: &str, fields: &[(&str, &str)]) -> TestResult {
    let form = client.find(Locator::Css("#run-form")).await?;
    for (name, value) in fields.iter().chain([("backtest_id", id)].iter()) {
        let input = form.find(Locator::Css(&format!("[name='{name}']"))).await?;
        input.clear().await?;
        input.send_keys(value).await?;
    }
    client
        .find(Locator::Css("#start-run"))
        .await?
        .click()
        .await?;
    let expected = format!("Started {id}");
    wait_until(
        client,
        "the form confirms the start",
        Duration::from_secs(10),
        || {
            let expected = expected.clone();
            async move {
                let ok = client
                    .execute(
                        "const e = document.querySelector('#form-ok');
                     return e.hidden ? '' : e.textContent;",
                        vec![],
                    )
                    .await?;
                Ok(ok.as_str() == Some(expected.as_str()))
            }
        },
    )
    .await
}

/// Both runs side by side: seen running with some progress before finishing.
async fn wait_until_both_complete(client: &Client) -> TestResult {
    let mut seen_partial = [false, false];
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let cards = read_cards(client).await?;
        let mut done = 0;
        for (i, (id, _)) in RUNS.iter().enumerate() {
            if let Some(card) = cards.iter().find(|c| c["id"] == *id) {
                let p = card["progress"]
                    .as_str()
                    .and_then(|p| p.parse::<f64>().ok())
                    .unwrap_or(0.0);
                if card["status"] == "running" && p > 0.0 && p < 100.0 {
                    seen_partial[i] = true;
                }
                if card["status"] == "complete" {
                    done += 1;
                }
            }
        }
        if done == RUNS.len() {
            break;
        }
        if Instant::now() >= deadline {
            return Err(format!("the runs did not both complete within 90 s: {cards:#?}").into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        seen_partial.iter().any(|s| *s),
        "a run was seen in progress on the page before it finished"
    );
    Ok(())
}

/// Each finished card: 100 %, the final balance the REST API has, and a log pane with
/// this run's lines only, its trades among them. Returns the balances.
async fn check_finished_cards(client: &Client, demo: &Demo) -> TestResult<Vec<f64>> {
    let cards = read_cards(client).await?;
    assert_eq!(cards.len(), RUNS.len(), "one card per run: {cards:#?}");
    let mut balances = Vec::new();
    for (id, _) in RUNS {
        let card = cards
            .iter()
            .find(|c| c["id"] == id)
            .ok_or_else(|| format!("no card for {id}"))?;
        assert_eq!(card["status"], "complete", "{card}");
        assert_eq!(card["progress"], "100", "the progress bar of {id}: {card}");
        assert_eq!(card["progressText"], "100.0 %", "{card}");

        let (status, rest) = demo.get(&format!("/api/v1/backtest/{id}"));
        assert_eq!(status, 200, "{rest}");
        assert_eq!(rest["status"], "complete", "{rest}");
        let expected = rest["results"]["final_balance"]
            .as_f64()
            .ok_or_else(|| format!("no final_balance for {id}: {rest}"))?;
        let shown: f64 = card["finalBalance"]
            .as_str()
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| format!("no final balance in the results table of {id}: {card}"))?;
        assert_eq!(shown, expected, "final_balance of {id}: page vs REST");
        assert!(
            card["finalBalanceText"]
                .as_str()
                .is_some_and(|t| !t.is_empty() && t != "—"),
            "{card}"
        );
        balances.push(expected);
        check_log_pane(id, card, &rest)?;
    }
    assert_ne!(balances[0], balances[1], "two different runs");
    Ok(balances)
}

/// The log pane of run `id`: lines of this run only, with its trades.
fn check_log_pane(id: &str, card: &Value, rest: &Value) -> TestResult {
    let lines = card["logs"].as_array().ok_or("no log lines")?;
    let trades = rest["results"]["total_trades"].as_u64().unwrap_or(0);
    assert!(trades > 0, "the run traded: {rest}");
    assert!(!lines.is_empty(), "the log pane of {id} shows lines");
    for line in lines {
        assert_eq!(
            line["id"], id,
            "a line of another run in {id}'s pane: {line}"
        );
    }
    let trade_lines = lines
        .iter()
        .filter(|l| {
            l["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("Trade executed"))
        })
        .count();
    assert!(trade_lines > 0, "{id}'s pane shows its trades: {lines:?}");
    Ok(())
}

/// A reload: the page rebuilds both finished runs from the hub's snapshot and the REST
/// listing, with the same results.
async fn check_reload(client: &Client, balances: &[f64]) -> TestResult {
    client.refresh().await?;
    wait_until(
        client,
        "the reloaded page shows both results",
        Duration::from_secs(30),
        || async {
            let cards = read_cards(client).await?;
            Ok(RUNS.iter().all(|(id, _)| {
                cards.iter().any(|c| {
                    c["id"] == *id && c["status"] == "complete" && c["finalBalance"].is_string()
                })
            }))
        },
    )
    .await?;
    let cards = read_cards(client).await?;
    for ((id, _), expected) in RUNS.iter().zip(balances) {
        let card = cards
            .iter()
            .find(|c| c["id"] == *id)
            .ok_or("card after reload")?;
        let shown: f64 = card["finalBalance"]
            .as_str()
            .and_then(|v| v.parse().ok())
            .ok_or("balance")?;
        assert_eq!(shown, *expected, "{id} after a reload");
    }
    Ok(())
}

/// A run that fails (a CSV that is not bars) shows its backtest_error on its card.
async fn check_failed_run(client: &Client, demo: &Demo, data: &Path) -> TestResult {
    let bad_csv = data.join("bad.csv");
    std::fs::write(&bad_csv, "not,bars\n1,2\n")?;
    let body = json!({ "backtest_id": "browser-broken", "data_path": "bad.csv" }).to_string();
    let (status, reply) = demo.post("/api/v1/backtest/run", &body);
    assert_eq!(status, 202, "{reply}");
    let shown = wait_for_error_box(client).await;
    let _ = std::fs::remove_file(&bad_csv);
    let message = shown?;
    assert!(
        message.contains("could not load"),
        "the error box says why: {message:?}"
    );
    // It failed before any progress: the empty chart says so, not "fills in".
    let chart = client
        .execute(
            "return document.querySelector('.run-card[data-backtest-id=\"browser-broken\"] .chart-empty').textContent;",
            vec![],
        )
        .await?;
    assert!(
        chart.as_str().is_some_and(|c| c.contains("failed")),
        "{chart}"
    );
    Ok(())
}

/// The Cancel button of a running card stops the run: the card shows it cancelled, and
/// the API says so. The page's style sheet and script were allowed by its policy.
async fn check_cancel(client: &Client, demo: &Demo) -> TestResult {
    const ID: &str = "browser-cancel";
    start_slow_run(demo, ID, 1.0).await?;
    let button = format!(".run-card[data-backtest-id=\"{ID}\"] .cancel-run");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let shown = client
            .execute(
                "const b = document.querySelector(arguments[0]); return !!b && !b.hidden;",
                vec![json!(button)],
            )
            .await?;
        if shown == json!(true) {
            break;
        }
        if Instant::now() >= deadline {
            return Err("the running card shows no Cancel button".into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    client.find(Locator::Css(&button)).await?.click().await?;
    let card = format!(".run-card[data-backtest-id=\"{ID}\"]");
    let deadline = Instant::now() + Duration::from_secs(10);
    let state = loop {
        let state = client
            .execute(
                "const c = document.querySelector(arguments[0]);
                 return c && c.getAttribute('data-cancelled') === 'true'
                   ? { status: c.getAttribute('data-status'),
                       pill: c.querySelector('.status-pill').textContent,
                       cancelHidden: c.querySelector('.cancel-run').hidden,
                       css: document.styleSheets.length > 0 && document.styleSheets[0].cssRules.length > 0 }
                   : null;",
                vec![json!(card)],
            )
            .await?;
        if !state.is_null() {
            break state;
        }
        if Instant::now() >= deadline {
            return Err("the card did not show the cancellation within 10 s".into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(state["status"], "error", "{state}");
    assert_eq!(state["pill"], "cancelled", "{state}");
    assert_eq!(state["cancelHidden"], true, "{state}");
    assert_eq!(state["css"], true, "the style sheet is applied: {state}");
    let run = demo.wait_finished(ID, Duration::from_secs(10));
    assert_eq!(run["cancelled"], true, "{run}");
    Ok(())
}
