//! The dashboard with authentication on, in the browser: without a token it says so;
//! opened from the printed URL it keeps the token out of the address bar, starts,
//! watches and cancels runs; a start-only token follows the run it starts; a token that
//! expires while connected (close 4004), a forged and an expired one are named as such.

use std::time::{Duration, Instant};

use fantoccini::{Client, Locator};
use serde_json::{Value, json};

use crate::browser_support::{TestResult, read_cards, wait_live, wait_until};
use crate::demo_support::Demo;
use crate::demo_support::tokens::{self, claims, hs256};

/// The whole flow against a demo started with `--auth-secret-file`.
pub async fn drive(client: &Client, demo: &Demo) -> TestResult {
    let token = demo.token.clone().ok_or("the demo printed no token")?;
    // No token: the page says it needs one and does not keep reconnecting.
    client.goto(&format!("{}/", demo.base)).await?;
    wait_reason(client, "missing").await?;
    // Opened from the printed URL (a fresh load).
    client.goto("about:blank").await?;
    client
        .goto(&format!("{}/#token={token}", demo.base))
        .await?;
    wait_live(client).await?;
    let state = client
        .execute(
            "return { href: location.href, stored: sessionStorage.getItem('backtest-stream-token'),
                      auth: document.body.getAttribute('data-auth'),
                      message: document.querySelector('#auth-message').hidden };",
            vec![],
        )
        .await?;
    assert!(
        !state["href"].as_str().unwrap_or("token").contains("token"),
        "{state}"
    );
    assert_eq!(state["stored"], json!(token), "{state}");
    assert_eq!(state["auth"], "token", "{state}");
    assert_eq!(state["message"], true, "no auth message: {state}");
    start_from_the_form(client, "auth-watched", "400", "0").await?;
    let done = wait_card(client, "auth-watched", "complete").await?;
    let rest = demo.wait_finished_as("auth-watched", Some(&token), Duration::from_secs(30));
    let expected = rest["results"]["final_balance"]
        .as_f64()
        .ok_or("a balance")?;
    let shown = done["finalBalance"]
        .as_str()
        .and_then(|v| v.parse::<f64>().ok());
    assert_eq!(shown, Some(expected), "{done}");
    start_from_the_form(client, "auth-cancelled", "5000", "3000").await?;
    cancel_from_the_card(client, "auth-cancelled").await?;
    let cancelled = demo.wait_finished_as("auth-cancelled", Some(&token), Duration::from_secs(30));
    assert_eq!(cancelled["cancelled"], true, "{cancelled}");
    // A token that may only start runs: the page follows the run it starts.
    let starter = hs256(&claims("starter", Value::Null, Value::Null, json!("start")));
    client
        .goto(&format!("{}/#token={starter}", demo.base))
        .await?;
    wait_live(client).await?;
    start_from_the_form(client, "auth-own", "400", "1000").await?;
    wait_card(client, "auth-own", "complete").await?;
    // A token that may watch but not start: the start is refused (403), and said so.
    let viewer = hs256(&claims("viewer", json!("*"), Value::Null, Value::Null));
    client
        .goto(&format!("{}/#token={viewer}", demo.base))
        .await?;
    wait_live(client).await?;
    let refused = start_from_the_form(client, "auth-refused", "400", "0").await;
    let refused = refused
        .expect_err("a token without scope start cannot start")
        .to_string();
    assert!(refused.contains("`start`"), "{refused}");
    wait_reason(client, "forbidden").await?;
    // A token that expires while the page is connected: the server closes with 4004,
    // the page says the token expired and waits for a new one.
    let mut short = claims("dev", json!("*"), Value::Null, Value::Null);
    short["exp"] = json!(tokens::now() + 3);
    client
        .goto(&format!("{}/#token={}", demo.base, hs256(&short)))
        .await?;
    wait_live(client).await?;
    wait_reason(client, "expired").await?;
    let code = client
        .execute(
            "return document.querySelector('#connection-status').getAttribute('data-close-code');",
            vec![],
        )
        .await?;
    assert_eq!(code, json!("4004"));
    // A forged token, then an expired one: named as such, no retrying.
    client
        .goto(&format!("{}/#token={}", demo.base, tokens::forged("dev")))
        .await?;
    wait_reason(client, "invalid").await?;
    client
        .goto(&format!("{}/#token={}", demo.base, tokens::expired("dev")))
        .await?;
    wait_reason(client, "expired").await?;
    assert_eq!(crate::browser_support::badge_state(client).await?, "closed");
    Ok(())
}

/// Waits until `#auth-message` shows `reason`.
async fn wait_reason(client: &Client, reason: &str) -> TestResult {
    let what = format!("the page says the token is {reason}");
    wait_until(client, &what, Duration::from_secs(30), || async {
        let shown = client
            .execute(
                "const m = document.querySelector('#auth-message');
                 return m.hidden ? null : m.getAttribute('data-reason');",
                vec![],
            )
            .await?;
        Ok(shown.as_str() == Some(reason))
    })
    .await
}

async fn start_from_the_form(client: &Client, id: &str, bars: &str, delay: &str) -> TestResult {
    let form = client.find(Locator::Css("#run-form")).await?;
    for (name, value) in [("bars", bars), ("bar_delay_us", delay), ("backtest_id", id)] {
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
    wait_until(client, "the form confirms the start", Duration::from_secs(10), || {
        let expected = expected.clone();
        async move {
            let ok = client
                .execute(
                    "const e = document.querySelector('#form-ok');
                     const f = document.querySelector('#form-error');
                     return e.hidden ? (f.hidden ? '' : 'error: ' + f.textContent) : e.textContent;",
                    vec![],
                )
                .await?;
            let text = ok.as_str().unwrap_or_default();
            if text.starts_with("error: ") {
                return Err(format!("the start was refused: {text}").into());
            }
            Ok(text == expected)
        }
    })
    .await
}

/// Waits until the card of `id` has `status`; returns what it shows.
async fn wait_card(client: &Client, id: &str, status: &str) -> TestResult<Value> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let cards = read_cards(client).await?;
        if let Some(card) = cards
            .iter()
            .find(|c| c["id"] == id && c["status"] == status)
        {
            return Ok(card.clone());
        }
        if Instant::now() >= deadline {
            return Err(format!("the card of {id} never showed {status}: {cards:#?}").into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Clicks the running card's Cancel button once it has some progress; waits until the
/// card shows the cancellation.
async fn cancel_from_the_card(client: &Client, id: &str) -> TestResult {
    let card = format!(".run-card[data-backtest-id=\"{id}\"]");
    let button = format!("{card} .cancel-run");
    wait_until(client, "the card runs", Duration::from_secs(30), || async {
        let ready = client
            .execute(
                "const c = document.querySelector(arguments[0]);
                 const b = c && c.querySelector('.cancel-run');
                 return !!b && !b.hidden &&
                   Number(c.querySelector('.progress-bar').getAttribute('data-progress')) > 0;",
                vec![json!(card)],
            )
            .await?;
        Ok(ready == json!(true))
    })
    .await?;
    client.find(Locator::Css(&button)).await?.click().await?;
    wait_until(
        client,
        "the card shows the cancellation",
        Duration::from_secs(15),
        || async {
            let cancelled = client
                .execute(
                    "const c = document.querySelector(arguments[0]);
                 return !!c && c.getAttribute('data-cancelled') === 'true';",
                    vec![json!(card)],
                )
                .await?;
            Ok(cancelled == json!(true))
        },
    )
    .await
}
