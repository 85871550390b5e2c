//! An ordered JSON tree that allows duplicate keys, and the two renderings
//! stock iperf3 uses: cJSON's pretty printer (the log file) and its compact
//! printer (the results exchange). Numbers follow cJSON's `%1.15g`/`%1.17g`
//! rule so our logs are byte-compatible with stock ones.

/// A JSON value whose objects keep insertion order and may repeat a key
/// (stock logs repeat `target_bitrate`).
#[derive(Debug, Clone, PartialEq)]
pub enum Json {
    /// `null`
    Null,
    /// `true` / `false`
    Bool(bool),
    /// An integer, printed as such (including negatives: `-1`).
    Int(i64),
    /// A double, printed with cJSON's number rule; non-finite prints `null`.
    Num(f64),
    /// A string, escaped as cJSON escapes it.
    Str(String),
    /// An array.
    Arr(Vec<Json>),
    /// An object: members in order, keys may repeat.
    Obj(Vec<(String, Json)>),
}

impl Json {
    /// An empty object.
    pub fn obj() -> Json {
        Json::Obj(Vec::new())
    }

    /// Appends a member to an object (no-op on other variants).
    pub fn push(&mut self, key: &str, value: impl Into<Json>) {
        if let Json::Obj(members) = self {
            members.push((key.to_string(), value.into()));
        }
    }

    /// Builder form of [`Json::push`].
    pub fn with(mut self, key: &str, value: impl Into<Json>) -> Json {
        self.push(key, value);
        self
    }

    /// The first member named `key` of an object.
    pub fn get(&self, key: &str) -> Option<&Json> {
        match self {
            Json::Obj(members) => members.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// The first member named `key` of an object, to change.
    pub fn get_mut(&mut self, key: &str) -> Option<&mut Json> {
        match self {
            Json::Obj(members) => members.iter_mut().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// Sets the member `key` of an object where it stands, or appends it.
    pub fn set(&mut self, key: &str, value: impl Into<Json>) {
        match self.get_mut(key) {
            Some(v) => *v = value.into(),
            None => self.push(key, value),
        }
    }
}

impl From<bool> for Json {
    fn from(v: bool) -> Self {
        Json::Bool(v)
    }
}
impl From<i64> for Json {
    fn from(v: i64) -> Self {
        Json::Int(v)
    }
}
impl From<i32> for Json {
    fn from(v: i32) -> Self {
        Json::Int(i64::from(v))
    }
}
impl From<u32> for Json {
    fn from(v: u32) -> Self {
        Json::Int(i64::from(v))
    }
}
impl From<u16> for Json {
    fn from(v: u16) -> Self {
        Json::Int(i64::from(v))
    }
}
impl From<u64> for Json {
    fn from(v: u64) -> Self {
        match i64::try_from(v) {
            Ok(i) => Json::Int(i),
            Err(_) => Json::Num(v as f64),
        }
    }
}
impl From<usize> for Json {
    fn from(v: usize) -> Self {
        Json::from(v as u64)
    }
}
impl From<f64> for Json {
    fn from(v: f64) -> Self {
        Json::Num(v)
    }
}
impl From<&str> for Json {
    fn from(v: &str) -> Self {
        Json::Str(v.to_string())
    }
}
impl From<String> for Json {
    fn from(v: String) -> Self {
        Json::Str(v)
    }
}
impl From<Vec<Json>> for Json {
    fn from(v: Vec<Json>) -> Self {
        Json::Arr(v)
    }
}

/// Reads any JSON into an ordered tree, keeping every member in order,
/// duplicate keys included. Integers that fit `i64` become [`Json::Int`],
/// every other number a [`Json::Num`] (cJSON holds doubles), so printing a
/// stock entry read with `serde_json::from_str::<Json>` gives back the same
/// bytes.
impl<'de> serde::Deserialize<'de> for Json {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Json, D::Error> {
        d.deserialize_any(JsonVisitor)
    }
}

/// Builds a [`Json`] from what a serde deserializer reads.
struct JsonVisitor;

impl<'de> serde::de::Visitor<'de> for JsonVisitor {
    type Value = Json;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_unit<E>(self) -> Result<Json, E> {
        Ok(Json::Null)
    }
    fn visit_none<E>(self) -> Result<Json, E> {
        Ok(Json::Null)
    }
    fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> Result<Json, D::Error> {
        serde::Deserialize::deserialize(d)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Json, E> {
        Ok(Json::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Json, E> {
        Ok(Json::Int(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Json, E> {
        Ok(Json::from(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Json, E> {
        Ok(Json::Num(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Json, E> {
        Ok(Json::Str(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<Json, E> {
        Ok(Json::Str(v))
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Json, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Json::Arr(items))
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Json, A::Error> {
        let mut members = Vec::new();
        while let Some(member) = map.next_entry()? {
            members.push(member);
        }
        Ok(Json::Obj(members))
    }
}

/// Renders `value` as cJSON's pretty printer does (tabs, `"key":\t`, arrays on
/// one line), followed by one `\n`: exactly one stock log entry.
pub fn to_pretty(value: &Json) -> String {
    let mut out = String::with_capacity(4096);
    write_value(&mut out, value, true, 0);
    out.push('\n');
    out
}

/// Renders `value` compactly (no whitespace), as cJSON's unformatted printer.
pub fn to_compact(value: &Json) -> String {
    let mut out = String::with_capacity(1024);
    write_value(&mut out, value, false, 0);
    out
}

/// Writes one value. `depth` is cJSON's nesting depth of the enclosing
/// container: objects and arrays both raise it by one for their contents.
fn write_value(out: &mut String, value: &Json, pretty: bool, depth: usize) {
    match value {
        Json::Null => out.push_str("null"),
        Json::Bool(true) => out.push_str("true"),
        Json::Bool(false) => out.push_str("false"),
        Json::Int(i) => out.push_str(&i.to_string()),
        Json::Num(n) => out.push_str(&format_number(*n)),
        Json::Str(s) => write_string(out, s),
        Json::Arr(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                    if pretty {
                        out.push(' ');
                    }
                }
                write_value(out, item, pretty, depth + 1);
            }
            out.push(']');
        }
        Json::Obj(members) => {
            let inner = depth + 1;
            out.push('{');
            if pretty {
                out.push('\n');
            }
            for (i, (key, member)) in members.iter().enumerate() {
                if pretty {
                    push_tabs(out, inner);
                }
                write_string(out, key);
                out.push(':');
                if pretty {
                    out.push('\t');
                }
                write_value(out, member, pretty, inner);
                if i + 1 < members.len() {
                    out.push(',');
                }
                if pretty {
                    out.push('\n');
                }
            }
            if pretty {
                push_tabs(out, depth);
            }
            out.push('}');
        }
    }
}

fn push_tabs(out: &mut String, n: usize) {
    out.extend(std::iter::repeat_n('\t', n));
}

/// cJSON's string escaping: `"`, `\` and `\b \f \n \r \t` with a backslash,
/// other control bytes as `\u00xx`, everything else verbatim.
fn write_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Formats a double as cJSON does: integral values in the i64 range as
/// integers, otherwise `%1.15g`, or `%1.17g` when 15 digits do not round-trip.
/// Non-finite values print as `null`.
pub fn format_number(value: f64) -> String {
    if !value.is_finite() {
        return "null".to_string();
    }
    // cJSON keeps a saturated integer copy of every number and prints that
    // copy when it equals the double (so 2^63 prints as i64::MAX, as stock).
    let int = value as i64;
    if int as f64 == value {
        return int.to_string();
    }
    let short = format_g(value, 15);
    let round_trips = short.parse::<f64>().is_ok_and(|back| {
        let max = back.abs().max(value.abs());
        (back - value).abs() <= max * f64::EPSILON
    });
    if round_trips {
        short
    } else {
        format_g(value, 17)
    }
}

/// C's `printf("%1.<precision>g", value)` for a finite `value`.
///
/// `%g` picks the style from the decimal exponent X of the value rounded to
/// `precision` significant digits: fixed notation when `-4 <= X < precision`,
/// else exponent notation; then trailing zeros (and a bare `.`) are removed.
/// Rust's `{:.N e}` rounds correctly to N+1 significant digits (half to even
/// on exact ties, as glibc does), so its digits and exponent are the ones
/// `%g` uses.
pub fn format_g(value: f64, precision: usize) -> String {
    let precision = precision.max(1);
    let sci = format!("{:.*e}", precision - 1, value);
    // `sci` is `[-]d[.ddd]e<exp>`.
    let (mantissa, exp) = match sci.split_once('e') {
        Some((m, e)) => (m, e.parse::<i32>().unwrap_or(0)),
        None => (sci.as_str(), 0),
    };
    let (negative, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => (true, m),
        None => (false, mantissa),
    };
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let mut out = String::with_capacity(precision + 8);
    if negative {
        out.push('-');
    }
    let p = i32::try_from(precision).unwrap_or(i32::MAX);
    if exp < -4 || exp >= p {
        let (first, rest) = digits.split_at(1);
        out.push_str(first);
        let rest = rest.trim_end_matches('0');
        if !rest.is_empty() {
            out.push('.');
            out.push_str(rest);
        }
        out.push('e');
        out.push(if exp < 0 { '-' } else { '+' });
        out.push_str(&format!("{:02}", exp.unsigned_abs()));
    } else if exp < 0 {
        // 0.000ddd
        out.push_str("0.");
        for _ in 0..(-exp - 1) {
            out.push('0');
        }
        out.push_str(digits.trim_end_matches('0'));
    } else {
        let split = usize::try_from(exp + 1).unwrap_or(0).min(digits.len());
        let (int_part, frac) = digits.split_at(split);
        out.push_str(int_part);
        let frac = frac.trim_end_matches('0');
        if !frac.is_empty() {
            out.push('.');
            out.push_str(frac);
        }
    }
    out
}

/// A serde_json value as an ordered [`Json`] tree (serde_json keeps object
/// members in key order, so the order is that of the map).
pub fn from_value(v: &serde_json::Value) -> Json {
    use serde_json::Value as V;
    match v {
        V::Null => Json::Null,
        V::Bool(b) => Json::Bool(*b),
        V::Number(n) => match n.as_i64() {
            Some(i) => Json::Int(i),
            None => Json::Num(n.as_f64().unwrap_or(f64::NAN)),
        },
        V::String(s) => Json::Str(s.clone()),
        V::Array(a) => Json::Arr(a.iter().map(from_value).collect()),
        V::Object(m) => Json::Obj(m.iter().map(|(k, v)| (k.clone(), from_value(v))).collect()),
    }
}

/// `value` as a JSON reader sees its printed text ([`to_pretty`]): every
/// number as [`format_number`] prints it and read back as serde_json reads
/// it (so integral doubles become integers, non-finite ones `null`), and of
/// repeated keys the last. What the store summarises a finished test from,
/// without printing it and reading it back whole.
pub fn to_value(value: &Json) -> serde_json::Value {
    use serde_json::Value as V;
    match value {
        Json::Null => V::Null,
        Json::Bool(b) => V::Bool(*b),
        Json::Int(i) => V::from(*i),
        Json::Num(n) => format_number(*n)
            .parse::<serde_json::Number>()
            .map_or(V::Null, V::Number),
        Json::Str(s) => V::String(s.clone()),
        Json::Arr(items) => V::Array(items.iter().map(to_value).collect()),
        Json::Obj(members) => V::Object(
            members
                .iter()
                .map(|(k, v)| (k.clone(), to_value(v)))
                .collect(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::config;
    use proptest::prelude::*;

    /// An ordered [`Json`] tree as the server builds one: integers, doubles of
    /// any kind (non-finite included), strings with control characters, and
    /// objects whose keys may repeat.
    pub fn json_tree() -> impl Strategy<Value = Json> {
        let scalar = prop_oneof![
            Just(Json::Null),
            any::<bool>().prop_map(Json::Bool),
            any::<i64>().prop_map(Json::Int),
            any::<f64>().prop_map(Json::Num),
            (-1e6..1e6f64).prop_map(Json::Num),
            "\\PC{0,8}|[\\x00-\\x1f\"\\\\/]{0,4}".prop_map(Json::Str),
        ];
        scalar.prop_recursive(4, 32, 6, |inner| {
            let key = proptest::sample::select(&["a", "b", "c", "\"\\\n", "é"][..]);
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6).prop_map(Json::Arr),
                proptest::collection::vec((key.prop_map(str::to_string), inner), 0..6)
                    .prop_map(Json::Obj),
            ]
        })
    }

    /// Reads `text` as a [`Json`] tree.
    fn parse(text: &str) -> serde_json::Result<Json> {
        serde_json::from_str(text)
    }

    /// Example entry A of the protocol reference (a stock 3.12 TCP entry).
    const ENTRY_A: &str = include_str!("../../tests/fixtures/cjson-entry-a.json");
    /// A stock 3.12 server log: TCP, -R, --bidir, UDP, UDP -R, UDP --bidir,
    /// -P 2 over IPv6, and the entry written on SIGTERM.
    const STOCK_LOG: &str = include_str!("../../tests/fixtures/stock-3.12.json");

    /// Splits a stock log into entry texts at lines that are exactly `{`.
    fn split_entries(text: &str) -> Vec<String> {
        let mut entries: Vec<String> = Vec::new();
        for line in text.split_inclusive('\n') {
            if line == "{\n" || entries.is_empty() {
                entries.push(String::new());
            }
            if let Some(last) = entries.last_mut() {
                last.push_str(line);
            }
        }
        entries
    }

    #[test]
    fn entry_a_is_reproduced_byte_for_byte() {
        let tree = parse(ENTRY_A).expect("entry A parses");
        assert_eq!(to_pretty(&tree), ENTRY_A);
    }

    #[test]
    fn every_stock_entry_is_reproduced_byte_for_byte() {
        let entries = split_entries(STOCK_LOG);
        assert_eq!(entries.len(), 8);
        for entry in entries {
            let tree = parse(&entry).expect("stock entry parses");
            assert_eq!(to_pretty(&tree), entry);
        }
    }

    #[test]
    fn reading_keeps_order_and_duplicate_keys() {
        let tree = parse(r#"{"b":1,"a":2,"b":3.5}"#).unwrap();
        assert_eq!(
            tree,
            Json::Obj(vec![
                ("b".into(), Json::Int(1)),
                ("a".into(), Json::Int(2)),
                ("b".into(), Json::Num(3.5)),
            ])
        );
        assert_eq!(tree.get("b"), Some(&Json::Int(1)));
        assert_eq!(to_compact(&tree), r#"{"b":1,"a":2,"b":3.5}"#);
    }

    #[test]
    fn reading_rejects_bad_input_without_panicking() {
        for bad in [
            "",
            "{",
            "}",
            "[1,]",
            "{\"a\"}",
            "{\"a\":1,}",
            "01",
            "1.",
            "-",
            "1e",
            "tru",
            "\"abc",
            "\"\\x\"",
            "\"\\u12\"",
            "\"a\u{1}\"",
            "{} x",
            "[1 2]",
            "{1:2}",
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
        let deep = "[".repeat(100_000);
        assert!(parse(&deep).is_err());
        let err = parse("[1, x]").unwrap_err();
        assert_eq!((err.line(), err.column()), (1, 5));
    }

    #[test]
    fn reading_takes_escapes_and_numbers() {
        let text = r#" ["\u00e9\ud83d\ude00\n\/", -0, 1E2, 9223372036854775808, -12, 0.5e-3] "#;
        assert_eq!(
            parse(text).unwrap(),
            Json::Arr(vec![
                Json::Str("é😀\n/".into()),
                // serde_json reads `-0` as the double -0.0; it prints `0`.
                Json::Num(-0.0),
                Json::Num(100.0),
                Json::Num(9223372036854775808.0),
                Json::Int(-12),
                Json::Num(0.0005),
            ])
        );
        // A lone surrogate has no character to stand for: refused.
        assert!(parse(r#""\ud800x""#).is_err());
    }

    #[test]
    // The literals are written as stock logs print them: 17 digits.
    #[allow(clippy::excessive_precision)]
    fn numbers_follow_cjson() {
        let cases: &[(f64, &str)] = &[
            (1.0000259876251221, "1.0000259876251221"),
            (19700133928.304615, "19700133928.304615"),
            (0.0050860000774264336, "0.0050860000774264336"),
            (1.2732467826455832e-05, "1.2732467826455832e-05"),
            (0.012732467826455832, "0.012732467826455832"),
            (0.008120849609375, "0.008120849609375"),
            (2.005278, "2.005278"),
            (1.000026, "1.000026"),
            (131072.0, "131072"),
            (1.0, "1"),
            (0.0, "0"),
            (-0.0, "0"),
            (-1.0, "-1"),
            (1795303929.0, "1795303929"),
            (0.1, "0.1"),
            (1e-7, "1e-07"),
            (1e300, "1e+300"),
            (-2.5e-300, "-2.5e-300"),
            (1.5e15, "1500000000000000"),
            (0.5, "0.5"),
            (53.221726149661876, "53.221726149661876"),
            (0.84358890923259244, "0.84358890923259244"),
            (1e-5, "1e-05"),
            (0.0001, "0.0001"),
            (123456.789, "123456.789"),
            // Integral but beyond i64: %g, not an integer.
            (1e19, "1e+19"),
            (18446744073709551615.0, "1.8446744073709552e+19"),
            (-1e20, "-1e+20"),
            (2f64.powi(70), "1.1805916207174113e+21"),
            // cJSON's saturated integer copy equals 2^63 exactly.
            (9223372036854775808.0, "9223372036854775807"),
            (-9223372036854775808.0, "-9223372036854775808"),
            (f64::NAN, "null"),
            (f64::INFINITY, "null"),
            (f64::NEG_INFINITY, "null"),
        ];
        for (value, expected) in cases {
            assert_eq!(format_number(*value), *expected, "value {value:e}");
        }
    }

    #[test]
    fn int_prints_as_plain_integer() {
        assert_eq!(to_compact(&Json::Int(-1)), "-1");
        assert_eq!(to_compact(&Json::Int(i64::MAX)), "9223372036854775807");
        assert_eq!(to_compact(&Json::from(u64::MAX)), "1.8446744073709552e+19");
    }

    /// `printf("%1.<p>g", v)` from the C library, the reference for [`format_g`].
    fn c_format_g(value: f64, precision: usize) -> String {
        let format = if precision == 15 {
            c"%1.15g"
        } else {
            c"%1.17g"
        };
        let mut buf = [0u8; 64];
        // SAFETY: the buffer is large enough for any %g of a double with at
        // most 17 digits, snprintf is bounded by its length, and the format
        // consumes exactly one double.
        let n =
            unsafe { libc::snprintf(buf.as_mut_ptr().cast(), buf.len(), format.as_ptr(), value) };
        let n = usize::try_from(n).expect("snprintf succeeded");
        String::from_utf8(buf[..n].to_vec()).expect("ASCII")
    }

    #[test]
    fn format_g_matches_the_c_library() {
        // A fixed xorshift sequence of bit patterns covers every exponent range.
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut checked = 0;
        while checked < 20_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let value = f64::from_bits(state);
            if !value.is_finite() {
                continue;
            }
            // Also values of the magnitudes logs hold, with few digits.
            let scaled = (value.abs().fract() * 1e6).round() / 1e3;
            for v in [value, scaled, -scaled, scaled * 1e-6, scaled * 1e12] {
                for p in [15, 17] {
                    assert_eq!(
                        format_g(v, p),
                        c_format_g(v, p),
                        "value {v:e} precision {p}"
                    );
                }
            }
            checked += 1;
        }
        // Exact ties round half to even in both.
        for v in [
            0.125,
            2.5,
            0.5,
            1e22,
            2f64.powi(60) + 2048.0,
            1234567890123456.5,
        ] {
            for p in [1, 2, 15, 17] {
                let format = match p {
                    1 => c"%1.1g",
                    2 => c"%1.2g",
                    15 => c"%1.15g",
                    _ => c"%1.17g",
                };
                let mut buf = [0u8; 64];
                // SAFETY: as in `c_format_g`.
                let n = unsafe {
                    libc::snprintf(buf.as_mut_ptr().cast(), buf.len(), format.as_ptr(), v)
                };
                let n = usize::try_from(n).expect("snprintf succeeded");
                assert_eq!(
                    format_g(v, p).as_bytes(),
                    &buf[..n],
                    "value {v:e} precision {p}"
                );
            }
        }
    }

    #[test]
    fn pretty_layout_of_containers() {
        let tree = Json::obj()
            .with("empty", Json::obj())
            .with("none", Json::Arr(vec![]))
            .with(
                "list",
                Json::Arr(vec![Json::Int(1), Json::Num(2.5), Json::Null]),
            )
            .with(
                "objs",
                Json::Arr(vec![
                    Json::obj().with("a", true),
                    Json::obj(),
                    Json::Arr(vec![]),
                ]),
            )
            .with(
                "inner",
                Json::obj().with("end", Json::obj()).with("b", false),
            );
        let expected = "{\n\
            \t\"empty\":\t{\n\t},\n\
            \t\"none\":\t[],\n\
            \t\"list\":\t[1, 2.5, null],\n\
            \t\"objs\":\t[{\n\t\t\t\"a\":\ttrue\n\t\t}, {\n\t\t}, []],\n\
            \t\"inner\":\t{\n\t\t\"end\":\t{\n\t\t},\n\t\t\"b\":\tfalse\n\t}\n\
            }\n";
        assert_eq!(to_pretty(&tree), expected);
        assert_eq!(to_pretty(&Json::obj()), "{\n}\n");
        assert_eq!(
            to_compact(&tree),
            r#"{"empty":{},"none":[],"list":[1,2.5,null],"objs":[{"a":true},{},[]],"inner":{"end":{},"b":false}}"#
        );
    }

    #[test]
    fn strings_are_escaped_as_cjson_does() {
        let s = "q\" b\\ /é\u{8}\u{c}\n\r\t\u{1}\u{1f}\u{7f}✓";
        let expected = "\"q\\\" b\\\\ /é\\b\\f\\n\\r\\t\\u0001\\u001f\u{7f}✓\"";
        assert_eq!(to_compact(&Json::from(s)), expected);
        let tree = Json::obj().with(s, s);
        let back: serde_json::Value = serde_json::from_str(&to_compact(&tree)).unwrap();
        assert_eq!(back[s], serde_json::Value::from(s));
    }

    #[test]
    fn compact_output_is_valid_json_without_whitespace() {
        let tree = parse(ENTRY_A).unwrap();
        let compact = to_compact(&tree);
        // No whitespace outside strings.
        let (mut in_string, mut escaped) = (false, false);
        for c in compact.chars() {
            match c {
                _ if escaped => escaped = false,
                '\\' if in_string => escaped = true,
                '"' => in_string = !in_string,
                ' ' | '\t' | '\n' | '\r' => assert!(in_string, "whitespace in {compact}"),
                _ => {}
            }
        }
        let a: serde_json::Value = serde_json::from_str(&compact).unwrap();
        let b: serde_json::Value = serde_json::from_str(ENTRY_A).unwrap();
        assert_eq!(a, b);
        let pretty = to_pretty(&Json::obj().with("x", f64::NAN).with("y", Json::Arr(vec![])));
        assert!(serde_json::from_str::<serde_json::Value>(&pretty).is_ok());
    }

    proptest! {
        #![proptest_config(config(256))]

        /// Printing, reading back and printing again gives the same bytes.
        #[test]
        fn read_and_printed_again_is_the_same_text(tree in json_tree()) {
            let text = to_pretty(&tree);
            let back: Json = serde_json::from_str(&text).expect("the printer writes JSON");
            prop_assert_eq!(to_pretty(&back), text);
        }

        /// [`to_value`] is what serde_json reads from the printed text.
        #[test]
        fn to_value_is_the_printed_text_read(tree in json_tree()) {
            let read: serde_json::Value =
                serde_json::from_str(&to_pretty(&tree)).expect("the printer writes JSON");
            prop_assert_eq!(to_value(&tree), read);
        }
    }

    #[test]
    fn to_value_keeps_the_last_of_repeated_keys_and_prints_numbers() {
        let tree = Json::obj()
            .with("k", 1)
            .with("k", 2)
            .with("whole", 3.0)
            .with("nan", f64::NAN)
            .with("big", 9223372036854775808.0);
        assert_eq!(
            to_value(&tree),
            serde_json::json!({"k": 2, "whole": 3, "nan": null, "big": 9223372036854775807u64})
        );
    }
}
