//! Splits a log file's text into entries, tolerating garbage, truncated tails
//! and `{}` clear markers.
//!
//! Stock iperf3 (and this program) write each entry pretty-printed, starting
//! with a line that is exactly `{` and ending with a line that is exactly `}`;
//! nested lines are indented and strings never hold raw newlines, so those two
//! lines are reliable boundaries. A compact object on a line of its own is
//! accepted too. This module only reads text: no files, no summaries (what
//! of an entry a summary needs, [`summary::LEAN`] says; [`super::prune`]
//! builds only that).

use serde_json::Value;

use super::prune::parse_pruned;
use super::summary;

/// One item found in a log file.
#[derive(Debug, Clone, PartialEq)]
pub enum LogItem {
    /// A complete JSON object (a test entry).
    Entry(serde_json::Value),
    /// A `{}` marker: the latest-per-port table was cleared here.
    Cleared,
}

/// What kind of damage a skipped stretch of text was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DamageKind {
    /// Text outside any entry (not a `{` … `}` block).
    Garbage,
    /// A `{` … `}` block that is not valid JSON.
    Invalid,
    /// A `{` line whose closing `}` line never came (the next entry or the
    /// end of the file came first).
    Truncated,
}

/// One skipped stretch of a log file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Damage {
    /// 1-based number of the stretch's first line.
    pub line: usize,
    /// What was wrong with it.
    pub kind: DamageKind,
}

impl std::fmt::Display for Damage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let what = match self.kind {
            DamageKind::Garbage => "skipped text that is not a log entry",
            DamageKind::Invalid => "skipped an entry that is not valid JSON",
            DamageKind::Truncated => "skipped a truncated entry (no closing `}` line)",
        };
        write!(f, "line {}: {what}", self.line)
    }
}

/// What reading one log file found.
#[derive(Debug, Default)]
pub struct ReadLog {
    /// The items in file order.
    pub items: Vec<LogItem>,
    /// How many stretches of text were skipped (garbage, truncated objects).
    pub skipped: usize,
    /// Where each skipped stretch starts and what it was (`skipped` of them).
    pub damage: Vec<Damage>,
}

/// How much of each entry to keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detail {
    /// Every member.
    Full,
    /// Only the members a summary reads ([`summary::LEAN`]); `intervals`
    /// (the bulk of an entry) only where the summary needs their numbers
    /// (a test cut short, 3.7–3.10 entries), and then whole. What loading
    /// history at start-up needs, several times faster. What is left out is
    /// still checked as strictly as [`Detail::Full`] checks it, so both
    /// accept and skip the same entries.
    Summary,
}

/// The reader's output side: items go to a sink as they are found.
struct Reader<F: FnMut(usize, LogItem)> {
    sink: F,
    detail: Detail,
    damage: Vec<Damage>,
}

impl<F: FnMut(usize, LogItem)> Reader<F> {
    fn skip(&mut self, line: usize, kind: DamageKind) {
        self.damage.push(Damage { line, kind });
    }

    /// Parses `text` (whose `{` is at byte `at` of the log) as one object
    /// and hands it on, or records the damage.
    fn object(&mut self, text: &str, at: usize, line: usize, kind: DamageKind) {
        let parsed = match self.detail {
            Detail::Full => serde_json::from_str::<Value>(text),
            Detail::Summary => parse_pruned(text, &summary::LEAN).and_then(|mut lean| {
                if !summary::lean_is_enough(&lean) {
                    return serde_json::from_str::<Value>(text);
                }
                // Only what told that the intervals are not needed was kept
                // of them: drop it rather than hand on a partial array.
                if let Value::Object(members) = &mut lean {
                    members.remove("intervals");
                }
                Ok(lean)
            }),
        };
        match parsed {
            Ok(Value::Object(members)) if members.is_empty() => (self.sink)(at, LogItem::Cleared),
            Ok(value @ Value::Object(_)) => (self.sink)(at, LogItem::Entry(value)),
            _ => self.skip(line, kind),
        }
    }
}

/// Where the reader is between lines.
enum State {
    /// Between entries.
    Outside,
    /// Inside a run of garbage lines that started at this line.
    Garbage,
    /// Inside a pretty entry whose `{` line starts at this byte offset and
    /// line number.
    Entry { offset: usize, line: usize },
}

/// One line of the text: where it starts, its content without the line end
/// (`\n` and a `\r` before it), and where the next line starts.
struct Line<'a> {
    offset: usize,
    text: &'a str,
    next: usize,
}

/// The line of `text` that starts at byte `offset`.
fn line_at(text: &str, offset: usize) -> Line<'_> {
    let rest = &text[offset..];
    let (raw, next) = match memchr::memchr(b'\n', rest.as_bytes()) {
        Some(end) => (&rest[..end], offset + end + 1),
        None => (rest, text.len()),
    };
    Line {
        offset,
        text: raw.strip_suffix('\r').unwrap_or(raw),
        next,
    }
}

/// Where an entry starts on `line`, if one does: the line is exactly `{`,
/// or it ends with a `{` and the next line (at the start of `after`) is
/// indented by exactly one tab (`\t"start":…`). In a pretty entry only the
/// top-level object's members have one tab, so the second form is an entry
/// appended right after a truncated one, whose tail shares the line.
/// Returns the byte offset of `{`.
fn entry_start(line: &Line<'_>, after: &str) -> Option<usize> {
    if line.text == "{" {
        return Some(line.offset);
    }
    (line.text.ends_with('{') && after.starts_with("\t\""))
        .then(|| line.offset + line.text.len() - 1)
}

/// Reads a log file's text.
pub fn read_log(text: &str) -> ReadLog {
    let mut items = Vec::new();
    let damage = read_log_each(text, Detail::Full, |item| items.push(item));
    ReadLog {
        items,
        skipped: damage.len(),
        damage,
    }
}

/// Reads a log file's text, handing each item to `sink` as soon as it is
/// parsed (so a large file is never held as parsed trees all at once), and
/// returns what was skipped.
pub fn read_log_each(text: &str, detail: Detail, mut sink: impl FnMut(LogItem)) -> Vec<Damage> {
    read_log_at(text, detail, |_, item| sink(item))
}

/// [`read_log_each`], handing each item on with the byte offset in `text`
/// of its opening `{` (where a test's id points).
pub fn read_log_at(text: &str, detail: Detail, sink: impl FnMut(usize, LogItem)) -> Vec<Damage> {
    let mut log = Reader {
        sink,
        detail,
        damage: Vec::new(),
    };
    let mut state = State::Outside;
    // Lines are split as they are read, never held all at once.
    let (mut at, mut number) = (0, 0);
    while at < text.len() {
        let line = line_at(text, at);
        (at, number) = (line.next, number + 1);
        if let Some(start) = entry_start(&line, &text[line.next..]) {
            let mid_line = start != line.offset;
            match state {
                State::Entry { line, .. } => log.skip(line, DamageKind::Truncated),
                State::Outside if mid_line => log.skip(number, DamageKind::Garbage),
                State::Outside | State::Garbage => {}
            }
            state = State::Entry {
                offset: start,
                line: number,
            };
            continue;
        }
        match state {
            State::Entry {
                offset: start,
                line: first,
            } => {
                if line.text == "}" {
                    let end = line.offset + line.text.len();
                    log.object(&text[start..end], start, first, DamageKind::Invalid);
                    state = State::Outside;
                }
            }
            State::Outside | State::Garbage => {
                let trimmed = line.text.trim();
                if trimmed.is_empty() {
                    continue;
                }
                let one_line = trimmed.starts_with('{') && trimmed.ends_with('}');
                if one_line && serde_json::from_str::<Value>(trimmed).is_ok_and(|v| v.is_object()) {
                    let brace = line.offset + (line.text.len() - line.text.trim_start().len());
                    log.object(trimmed, brace, number, DamageKind::Invalid);
                    state = State::Outside;
                } else if matches!(state, State::Outside) {
                    log.skip(number, DamageKind::Garbage);
                    state = State::Garbage;
                }
            }
        }
    }
    if let State::Entry { line, .. } = state {
        log.skip(line, DamageKind::Truncated);
    }
    log.damage
}

#[cfg(test)]
mod tests {
    use super::*;

    const STOCK_LOG: &str = include_str!("../../tests/fixtures/stock-3.12.json");

    fn entries(log: &ReadLog) -> Vec<&Value> {
        log.items
            .iter()
            .filter_map(|item| match item {
                LogItem::Entry(v) => Some(v),
                LogItem::Cleared => None,
            })
            .collect()
    }

    #[test]
    fn summary_detail_skips_intervals_but_keeps_what_summaries_need() {
        let full = read_log(STOCK_LOG).items;
        let mut lean = Vec::new();
        let damage = read_log_each(STOCK_LOG, Detail::Summary, |item| lean.push(item));
        assert!(damage.is_empty());
        assert_eq!(full.len(), lean.len());
        for (f, l) in full.iter().zip(&lean) {
            let (LogItem::Entry(f), LogItem::Entry(l)) = (f, l) else {
                continue;
            };
            let cut_short = f["end"].as_object().is_none_or(|end| end.is_empty());
            assert_eq!(
                l.get("intervals").is_some(),
                cut_short,
                "intervals kept only where end is empty"
            );
            assert_eq!(
                crate::store::summary::summarize(5201, f),
                crate::store::summary::summarize(5201, l)
            );
        }
        // A test cut short keeps its intervals for the summary's fallback.
        let cut = "{\n\t\"start\":\t{\n\t},\n\t\"intervals\":\t[1],\n\t\"end\":\t{\n\t}\n}\n";
        let mut items = Vec::new();
        read_log_each(cut, Detail::Summary, |item| items.push(item));
        assert!(matches!(&items[0], LogItem::Entry(v) if v["intervals"][0] == 1));
    }

    /// Stock-like entries of every kind the summary tells apart: the stock
    /// fixture (TCP, -R, --bidir, UDP, UDP -R, UDP --bidir, -P 2, SIGTERM),
    /// 3.7-3.10 forms (UDP with only `end.sum`, bidir without
    /// `_bidir_reverse` names), a test cut short, and our own `webperf3`
    /// member.
    fn every_kind_of_entry() -> Vec<Value> {
        use crate::store::summary::tests::{as_old_bidir, stock};
        let fixture = |text: &str| serde_json::from_str::<Value>(text).expect("fixture");
        let mut all = stock();
        all.push(fixture(include_str!(
            "../../tests/fixtures/cjson-entry-a.json"
        )));
        all.push(fixture(include_str!(
            "../../tests/fixtures/doc-entry-b.json"
        )));
        all.push(fixture(include_str!(
            "../../tests/fixtures/doc-entry-c.json"
        )));
        for i in [3, 4] {
            let mut old_udp = stock().swap_remove(i);
            let end = old_udp["end"].as_object_mut().expect("end");
            end.remove("sum_sent");
            end.remove("sum_received");
            all.push(old_udp);
        }
        all.push(as_old_bidir(stock().swap_remove(2)));
        all.push(as_old_bidir(stock().swap_remove(5)));
        let mut cut_short = stock().swap_remove(0);
        cut_short["end"] = serde_json::json!({});
        cut_short["error"] = "the client has unexpectedly closed the connection".into();
        all.push(cut_short);
        let mut ours = stock().swap_remove(4);
        ours["webperf3"] = serde_json::json!({
            "overlapped": true,
            "health": {"server_cpu_percent": 12.5, "cpu_temp_max_c": 61.2,
                       "throttled_during": ["under-voltage"]},
            "client_results": {"streams": [
                {"id": 1, "bytes": 1000, "jitter": 0.00002, "errors": 1, "packets": 20}
            ]}
        });
        all.push(ours);
        // What the verdict reads: TCP_INFO of the sending streams, the
        // stream threads' CPU, the cores, the link.
        let mut window = stock().swap_remove(1);
        window["webperf3"] = serde_json::json!({
            "cpus": 2, "link_mbps": 1000, "client_results": {"cpu_util_total": 3.5},
            "stream_cpu_percent": [{"socket": 5, "percent": 12.5}],
            "tcp_send": {"sum": {"busy_time_us": 1_000_000, "rwnd_limited_us": 900_000}}
        });
        all.push(window);
        all
    }

    #[test]
    fn summary_detail_summarises_as_the_full_parse_does() {
        use crate::report::json::from_value;
        use crate::report::json::to_pretty;
        use crate::store::summary::summarize;
        // The summary with the verdict's kind, as the history keeps it.
        let judged = |entry: &Value| {
            summarize(5201, entry).map(|r| crate::store::verdict::with_limit(r, entry))
        };
        let mut text: String = every_kind_of_entry()
            .iter()
            .map(|entry| to_pretty(&from_value(entry)))
            .collect();
        text.push_str("{\n}\n");
        let full: Vec<_> = read_log(&text)
            .items
            .iter()
            .map(|item| match item {
                LogItem::Entry(entry) => Some(judged(entry)),
                LogItem::Cleared => None,
            })
            .collect();
        let mut lean = Vec::new();
        let damage = read_log_each(&text, Detail::Summary, |item| {
            lean.push(match item {
                LogItem::Entry(entry) => Some(judged(&entry)),
                LogItem::Cleared => None,
            })
        });
        assert!(damage.is_empty(), "{damage:?}");
        assert_eq!(full.len(), 19);
        let window = full[17].as_ref().and_then(Option::as_ref).expect("a test");
        assert_eq!(
            window.limited_by,
            Some(crate::store::limit::LimitedBy::ReceiveWindow)
        );
        assert_eq!(window.link_bps, Some(1e9));
        for (i, (f, l)) in full.iter().zip(&lean).enumerate() {
            assert_eq!(f, l, "entry {i}");
        }
        assert_eq!(full.len(), lean.len());
    }

    #[test]
    fn reads_a_stock_log() {
        let log = read_log(STOCK_LOG);
        assert_eq!(log.skipped, 0);
        assert_eq!(log.items.len(), 8);
        let all = entries(&log);
        assert_eq!(all[0]["extra_data"], "alice");
        assert_eq!(all[1]["title"], "T1");
        assert_eq!(all[7]["error"], "interrupt - the server has terminated");
        // Duplicate keys (UDP's two `target_bitrate`s): last wins.
        assert_eq!(all[3]["start"]["target_bitrate"], 10_000_000);
    }

    #[test]
    fn empty_and_blank_files_have_nothing() {
        for text in ["", "\n", "\n\n  \n"] {
            let log = read_log(text);
            assert!(log.items.is_empty());
            assert_eq!(log.skipped, 0);
        }
    }

    #[test]
    fn clear_markers_in_both_forms() {
        let log = read_log("{}\n{\n}\n{\"a\":1}\n{\n\t\"b\":\t2\n}\n{ }\n");
        assert_eq!(log.skipped, 0);
        assert_eq!(
            log.items,
            vec![
                LogItem::Cleared,
                LogItem::Cleared,
                LogItem::Entry(serde_json::json!({"a": 1})),
                LogItem::Entry(serde_json::json!({"b": 2})),
                LogItem::Cleared,
            ]
        );
    }

    #[test]
    fn garbage_between_entries_is_skipped_once_per_stretch() {
        let text = "hello\nworld\n{\n\t\"a\":\t1\n}\nnot json\n\nstill not\n{\n\t\"b\":\t2\n}\n";
        let log = read_log(text);
        assert_eq!(entries(&log).len(), 2);
        assert_eq!(log.skipped, 2);
        assert_eq!(
            log.damage,
            vec![
                Damage {
                    line: 1,
                    kind: DamageKind::Garbage
                },
                Damage {
                    line: 6,
                    kind: DamageKind::Garbage
                }
            ]
        );
    }

    #[test]
    fn truncated_last_entry() {
        let cut = STOCK_LOG.len() - 200;
        let log = read_log(&STOCK_LOG[..cut]);
        assert_eq!(entries(&log).len(), 7);
        assert_eq!(log.skipped, 1);
        assert_eq!(log.damage[0].kind, DamageKind::Truncated);
    }

    #[test]
    fn truncated_entry_followed_by_a_good_one_resynchronises() {
        // The first entry lost its tail at a line end, then the next one was
        // appended.
        let second = STOCK_LOG.find("\n{\n").expect("two entries") + 1;
        let cut = STOCK_LOG[..second / 2].rfind('\n').expect("a line end") + 1;
        let text = format!("{}{}", &STOCK_LOG[..cut], &STOCK_LOG[second..]);
        let log = read_log(&text);
        assert_eq!(entries(&log).len(), 7);
        assert_eq!(
            log.damage,
            vec![Damage {
                line: 1,
                kind: DamageKind::Truncated
            }]
        );
    }

    #[test]
    fn entry_appended_mid_line_after_a_truncated_one_is_found() {
        // The first entry lost its tail mid-line, and the next entry was
        // appended right after it (as stock's append does).
        let second = STOCK_LOG.find("\n{\n").expect("two entries") + 1;
        let cut = STOCK_LOG[..second / 2].trim_end_matches('\n');
        assert!(!cut.ends_with('{'));
        let text = format!("{cut}{}", &STOCK_LOG[second..]);
        let log = read_log(&text);
        assert_eq!(entries(&log).len(), 7);
        assert_eq!(
            log.damage,
            vec![Damage {
                line: 1,
                kind: DamageKind::Truncated
            }]
        );
        // The same after garbage that shares the entry's first line.
        let log = read_log(&format!("garbage{}", &STOCK_LOG[second..]));
        assert_eq!(entries(&log).len(), 7);
        assert_eq!(
            log.damage,
            vec![Damage {
                line: 1,
                kind: DamageKind::Garbage
            }]
        );
    }

    #[test]
    fn nested_objects_are_not_entry_starts() {
        // `"end":\t{` is followed by two-tab lines; `"end":\t{` + `\t}` too.
        let log = read_log(STOCK_LOG);
        assert_eq!(log.skipped, 0);
        assert_eq!(log.items.len(), 8);
    }

    #[test]
    fn invalid_block_is_skipped() {
        let log = read_log("{\n\t\"a\":\t,\n}\n{\n\t\"b\":\t1\n}\n");
        assert_eq!(entries(&log).len(), 1);
        assert_eq!(
            log.damage,
            vec![Damage {
                line: 1,
                kind: DamageKind::Invalid
            }]
        );
    }

    #[test]
    fn numbers_above_i64_nulls_and_duplicates_parse() {
        let text = "{\n\t\"snd_wnd\":\t18446744073709551615,\n\t\"x\":\tnull,\n\t\"big\":\t1e400,\n\t\"k\":\t1,\n\t\"k\":\t2\n}\n";
        let log = read_log(text);
        // 1e400 is out of range for a double: serde_json rejects it, and the
        // entry is skipped rather than misread.
        assert_eq!(log.skipped, 1);
        let text = text.replace("1e400", "1e300");
        let log = read_log(&text);
        let all = entries(&log);
        assert_eq!(all[0]["snd_wnd"].as_u64(), Some(u64::MAX));
        assert!(all[0]["x"].is_null());
        assert_eq!(all[0]["k"], 2);
    }

    #[test]
    fn binary_junk_never_panics() {
        let mut bytes: Vec<u8> = (0..=255u8).cycle().take(5000).collect();
        bytes.push(b'\n');
        bytes.extend_from_slice(STOCK_LOG.as_bytes());
        bytes.extend_from_slice(b"\xff\xfe{\n\x00\x01}\n{\n\t\"a\":\t\"\xc3\x28\"\n}\n");
        let text = String::from_utf8_lossy(&bytes);
        let log = read_log(&text);
        assert_eq!(entries(&log).len(), 9);
        assert!(log.skipped >= 2);
        // Deep nesting is refused by serde_json, not a stack overflow.
        let deep = format!(
            "{{\n\"a\":{}{}\n}}\n",
            "[".repeat(100_000),
            "]".repeat(100_000)
        );
        assert_eq!(read_log(&deep).skipped, 1);
    }

    #[test]
    fn every_cut_and_splice_of_a_stock_log_is_tolerated() {
        // Byte spans of the entries: from a `{` line to the end of its `}` line.
        let mut starts = vec![0];
        starts.extend(STOCK_LOG.match_indices("\n{\n").map(|(i, _)| i + 1));
        // (An entry is complete once its `}` is there, newline or not.)
        let ends: Vec<usize> = STOCK_LOG
            .match_indices("\n}\n")
            .map(|(i, _)| i + 2)
            .collect();
        assert_eq!((starts.len(), ends.len()), (8, 8));
        let spans: Vec<(usize, usize)> = starts.into_iter().zip(ends).collect();
        for cut in (0..STOCK_LOG.len()).step_by(37) {
            let log = read_log(&STOCK_LOG[..cut]);
            let intact = spans.iter().filter(|(_, end)| *end <= cut).count();
            assert_eq!(log.items.len(), intact, "cut at {cut}");
            // A hole in the middle loses exactly the entries it touches.
            let hole = cut / 2..cut;
            let spliced = format!("{}{}", &STOCK_LOG[..hole.start], &STOCK_LOG[hole.end..]);
            let log = read_log(&spliced);
            let intact = spans
                .iter()
                .filter(|(s, e)| *e <= hole.start || *s >= hole.end)
                .count();
            let touched_one = spans.iter().any(|(s, e)| *s < hole.end && *e > hole.start);
            // Joining the head of one entry to the tail of another can yield
            // one valid object by chance (e.g. a hole that removes whole
            // lines of one entry's middle); never more than that.
            assert!(
                log.items.len() == intact || (touched_one && log.items.len() == intact + 1),
                "hole {hole:?}: {} items, {intact} intact",
                log.items.len()
            );
            for item in &log.items {
                if let LogItem::Entry(entry) = item {
                    let _ = crate::store::summary::summarize(1, entry);
                }
            }
        }
    }

    #[test]
    fn crlf_line_ends_are_accepted() {
        let log = read_log("{\r\n\t\"a\":\t1\r\n}\r\n{}\r\n");
        assert_eq!(log.skipped, 0);
        assert_eq!(log.items.len(), 2);
    }
}

#[cfg(test)]
mod props {
    use super::*;
    use crate::report::json::from_value;
    use crate::report::json::to_pretty;
    use crate::testing::{config, json_value};
    use proptest::prelude::*;

    const KEYS: &[&str] = &["start", "intervals", "end", "extra_data", "error"];

    /// A log entry as the server writes it (a non-empty object, pretty),
    /// and the value a JSON parser reads from that text.
    fn entry() -> impl Strategy<Value = (Value, String)> {
        proptest::collection::vec((proptest::sample::select(KEYS), json_value(KEYS)), 1..4)
            .prop_map(|members| {
                let value = Value::Object(
                    members
                        .into_iter()
                        .map(|(k, v)| (k.to_string(), v))
                        .collect(),
                );
                let text = to_pretty(&from_value(&value));
                // What the printer wrote (cJSON's number rules included).
                let written = serde_json::from_str(&text).expect("the printer writes JSON");
                (written, text)
            })
    }

    /// Text that is anything but a whole entry: random characters, and
    /// lines made of the characters that matter to the reader.
    fn garbage() -> impl Strategy<Value = String> {
        prop_oneof![
            ".{0,40}",
            "[{}\t\n\r\" :a1\\[\\],]{0,60}",
            Just("{\n".to_string()),
            Just("{\n\t\"start\":\t{\n".to_string()),
            Just("}\n".to_string()),
            Just("\u{0}\u{feff}\n".to_string()),
        ]
    }

    /// Names the summary reads, at any level.
    const SUMMARY_KEYS: &[&str] = &[
        "test_start",
        "sender",
        "omitted",
        "sum",
        "sum_sent",
        "sum_received",
        "sum_bidir_reverse",
        "bytes",
        "seconds",
        "jitter_ms",
        "packets",
    ];

    /// A value where the summary expects an object with `names` (an end
    /// sum, a stream): mostly that, sometimes anything.
    fn object_of(names: &'static [&'static str]) -> impl Strategy<Value = Value> {
        let members = proptest::collection::vec(
            (proptest::sample::select(names), json_value(SUMMARY_KEYS)),
            0..5,
        )
        .prop_map(|m| Value::Object(m.into_iter().map(|(k, v)| (k.to_string(), v)).collect()));
        prop_oneof![4 => members, 1 => json_value(SUMMARY_KEYS)]
    }

    /// An entry shaped as stock writes one (any version), with odd values
    /// and members here and there, pretty as written.
    fn summary_entry() -> impl Strategy<Value = String> {
        const SUM: &[&str] = &[
            "bytes",
            "seconds",
            "bits_per_second",
            "jitter_ms",
            "packets",
        ];
        const STREAM: &[&str] = &["sender", "bytes", "seconds", "socket", "omitted"];
        const END: &[&str] = &[
            "sum",
            "sum_sent",
            "sum_received",
            "sum_sent_bidir_reverse",
            "sum_received_bidir_reverse",
            "streams",
        ];
        let test_start = (
            proptest::sample::select(&["TCP", "UDP"][..]),
            any::<bool>(),
            any::<bool>(),
        )
            .prop_map(|(protocol, bidir, reverse)| {
                serde_json::json!({"protocol": protocol, "bidir": bidir, "reverse": reverse})
            });
        // Mostly with the flags and numbers of their real types.
        let sum = || {
            (object_of(SUM), proptest::option::of(0.0..10.0f64)).prop_map(|(mut sum, seconds)| {
                if let (Some(seconds), Some(sum)) = (seconds, sum.as_object_mut()) {
                    sum.insert("seconds".to_string(), seconds.into());
                }
                sum
            })
        };
        let stream = (object_of(STREAM), any::<bool>()).prop_map(|(mut stream, sender)| {
            if let Some(stream) = stream.as_object_mut() {
                stream.insert("sender".to_string(), sender.into());
            }
            stream
        });
        let interval = (
            proptest::collection::vec(stream, 0..3),
            sum(),
            proptest::option::weighted(0.2, sum()),
        )
            .prop_map(|(streams, sum, bidir_sum)| {
                let mut interval = serde_json::json!({"streams": streams, "sum": sum});
                if let Some(s) = bidir_sum {
                    interval["sum_bidir_reverse"] = s;
                }
                interval
            });
        let end = proptest::collection::vec((proptest::sample::select(END), sum()), 0..5)
            .prop_map(|m| Value::Object(m.into_iter().map(|(k, v)| (k.to_string(), v)).collect()));
        (
            test_start,
            proptest::collection::vec(interval, 0..3),
            prop_oneof![4 => end, 1 => json_value(SUMMARY_KEYS)],
            proptest::option::of(("[a-z]{0,4}", json_value(SUMMARY_KEYS))),
        )
            .prop_map(|(test_start, intervals, end, extra)| {
                let mut entry = serde_json::json!({
                    "start": {"test_start": test_start, "timestamp": {"timesecs": 1}},
                    "intervals": intervals,
                    "end": end,
                });
                if let Some((name, value)) = extra {
                    entry[name] = value;
                }
                to_pretty(&from_value(&entry))
            })
    }

    proptest! {
        #![proptest_config(config(256))]

        /// The lean reader finds and skips what the full one does, and its
        /// entries summarise the same.
        #[test]
        fn summary_detail_agrees_with_the_full_reader(
            parts in proptest::collection::vec((garbage(), summary_entry()), 1..5),
        ) {
            let text: String = parts.iter().map(|(junk, entry)| format!("{junk}{entry}")).collect();
            let full = read_log(&text);
            let mut lean = Vec::new();
            let damage = read_log_each(&text, Detail::Summary, |item| lean.push(item));
            prop_assert_eq!(&damage, &full.damage);
            prop_assert_eq!(lean.len(), full.items.len());
            for (l, f) in lean.iter().zip(&full.items) {
                match (l, f) {
                    (LogItem::Entry(l), LogItem::Entry(f)) => {
                        let summary = crate::store::summary::summarize;
                        prop_assert_eq!(summary(1, l), summary(1, f));
                    }
                    (LogItem::Cleared, LogItem::Cleared) => {}
                    _ => prop_assert!(false, "{:?} read as {:?}", f, l),
                }
            }
        }

        #[test]
        fn arbitrary_text_never_panics(text in "(.|\n|\t|\\{|\\})*") {
            let log = read_log(&text);
            prop_assert_eq!(log.skipped, log.damage.len());
            let lines = text.split_inclusive('\n').count().max(1);
            let mut previous = 0;
            for d in &log.damage {
                prop_assert!(d.line >= 1 && d.line <= lines);
                prop_assert!(d.line >= previous);
                previous = d.line;
            }
        }

        /// Valid entries spliced with garbage are all found, in order.
        #[test]
        fn garbage_between_entries_keeps_every_entry(
            parts in proptest::collection::vec((garbage(), entry()), 1..6),
            tail in garbage(),
        ) {
            let mut text = String::new();
            for (junk, (_, entry)) in &parts {
                text.push_str(junk);
                text.push_str(entry);
            }
            text.push_str(&tail);
            let log = read_log(&text);
            let found: Vec<&Value> = log
                .items
                .iter()
                .filter_map(|item| match item {
                    LogItem::Entry(v) => Some(v),
                    LogItem::Cleared => None,
                })
                .collect();
            let mut rest = found.iter();
            for (_, (want, _)) in &parts {
                prop_assert!(
                    rest.any(|got| *got == want),
                    "entry lost: {}\nin:\n{}",
                    want,
                    text
                );
            }
        }
    }
}
