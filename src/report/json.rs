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

/// Renders `value` as cJSON's pretty printer does (tabs, `"key":\t`, arrays on
/// one line), followed by one `\n`: exactly one stock log entry.
pub fn to_pretty(value: &Json) -> String {
    let _ = value;
    todo!("cJSON pretty printer")
}

/// Renders `value` compactly (no whitespace), as cJSON's unformatted printer.
pub fn to_compact(value: &Json) -> String {
    let _ = value;
    todo!("cJSON compact printer")
}

/// Formats a double as cJSON does: integral values in the i64 range as
/// integers, otherwise `%1.15g`, or `%1.17g` when 15 digits do not round-trip.
pub fn format_number(value: f64) -> String {
    let _ = value;
    todo!("cJSON number rule")
}
