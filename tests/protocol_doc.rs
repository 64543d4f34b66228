//! `docs/PROTOCOL.md` and the `wire` module tell the same contract: every example message
//! of the document reads with the crate's types (and a server message writes back as the
//! same text), and the close codes of its table are the crate's, with the same advice.

use backtest_stream::wire::{ClientMessage, CloseAdvice, CloseCode, ServerMessage};

const PROTOCOL: &str = include_str!("../docs/PROTOCOL.md");

/// The lines of the first fenced block after the line `heading`.
fn block_after(heading: &str) -> Vec<&'static str> {
    let start = PROTOCOL
        .find(heading)
        .unwrap_or_else(|| panic!("{heading:?} is not in PROTOCOL.md"));
    let rest = &PROTOCOL[start..];
    let open = rest.find("```json\n").expect("a json block") + "```json\n".len();
    let close = rest[open..].find("```").expect("the end of the block");
    rest[open..open + close]
        .lines()
        .filter(|l| !l.is_empty())
        .collect()
}

#[test]
fn every_client_example_parses() {
    let lines = block_after("Client to server, one message a line:");
    assert!(lines.len() >= 5, "{lines:?}");
    for line in lines {
        if let Err(error) = ClientMessage::parse(line) {
            panic!("{line}: {error}");
        }
    }
}

#[test]
fn every_server_example_reads_and_writes_back_as_the_same_text() {
    let lines = block_after("Server to client, one message a line:");
    assert!(lines.len() >= 10, "{lines:?}");
    let mut events = 0;
    for line in lines {
        let message = ServerMessage::from_json(line).unwrap_or_else(|e| panic!("{line}: {e}"));
        events += usize::from(matches!(message, ServerMessage::Event(_)));
        assert_eq!(message.to_json(), line);
    }
    assert_eq!(events, 5, "one example of each event");
}

/// What the table's "client" column says, as the crate's advice.
fn advice(text: &str) -> CloseAdvice {
    if text.starts_with("get a fresh token") {
        CloseAdvice::RefreshToken
    } else if text.starts_with("back off") {
        CloseAdvice::BackOff
    } else if text.starts_with("do not") {
        CloseAdvice::DoNotRetry
    } else if text.starts_with("reconnect") {
        CloseAdvice::Resume
    } else {
        panic!("unknown advice {text:?}")
    }
}

#[test]
fn the_close_codes_of_the_document_are_the_crates() {
    let from = PROTOCOL
        .find("Standard close codes:")
        .expect("the standard codes");
    let to = from
        + PROTOCOL[from..]
            .find("Private codes")
            .expect("the private codes");
    let standard = PROTOCOL[from..to].replace('\n', " ");
    let mut documented = Vec::new();
    for code in CloseCode::ALL {
        let number = code.code();
        if number < 4000 {
            assert!(
                standard.contains(&format!("{number} ")),
                "{number} is not among {standard:?}"
            );
            documented.push(number);
        }
    }
    for row in PROTOCOL.lines().filter(|l| l.starts_with("| 4")) {
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        let number: u16 = cells[1].parse().expect("a code");
        let code = CloseCode::from_code(number)
            .unwrap_or_else(|| panic!("{number} is documented but not a CloseCode"));
        assert_eq!(code.advice(), advice(cells[3]), "{row}");
        documented.push(number);
    }
    documented.sort_unstable();
    let all: Vec<u16> = CloseCode::ALL.iter().map(|c| c.code()).collect();
    assert_eq!(documented, all);
}
