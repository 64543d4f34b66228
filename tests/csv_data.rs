//! The CSV loader: the format, and errors that name the line and the column.
#![cfg(feature = "csv")]

use backtest_stream::reference::{CsvError, load_csv, read_csv};
use backtest_stream::wire::Timestamp;

const HEADER: &str = "timestamp,open,high,low,close,volume\n";

fn read(body: &str) -> Result<Vec<backtest_stream::reference::Bar>, CsvError> {
    read_csv(format!("{HEADER}{body}").as_bytes())
}

#[test]
fn reads_bars_with_utc_timestamps() {
    let bars = read(
        "2024-01-15T10:00:00Z,1.5,2.5,1.25,2,100\n\
         2024-01-15T12:00:00+01:00,2,3,1.75,2.75,250.5\n",
    )
    .unwrap();
    assert_eq!(bars.len(), 2);
    assert_eq!(
        (
            bars[0].open,
            bars[0].high,
            bars[0].low,
            bars[0].close,
            bars[0].volume
        ),
        (1.5, 2.5, 1.25, 2.0, 100.0)
    );
    assert_eq!(
        bars[1].timestamp,
        "2024-01-15T11:00:00Z".parse::<Timestamp>().unwrap()
    );
    assert_eq!(bars[1].volume, 250.5);
}

#[test]
fn columns_may_come_in_any_order_with_extra_ones() {
    let text = "Volume,close,symbol,timestamp,low,high,open\n\
                7,4,EURUSD,2024-01-15 10:00:00,1,5,2\n";
    let bars = read_csv(text.as_bytes()).unwrap();
    assert_eq!(
        (
            bars[0].open,
            bars[0].high,
            bars[0].low,
            bars[0].close,
            bars[0].volume
        ),
        (2.0, 5.0, 1.0, 4.0, 7.0)
    );
    assert_eq!(bars[0].timestamp.to_string(), "2024-01-15T10:00:00.000Z");
}

#[test]
fn a_bad_number_names_the_line_and_the_column() {
    let err = read(
        "2024-01-15T10:00:00Z,1,2,1,2,100\n\
         2024-01-15T11:00:00Z,1,2,1,2,100\n\
         2024-01-15T12:00:00Z,1,2,oops,2,100\n",
    )
    .unwrap_err();
    assert!(
        matches!(&err, CsvError::BadNumber { line: 4, column: "low", value } if value == "oops"),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        r#"line 4, column `low`: "oops" is not a finite number"#
    );
    let err = read("2024-01-15T10:00:00Z,1,2,1,NaN,100\n").unwrap_err();
    assert!(
        matches!(
            err,
            CsvError::BadNumber {
                line: 2,
                column: "close",
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn a_missing_column_is_named() {
    let err = read_csv("timestamp,open,high,low,close\n2024-01-15T10:00:00Z,1,2,1,2\n".as_bytes())
        .unwrap_err();
    assert!(
        matches!(err, CsvError::MissingColumn { column: "volume" }),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .starts_with("line 1: missing column `volume`"),
        "{err}"
    );
}

#[test]
fn a_short_row_names_its_line() {
    let err = read(
        "2024-01-15T10:00:00Z,1,2,1,2,100\n\
         2024-01-15T11:00:00Z,1,2,1,2\n",
    )
    .unwrap_err();
    assert!(
        matches!(err, CsvError::Malformed { line: 3, .. }),
        "{err:?}"
    );
    assert!(
        err.to_string().starts_with("line 3: malformed CSV"),
        "{err}"
    );
}

#[test]
fn descending_or_repeated_timestamps_are_refused_with_both_lines() {
    let err = read(
        "2024-01-15T10:00:00Z,1,2,1,2,100\n\
         2024-01-15T11:00:00Z,1,2,1,2,100\n\
         2024-01-15T09:00:00Z,1,2,1,2,100\n",
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            CsvError::NotAscending {
                line: 4,
                previous_line: 3,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("line 4"), "{err}");
    assert!(err.to_string().contains("(line 3)"), "{err}");
    let err = read(
        "2024-01-15T10:00:00Z,1,2,1,2,100\n\
         2024-01-15T10:00:00Z,1,2,1,2,100\n",
    )
    .unwrap_err();
    assert!(
        matches!(err, CsvError::NotAscending { line: 3, .. }),
        "{err:?}"
    );
}

#[test]
fn a_bad_timestamp_names_its_line() {
    let err = read("15/01/2024 10:00,1,2,1,2,100\n").unwrap_err();
    assert!(
        matches!(err, CsvError::BadTimestamp { line: 2, .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("column `timestamp`"), "{err}");
}

#[test]
fn empty_input_and_header_only_are_errors() {
    assert!(matches!(read_csv(&b""[..]).unwrap_err(), CsvError::Empty));
    assert!(matches!(
        read_csv(HEADER.as_bytes()).unwrap_err(),
        CsvError::NoBars
    ));
}

#[test]
fn load_csv_reads_a_file_and_names_a_missing_one() {
    let dir = std::env::temp_dir().join(format!("backtest-stream-csv-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("bars.csv");
    std::fs::write(&path, format!("{HEADER}2024-01-15T10:00:00Z,1,2,1,2,100\n")).unwrap();
    assert_eq!(load_csv(&path).unwrap().len(), 1);
    let missing = dir.join("missing.csv");
    let err = load_csv(&missing).unwrap_err();
    assert!(matches!(err, CsvError::Io { .. }), "{err:?}");
    assert!(err.to_string().contains("missing.csv"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn prices_must_be_positive_and_bounded_by_high_and_low() {
    let cases = [
        ("-1.2,2,1,2,100", "open", "-1.2 is not a positive price"),
        ("1,2,0,2,100", "low", "0 is not a positive price"),
        ("1,2,1,2,-5", "volume", "-5 is negative"),
        ("1.5,1.2,1.3,1.4,100", "high", "1.2 is below low 1.3"),
        ("1.5,1.4,1.3,1.4,100", "high", "1.4 is below open 1.5"),
        ("1.3,1.4,1.35,1.4,100", "low", "1.35 is above open 1.3"),
        ("1.4,1.5,1.35,1.3,100", "low", "1.35 is above close 1.3"),
    ];
    for (row, column, reason) in cases {
        let err = read(&format!(
            "2024-01-15T10:00:00Z,1,2,1,2,100\n2024-01-15T11:00:00Z,{row}\n"
        ))
        .unwrap_err();
        assert!(
            matches!(&err, CsvError::BadBar { line: 3, column: c, .. } if *c == column),
            "{row}: {err:?}"
        );
        assert_eq!(
            err.to_string(),
            format!("line 3, column `{column}`: {reason}"),
            "{row}"
        );
    }
    // A flat bar (all four prices equal) and a zero volume are fine.
    assert_eq!(read("2024-01-15T10:00:00Z,1,1,1,1,0\n").unwrap().len(), 1);
}

#[test]
fn another_separator_is_named() {
    for separator in [';', '\t', '|'] {
        let text = format!(
            "timestamp{s}open{s}high{s}low{s}close{s}volume\n2024-01-15{s}1{s}2{s}1{s}2{s}9\n",
            s = separator
        );
        let err = read_csv(text.as_bytes()).unwrap_err();
        assert!(
            matches!(err, CsvError::Separator { separator: s } if s == separator),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            format!(
                "line 1: the header is separated by {separator:?}, not by commas: expected \
                 `timestamp,open,high,low,close,volume`"
            )
        );
    }
}

#[test]
fn a_malformed_line_is_described_once() {
    let err = read(
        "2024-01-15T10:00:00Z,1,2,1,2,100\n\
         2024-01-15T11:00:00Z,1,2,1,2\n",
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "line 3: malformed CSV: 5 fields where the header has 6"
    );
    let mut bytes =
        format!("{HEADER}2024-01-15T10:00:00Z,1,2,1,2,100\n2024-01-15T11:00:00Z,1,").into_bytes();
    bytes.extend_from_slice(b"\xff\xfe,1,2,100\n");
    let err = read_csv(&bytes[..]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "line 3: malformed CSV: field 3 is not valid UTF-8"
    );
}
