//! The dashboard's rough edges (issue 12), in a real browser (see `browser_demo.rs` for
//! the harness): runs that died with the server are marked lost; a finished run's tiles
//! and trade table take the figures of its `backtest_complete`; one start per click;
//! separators never start or end a line; the compact table of runs, remembered.
#![cfg(unix)]

mod browser_support;
mod demo_support;

use std::time::{Duration, Instant};

use browser_support::{BUDGET, Browser, TestResult, badge_state, start_slow_run, wait_live};
use demo_support::Demo;
use fantoccini::{Client, Locator};
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_finished_run_shows_its_final_figures_and_readable_trades() {
    let Some(browser) = Browser::start("final_figures").await else {
        return;
    };
    let demo = Demo::start();
    let outcome = tokio::time::timeout(BUDGET, final_figures(&browser.client, &demo)).await;
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

/// A run with more trades than the results list, its last position force-closed at
/// the end of the data: the tiles show `backtest_complete`'s figures, the trade table
/// says how many are listed of how many, in a trader's column order. Then: one start
/// per submit, separators, the compact table of runs.
async fn final_figures(client: &Client, demo: &Demo) -> TestResult {
    const ID: &str = "many-trades";
    client.goto(&format!("{}/", demo.base)).await?;
    wait_live(client).await?;
    let (status, reply) = demo.post(
        "/api/v1/backtest/run",
        &format!(r#"{{"backtest_id":"{ID}","bars":20000,"bar_delay_us":0,"fast":2,"slow":5}}"#),
    );
    assert_eq!(status, 202, "{reply}");
    let rest = demo.wait_finished(ID, Duration::from_secs(60));
    let results = &rest["results"];
    let total = results["total_trades"].as_u64().ok_or("total_trades")?;
    let trades = results["results"]["trades"].as_array().ok_or("trades")?;
    let omitted = results["results"]["trades_omitted"]
        .as_u64()
        .ok_or("omitted")?;
    assert!(omitted > 0, "more trades than the results list: {total}");
    assert_eq!(
        trades.last().map(|t| &t["closed_at_end"]),
        Some(&json!(true)),
        "the last position is force-closed at the end of the data"
    );
    let card = wait_js(
        client,
        "the card completes",
        r#"const c = document.querySelector('.run-card[data-backtest-id="many-trades"][data-status="complete"]');
           if (!c || !c.querySelector('.results')) return null;
           return { trades: c.querySelector('.stat-trades').getAttribute('data-value'),
                    pnl: Number(c.querySelector('.stat-pnl').getAttribute('data-value')),
                    summary: c.querySelector('.trades summary').textContent };"#,
        vec![],
    )
    .await?;
    assert_eq!(
        card["trades"],
        json!(total.to_string()),
        "the TRADES tile: {card}"
    );
    let initial = results["results"]["parameters"]["initial_cash"]
        .as_f64()
        .ok_or("cash")?;
    let pnl = results["final_balance"].as_f64().ok_or("balance")? - initial;
    let shown = card["pnl"].as_f64().ok_or("the P&L tile")?;
    assert!((shown - pnl).abs() < 1e-6, "the P&L tile {shown} vs {pnl}");
    let of = format!("the last {} of {}", trades.len(), thousands(total));
    assert!(
        card["summary"].as_str().is_some_and(|s| s.contains(&of)),
        "{card} vs {of:?}"
    );
    check_trade_table(client, ID, omitted).await?;
    check_one_start_per_submit(client, demo).await?;
    check_separators(client).await?;
    check_table_view(client, ID, total).await
}

/// `3746` as `3,746`.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

async fn check_trade_table(client: &Client, id: &str, omitted: u64) -> TestResult {
    let card = format!(".run-card[data-backtest-id=\"{id}\"]");
    client
        .find(Locator::Css(&format!("{card} .trades summary")))
        .await?
        .click()
        .await?;
    let table = wait_js(
        client,
        "the trade table is built",
        r#"const t = document.querySelector(arguments[0] + ' .trade-table');
           if (!t) return null;
           const rows = [...t.querySelectorAll('tbody tr')];
           const last = rows[rows.length - 1];
           const col = (key) => [...t.querySelectorAll('thead th')].findIndex((th) => th.getAttribute('data-key') === key);
           return { keys: [...t.querySelectorAll('thead th')].map((th) => th.getAttribute('data-key')),
                    headers: [...t.querySelectorAll('thead th')].map((th) => th.textContent),
                    first: rows[0].cells[0].textContent,
                    lastEnd: last.cells[col('closed_at_end')].textContent,
                    note: (document.querySelector(arguments[0] + ' .trade-note') || {}).textContent };"#,
        vec![json!(card)],
    )
    .await?;
    let keys: Vec<&str> = table["keys"]
        .as_array()
        .ok_or("keys")?
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "#",
            "entry_time",
            "exit_time",
            "side",
            "size",
            "entry_price",
            "exit_price",
            "pnl",
            "return_pct",
            "held",
            "closed_at_end"
        ],
        "{table}"
    );
    let headers = table["headers"].to_string();
    assert!(
        !headers.contains('_') && headers.contains("Entry time (UTC)") && headers.contains("P&L"),
        "readable headers: {headers}"
    );
    assert_eq!(
        table["first"],
        json!(thousands(omitted + 1)),
        "numbered in the whole run: {table}"
    );
    assert_eq!(table["lastEnd"], "yes", "{table}");
    assert!(
        table["note"]
            .as_str()
            .is_some_and(|n| n.contains("earlier ones are not listed")),
        "{table}"
    );
    Ok(())
}

/// Two submits before the server answers start one run; the button waits for the answer.
async fn check_one_start_per_submit(client: &Client, demo: &Demo) -> TestResult {
    let count = || {
        let (_, list) = demo.get("/api/v1/backtests");
        list["backtests"].as_array().map_or(0, Vec::len)
    };
    let before = count();
    let form = client.find(Locator::Css("#run-form")).await?;
    for (name, value) in [("bars", "300"), ("bar_delay_us", "0")] {
        let input = form.find(Locator::Css(&format!("[name='{name}']"))).await?;
        input.clear().await?;
        input.send_keys(value).await?;
    }
    let disabled = js(
        client,
        "const f = document.querySelector('#run-form');
         f.requestSubmit(); const busy = document.querySelector('#start-run').disabled;
         f.requestSubmit(); return busy;",
        vec![],
    )
    .await?;
    assert_eq!(disabled, true, "the button is disabled until the answer");
    wait_js(
        client,
        "the form confirms the start",
        "const ok = document.querySelector('#form-ok');
         return !ok.hidden && !document.querySelector('#start-run').disabled ? ok.textContent : null;",
        vec![],
    )
    .await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(count(), before + 1, "one run for two submits");
    Ok(())
}

/// In narrow cards the meta line wraps; no separator starts or ends a visible line.
async fn check_separators(client: &Client) -> TestResult {
    js(
        client,
        "document.querySelector('#runs').style.width = '250px'; return null;",
        vec![],
    )
    .await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let report = js(
        client,
        r#"const out = { lines: 0, bad: [] };
           for (const clip of document.querySelectorAll('.run-card .meta-clip')) {
             const box = clip.getBoundingClientRect();
             const items = [...clip.querySelectorAll('.meta-item')];
             out.lines = Math.max(out.lines, new Set(items.map((i) => Math.round(i.getBoundingClientRect().top))).size);
             for (const item of items) {
               const sep = item.querySelector('.sep').getBoundingClientRect();
               const text = item.lastElementChild.getBoundingClientRect();
               const visible = sep.right > box.left + 0.5;
               const first = !items.some((o) => o !== item && Math.abs(o.getBoundingClientRect().top - item.getBoundingClientRect().top) < 2
                                             && o.getBoundingClientRect().right <= sep.left + 0.5);
               if (visible && first) out.bad.push('starts a line: ' + item.textContent);
               if (Math.abs(text.top - sep.top) > 4) out.bad.push('ends a line: ' + item.textContent);
             }
           }
           document.querySelector('#runs').style.width = '';
           return out;"#,
        vec![],
    )
    .await?;
    assert!(
        report["lines"].as_u64().unwrap_or(0) > 1,
        "the meta line wraps: {report}"
    );
    assert_eq!(report["bad"], json!([]), "{report}");
    Ok(())
}

/// The toggle shows the runs as a compact table, kept after a reload; and back.
async fn check_table_view(client: &Client, id: &str, total: u64) -> TestResult {
    client
        .find(Locator::Css("#view-toggle"))
        .await?
        .click()
        .await?;
    let read = r#"const row = document.querySelector('#runs-table tbody tr[data-backtest-id="' + arguments[0] + '"]');
        if (!row || document.querySelector('#runs-table').hidden) return null;
        return { view: document.body.getAttribute('data-view'),
                 cardsHidden: document.querySelector('#runs').hidden,
                 rows: document.querySelectorAll('#runs-table tbody tr').length,
                 cards: document.querySelectorAll('.run-card').length,
                 state: row.querySelector('.col-state').textContent,
                 progress: row.querySelector('.col-progress').textContent,
                 trades: row.querySelector('.col-trades').getAttribute('data-value'),
                 height: document.documentElement.scrollHeight };"#;
    let table = wait_js(client, "the table view", read, vec![json!(id)]).await?;
    assert_eq!(table["view"], "table", "{table}");
    assert_eq!(table["cardsHidden"], true, "{table}");
    assert_eq!(table["rows"], table["cards"], "a row per run: {table}");
    assert_eq!(table["state"], "complete", "{table}");
    assert_eq!(table["progress"], "100.0 %", "{table}");
    assert_eq!(table["trades"], json!(total.to_string()), "{table}");
    client.refresh().await?;
    wait_live(client).await?;
    let again = wait_js(
        client,
        "the table view after a reload",
        read,
        vec![json!(id)],
    )
    .await?;
    assert_eq!(again["view"], "table", "remembered: {again}");
    client
        .find(Locator::Css("#view-toggle"))
        .await?
        .click()
        .await?;
    let view = js(
        client,
        "return [document.body.getAttribute('data-view'), document.querySelector('#runs').hidden];",
        vec![],
    )
    .await?;
    assert_eq!(view, json!(["cards", false]));
    Ok(())
}
