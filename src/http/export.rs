//! The CSV export (`GET /csv`): pure functions from results to text, no I/O.
//! (`GET /metrics` is [`super::metrics`].)

use std::borrow::Cow;

use chrono::TimeZone;

use crate::history::kinds::Kind;
use crate::hub::TestResult;

/// The CSV header; the first five columns are the original tool's.
pub const CSV_HEADER: [&str; 21] = [
    "Port",
    "Name",
    "Timestamp",
    "Send rate (bps)",
    "Receive rate (bps)",
    "Title",
    "Client",
    "Protocol",
    "Duration (s)",
    "Streams",
    "Reverse",
    "Bidir",
    "Bytes sent",
    "Bytes received",
    "Retransmits",
    "Jitter (ms)",
    "Lost (%)",
    "Error",
    "Kind",
    "Target",
    "Headline",
];

/// Every result as CSV, oldest first, with [`CSV_HEADER`]. Timestamps are
/// local time `YYYY-MM-DD HH:MM:SS`; text a client sent is neutralised
/// against spreadsheet formulas. (`GET /csv` streams the same bytes from
/// [`csv_header`] and [`csv_rows`] instead of building them whole.)
pub fn csv(results: &[TestResult]) -> std::io::Result<Vec<u8>> {
    let mut out = csv_header()?;
    out.extend(csv_rows(results)?);
    Ok(out)
}

/// The CSV's first line, [`CSV_HEADER`].
pub fn csv_header() -> std::io::Result<Vec<u8>> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    writer.write_record(CSV_HEADER)?;
    writer.into_inner().map_err(|e| e.into_error())
}

/// The CSV lines of `results`, in order, without the header.
pub fn csv_rows(results: &[TestResult]) -> std::io::Result<Vec<u8>> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    for r in results {
        let opt = |v: Option<f64>| v.map(|v| v.to_string()).unwrap_or_default();
        let text = |v: &Option<String>| {
            v.as_deref()
                .map(neutralise)
                .unwrap_or_default()
                .into_owned()
        };
        // A probe ran on no port of the box (its result says 0).
        let port = match r.kind {
            Some(_) => String::new(),
            None => r.port.to_string(),
        };
        writer.write_record([
            port,
            text(&r.name),
            local_time(r.timestamp),
            opt(r.send_bps),
            opt(r.receive_bps),
            text(&r.title),
            text(&r.client),
            neutralise(&r.protocol).into_owned(),
            r.duration.to_string(),
            r.streams.to_string(),
            r.reverse.to_string(),
            r.bidir.to_string(),
            r.bytes_sent.to_string(),
            r.bytes_received.to_string(),
            r.retransmits.map(|v| v.to_string()).unwrap_or_default(),
            opt(r.jitter_ms),
            opt(r.lost_percent),
            text(&r.error),
            Kind::of_protocol(&r.protocol, r.kind.is_some())
                .name()
                .to_string(),
            text(&r.target),
            neutralise(&r.headline).into_owned(),
        ])?;
    }
    writer.into_inner().map_err(|e| e.into_error())
}

/// `timestamp` (unix seconds) as local time `YYYY-MM-DD HH:MM:SS`.
pub fn local_time(timestamp: i64) -> String {
    match chrono::Local.timestamp_opt(timestamp, 0).earliest() {
        Some(t) => t.format("%Y-%m-%d %H:%M:%S").to_string(),
        None => timestamp.to_string(),
    }
}

/// A cell a spreadsheet would run as a formula gets a leading `'`: one
/// that starts with `=`, `+`, `-` or `@` (or their full-width forms
/// `＝＋－＠`), also after leading spaces, tabs, line breaks, NULs or a byte
/// order mark, and one that starts with a tab or carriage return. A plain
/// number such as `-1.5` stays a number.
pub fn neutralise(cell: &str) -> Cow<'_, str> {
    const TRIGGERS: [char; 8] = [
        '=', '+', '-', '@', '\u{FF1D}', '\u{FF0B}', '\u{FF0D}', '\u{FF20}',
    ];
    const LEADING: [char; 6] = [' ', '\t', '\r', '\n', '\0', '\u{FEFF}'];
    let risky =
        cell.starts_with(['\t', '\r']) || cell.trim_start_matches(LEADING).starts_with(TRIGGERS);
    if risky && !is_plain_number(cell) {
        Cow::Owned(format!("'{cell}"))
    } else {
        Cow::Borrowed(cell)
    }
}

/// `[+-]digits[.digits][e[+-]digits]` (or `.digits`), nothing else.
fn is_plain_number(s: &str) -> bool {
    let s = s.strip_prefix(['+', '-']).unwrap_or(s);
    let (mantissa, exponent) = match s.find(['e', 'E']) {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits = |t: &str| t.bytes().all(|b| b.is_ascii_digit());
    let mantissa_ok = (!int.is_empty() || !frac.is_empty()) && digits(int) && digits(frac);
    let exponent_ok = exponent.is_none_or(|e| {
        let e = e.strip_prefix(['+', '-']).unwrap_or(e);
        !e.is_empty() && digits(e)
    });
    mantissa_ok && exponent_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formulas_are_neutralised_numbers_are_not() {
        assert_eq!(neutralise("=1+1"), "'=1+1");
        assert_eq!(neutralise("+cmd"), "'+cmd");
        assert_eq!(neutralise("-2+3"), "'-2+3");
        assert_eq!(neutralise("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(neutralise("\tx"), "'\tx");
        assert_eq!(neutralise("\rx"), "'\rx");
        assert_eq!(neutralise("-"), "'-");
        assert_eq!(neutralise("-1.5"), "-1.5");
        assert_eq!(neutralise("+3"), "+3");
        assert_eq!(neutralise("-1e9"), "-1e9");
        assert_eq!(neutralise("-.5"), "-.5");
        assert_eq!(neutralise("-inf"), "'-inf");
        assert_eq!(neutralise("-1e"), "'-1e");
        assert_eq!(neutralise("alice"), "alice");
        assert_eq!(neutralise("a=b"), "a=b");
        assert_eq!(neutralise("a -b"), "a -b");
        assert_eq!(neutralise(""), "");
    }

    #[test]
    fn formulas_behind_blanks_and_full_width_signs_are_neutralised() {
        for cell in [
            " =1+1",
            "  @SUM(A1)",
            "\n=cmd",
            "\r\n+1",
            "\0=1",
            "\u{FEFF}=1",
            "\u{FEFF} -x",
            "\u{FF1D}1+1",
            "\u{FF0B}cmd",
            "\u{FF0D}2",
            "\u{FF20}SUM(A1)",
            " \u{FF1D}1",
        ] {
            assert_eq!(neutralise(cell), format!("'{cell}"), "{cell:?}");
        }
        assert_eq!(neutralise(" alice"), " alice");
        assert_eq!(neutralise("\u{FEFF}bob"), "\u{FEFF}bob");
    }

    #[test]
    fn streamed_chunks_are_the_whole_csv() {
        let whole = csv(&[]).unwrap();
        assert_eq!(whole, csv_header().unwrap());
        assert!(whole.starts_with(b"Port,Name,Timestamp,"));
        assert!(csv_rows(&[]).unwrap().is_empty());

        // Real rows, with texts that need quoting, split at every point.
        let names = ["alice", "a, b", "say \"hi\"", "two\nlines", "=1+1", ""];
        let results: Vec<TestResult> = (0..names.len() * 2)
            .map(|i| TestResult {
                name: Some(names[i % names.len()].to_string()).filter(|n| !n.is_empty()),
                retransmits: (i % 2 == 0).then_some(i as u64),
                ..crate::history::results_store::tests::result(
                    5201 + i as u16,
                    1_763_767_679 + i as i64,
                )
            })
            .collect();
        let whole = csv(&results).unwrap();
        for cut in 0..=results.len() {
            let mut streamed = csv_header().unwrap();
            streamed.extend(csv_rows(&results[..cut]).unwrap());
            streamed.extend(csv_rows(&results[cut..]).unwrap());
            assert_eq!(streamed, whole, "cut at {cut}");
        }
        let mut reader = csv::Reader::from_reader(whole.as_slice());
        let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
        assert_eq!(rows.len(), results.len());
        for (row, result) in rows.iter().zip(&results) {
            assert_eq!(row.len(), CSV_HEADER.len());
            assert_eq!(row[0], result.port.to_string());
            let name = result.name.as_deref().unwrap_or("");
            assert_eq!(row[1], neutralise(name));
            assert_eq!(row[2], local_time(result.timestamp));
        }
    }

    #[test]
    fn a_probe_has_no_port() {
        let probe = TestResult {
            kind: Some("probe"),
            target: Some("192.0.2.9:5201".into()),
            ..crate::history::results_store::tests::result(0, 1_763_767_679)
        };
        let served = crate::history::results_store::tests::result(5201, 1_763_767_679);
        let text = csv(&[probe, served]).unwrap();
        let mut reader = csv::Reader::from_reader(text.as_slice());
        let ports: Vec<String> = reader
            .records()
            .map(|r| r.unwrap()[0].to_string())
            .collect();
        assert_eq!(ports, ["", "5201"]);
    }

    #[test]
    fn local_time_shape() {
        let t = local_time(1_763_767_679);
        assert_eq!(t.len(), 19, "{t}");
        assert_eq!(&t[4..5], "-");
        assert_eq!(&t[10..11], " ");
        assert_eq!(&t[13..14], ":");
    }
}
