//! The dashboard's rough edges (issue 12), in a real browser (see `browser_demo.rs` for
//! the harness): runs that died with the server are marked lost.
#![cfg(unix)]

mod browser_support;
mod demo_support;

use std::time::{Duration, Instant};

use browser_support::{BUDGET, Browser, TestResult, badge_state, start_slow_run, wait_live};
use demo_support::Demo;
use fantoccini::Client;
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_that_died_with_the_server_are_marked_lost() {
    let Some(browser) = Browser::start("lost_runs").await else {
        return;
    };
    let demo = Demo::start();
    let outcome = tokio::time::timeout(BUDGET, lost_runs(&browser.client, demo)).await;
    browser.finish(outcome).await;
}

/// Runs `script` in the page with `args`.
async fn js(client: &Client, script: &str, args: Vec<Value>) -> TestResult<Value> {
    Ok(client.execute(script, args).await?)
}

/// Runs `script` until it returns something other than `null`, and returns that.
async fn wait_js(client: &Client, what: &str, script: &str, args: Vec<Value>) -> TestResult<Value> {
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let value = js(client, script, args.clone()).await?;
        if !value.is_null() {
            return Ok(value);
        }
        if Instant::now() >= deadline {
            return Err(format!("timed out waiting until {what}").into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The card of run `arguments[0]` and the header's counts, or null without the card.
const CARD_STATE: &str = r#"
    const card = [...document.querySelectorAll('.run-card')]
      .find((c) => c.getAttribute('data-backtest-id') === arguments[0]);
    if (!card) return null;
    const summary = document.querySelector('#run-summary');
    return {
      status: card.getAttribute('data-status'),
      pill: card.querySelector('.status-pill').textContent,
      line: card.querySelector('.status-line').textContent,
      cancelHidden: card.querySelector('.cancel-run').hidden,
      summary: summary.textContent,
      running: summary.getAttribute('data-running'),
      lost: summary.getAttribute('data-lost'),
    };"#;

/// A slow run is followed; the demo dies and a new one starts on the same address: the
/// card says lost (the new server does not know the run), the header counts it lost,
/// not running; a run of the new server is followed as usual.
async fn lost_runs(client: &Client, demo: Demo) -> TestResult {
    client.goto(&format!("{}/", demo.base)).await?;
    wait_live(client).await?;
    start_slow_run(&demo, "doomed", 5.0).await?;
    let running = wait_js(
        client,
        "the run shows running",
        &format!(
            "const s = (() => {{ {CARD_STATE} }})(); return s && s.running === '1' ? s : null;"
        ),
        vec![json!("doomed")],
    )
    .await?;
    assert_eq!(running["status"], "running", "{running}");
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
    let (status, _) = demo.get("/api/v1/backtest/doomed");
    assert_eq!(status, 404, "the new server does not know the run");
    let lost = wait_js(
        client,
        "the card says lost",
        &format!(
            "const s = (() => {{ {CARD_STATE} }})(); return s && s.status === 'lost' ? s : null;"
        ),
        vec![json!("doomed")],
    )
    .await?;
    assert_eq!(lost["pill"], "lost", "{lost}");
    assert_eq!(lost["running"], "0", "no longer counted as running: {lost}");
    assert_eq!(lost["lost"], "1", "{lost}");
    assert!(
        lost["summary"]
            .as_str()
            .is_some_and(|s| s.contains("1 lost") && !s.contains("running")),
        "{lost}"
    );
    assert_eq!(lost["cancelHidden"], true, "nothing to cancel: {lost}");
    assert!(
        lost["line"]
            .as_str()
            .is_some_and(|l| l.contains("server restarted")),
        "{lost}"
    );
    // A run of the new server is followed, and the lost one stays lost.
    let (status, reply) = demo.post(
        "/api/v1/backtest/run",
        r#"{"backtest_id":"reborn","bars":300,"bar_delay_us":0}"#,
    );
    assert_eq!(status, 202, "{reply}");
    wait_js(
        client,
        "the new server's run completes on the page",
        &format!("const s = (() => {{ {CARD_STATE} }})(); return s && s.status === 'complete' ? s : null;"),
        vec![json!("reborn")],
    )
    .await?;
    let still = js(client, CARD_STATE, vec![json!("doomed")]).await?;
    assert_eq!(still["status"], "lost", "{still}");
    Ok(())
}
