//! The client's parameters document, decoded and validated.
//!
//! Keys are matched case-insensitively and the first occurrence wins, as
//! stock's cJSON reader does; unknown keys are ignored. Every setting starts
//! from its default for each test (stock leaks some between tests).

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::Value;
use thiserror::Error;

use super::errors::ErrorCode;

/// Transport of the data streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// TCP data streams (the client default).
    Tcp,
    /// UDP data streams (`-u`).
    Udp,
}

impl Protocol {
    /// The name stock writes in `test_start.protocol`.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
        }
    }
}

/// A test's parameters as the server uses them.
#[derive(Debug, Clone, PartialEq)]
pub struct TestParams {
    /// TCP or UDP.
    pub protocol: Protocol,
    /// Omit period, seconds (`-O`).
    pub omit: u32,
    /// Test duration, seconds (`-t`); 0 with `-n`/`-k`.
    pub time: u32,
    /// Bytes to transfer (`-n`); 0 = unused.
    pub num: u64,
    /// Blocks to transfer (`-k`); 0 = unused.
    pub blockcount: u64,
    /// Streams per direction (`-P`).
    pub parallel: u32,
    /// Server sends (`-R`).
    pub reverse: bool,
    /// Both directions (`--bidir`).
    pub bidirectional: bool,
    /// Block size: TCP read/write size, UDP datagram size (`-l`).
    pub len: u32,
    /// Socket buffer size (`-w`); 0 = autotune.
    pub window: u32,
    /// TCP MSS (`-M`); 0 = system default.
    pub mss: u32,
    /// `TCP_NODELAY` on data sockets (`-N`).
    pub nodelay: bool,
    /// Target rate per sending stream, bit/s (`-b`); 0 = unlimited.
    pub bandwidth: u64,
    /// Kernel pacing rate, bit/s (`--fq-rate`); 0 = none.
    pub fqrate: u64,
    /// Blocks sent back to back per pacing check (`-b rate/burst`); 0 = 1.
    pub burst: u32,
    /// IP TOS / traffic class (`-S`, `--dscp`).
    pub tos: u8,
    /// TCP congestion algorithm to use (`-C`).
    pub congestion: Option<String>,
    /// The client's `--title`.
    pub title: Option<String>,
    /// The client's `--extra-data`.
    pub extra_data: Option<String>,
    /// `--get-server-output`.
    pub get_server_output: bool,
    /// 64-bit UDP sequence numbers (`--udp-counters-64bit`).
    pub udp_counters_64bit: bool,
    /// Fill send buffers with `0123456789…` (`--repeating-payload`).
    pub repeating_payload: bool,
    /// Set DF on IPv4 UDP data sockets (`--dont-fragment`).
    pub dont_fragment: bool,
    /// UDP segmentation offload flag of 3.21 clients (reported only).
    pub gso: bool,
    /// UDP receive offload flag of 3.21 clients (reported only).
    pub gro: bool,
    /// The client's `-Z`: the sender avoids copying (stock: `sendfile`).
    pub zerocopy: bool,
    /// The client's `--skip-rx-copy`: the receiver discards in the kernel.
    pub skip_rx_copy: bool,
    /// Encrypted credentials (`--username`), base64.
    pub authtoken: Option<String>,
    /// The client's version, e.g. `"3.12"`.
    pub client_version: Option<String>,
}

/// How a test's data streams move bytes (each falls back to copying where
/// the kernel lacks the feature).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DataPath {
    /// The server's `--copy`: stock's behaviour, the client's flags decide.
    pub copy: bool,
    /// TCP sending: from an in-memory file with `sendfile`, not `write`.
    pub send_file: bool,
    /// Receiving: discarded in the kernel (`MSG_TRUNC`); UDP reads only
    /// each datagram's header.
    pub discard: bool,
    /// UDP sending: many datagrams per call (`UDP_SEGMENT`).
    pub gso: bool,
    /// UDP receiving: coalesced datagrams (`UDP_GRO`).
    pub gro: bool,
}

/// Default TCP block size.
pub const DEFAULT_TCP_LEN: u32 = 128 * 1024;
/// Default UDP datagram size when a client sends none.
pub const DEFAULT_UDP_LEN: u32 = 1460;
/// Largest TCP block size.
pub const MAX_TCP_LEN: u32 = 1024 * 1024;
/// Largest UDP datagram payload.
pub const MAX_UDP_LEN: u32 = 65507;
/// Smallest UDP datagram: the header with a 64-bit counter.
pub const MIN_UDP_LEN: u32 = 16;
/// Most streams per direction.
pub const MAX_PARALLEL: u32 = 128;

/// Why parameters were refused: the code to send in `SERVER_ERROR`.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{} ({detail})", .code.text())]
pub struct ParamError {
    /// The iperf3 error code.
    pub code: ErrorCode,
    /// What exactly was wrong, for the server's stderr.
    pub detail: String,
}

fn err(code: ErrorCode, detail: impl Into<String>) -> ParamError {
    ParamError {
        code,
        detail: detail.into(),
    }
}

/// An object's members in document order, duplicates kept.
struct Members(Vec<(String, Value)>);

impl<'de> Deserialize<'de> for Members {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Members;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Members, A::Error> {
                let mut out = Vec::new();
                while let Some((k, v)) = map.next_entry::<String, Value>()? {
                    out.push((k, v));
                }
                Ok(Members(out))
            }
        }
        d.deserialize_map(V)
    }
}

impl Members {
    fn get(&self, key: &str) -> Option<&Value> {
        self.0
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v)
    }

    /// A flag: `true` or a non-zero number sets it; `false`, `0`, `null` or
    /// absence leave it unset; any other type is refused.
    fn flag(&self, key: &str) -> Result<bool, ParamError> {
        match self.get(key) {
            None | Some(Value::Null) => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            Some(Value::Number(n)) => Ok(n.as_f64().is_some_and(|f| f != 0.0)),
            Some(other) => Err(err(
                ErrorCode::RECV_PARAMS,
                format!("{key}: not a flag: {other}"),
            )),
        }
    }

    /// A non-negative integer no larger than `max`; `code` if out of range.
    fn uint(&self, key: &str, default: u64, max: u64, code: ErrorCode) -> Result<u64, ParamError> {
        let v = match self.get(key) {
            None | Some(Value::Null) => return Ok(default),
            Some(v) => v,
        };
        let Value::Number(n) = v else {
            return Err(err(
                ErrorCode::RECV_PARAMS,
                format!("{key}: not a number: {v}"),
            ));
        };
        let value = if let Some(u) = n.as_u64() {
            u
        } else if n.as_i64().is_some() {
            return Err(err(code, format!("{key}: negative value {n}")));
        } else {
            match n.as_f64() {
                Some(f) if f >= 0.0 && f.fract() == 0.0 && f <= max as f64 => f as u64,
                _ => return Err(err(code, format!("{key}: invalid value {n}"))),
            }
        };
        if value > max {
            return Err(err(code, format!("{key}: {value} exceeds {max}")));
        }
        Ok(value)
    }

    fn string(&self, key: &str) -> Result<Option<String>, ParamError> {
        match self.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => Err(err(
                ErrorCode::RECV_PARAMS,
                format!("{key}: not a string: {other}"),
            )),
        }
    }
}

fn narrow(v: u64) -> u32 {
    u32::try_from(v).unwrap_or(u32::MAX)
}

/// The `authtoken` of a parameters document, read on its own (before, and
/// whatever, the other members say).
pub fn authtoken_of(body: &[u8]) -> Option<String> {
    let doc: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(body).ok()?;
    doc.get("authtoken")?.as_str().map(str::to_string)
}

impl TestParams {
    /// Decodes and validates a parameters document (the JSON body).
    pub fn decode(body: &[u8]) -> Result<TestParams, ParamError> {
        let m: Members = serde_json::from_slice(body)
            .map_err(|e| err(ErrorCode::RECV_PARAMS, format!("invalid JSON: {e}")))?;
        let p = ErrorCode::RECV_PARAMS;

        // Stock checks tcp, udp, sctp in that order; the last one present wins.
        let mut protocol = Protocol::Tcp;
        if m.flag("tcp")? {
            protocol = Protocol::Tcp;
        }
        if m.flag("udp")? {
            protocol = Protocol::Udp;
        }
        if m.flag("sctp")? {
            return Err(err(ErrorCode::NO_SCTP, "SCTP requested"));
        }
        if m.flag("mptcp")? {
            return Err(err(ErrorCode::PROTOCOL, "MPTCP requested"));
        }

        let (default_len, min_len, max_len) = match protocol {
            Protocol::Tcp => (DEFAULT_TCP_LEN, 1, MAX_TCP_LEN),
            Protocol::Udp => (DEFAULT_UDP_LEN, MIN_UDP_LEN, MAX_UDP_LEN),
        };
        let len = narrow(m.uint(
            "len",
            default_len.into(),
            max_len.into(),
            ErrorCode::BLOCK_SIZE,
        )?);
        if len < min_len {
            return Err(err(
                ErrorCode::BLOCK_SIZE,
                format!("len {len} below {min_len}"),
            ));
        }
        let parallel =
            narrow(m.uint("parallel", 1, MAX_PARALLEL.into(), ErrorCode::NUM_STREAMS)?);
        if parallel == 0 {
            return Err(err(ErrorCode::NUM_STREAMS, "parallel 0"));
        }
        let burst = narrow(m.uint("burst", 0, 1000, ErrorCode::BURST)?);
        let reverse = m.flag("reverse")?;
        let bidirectional = m.flag("bidirectional")?;
        if reverse && bidirectional {
            return Err(err(
                ErrorCode::REVERSE_BIDIR,
                "reverse and bidirectional together",
            ));
        }
        let params = TestParams {
            protocol,
            omit: narrow(m.uint("omit", 0, 600, ErrorCode::OMIT)?),
            time: narrow(m.uint("time", 10, 86400, ErrorCode::DURATION)?),
            num: m.uint("num", 0, i64::MAX as u64, p)?,
            blockcount: m.uint("blockcount", 0, i64::MAX as u64, p)?,
            parallel,
            reverse,
            bidirectional,
            len,
            window: narrow(m.uint("window", 0, 536_870_912, ErrorCode::BUF_SIZE)?),
            mss: narrow(m.uint("mss", 0, 32767, ErrorCode::MSS)?),
            nodelay: m.flag("nodelay")?,
            bandwidth: m.uint("bandwidth", 0, i64::MAX as u64, p)?,
            fqrate: m.uint("fqrate", 0, i64::MAX as u64, p)?,
            burst,
            tos: u8::try_from(m.uint("tos", 0, 255, ErrorCode::BAD_TOS)?).unwrap_or(0),
            congestion: m.string("congestion")?.filter(|s| !s.is_empty()),
            title: m.string("title")?,
            extra_data: m.string("extra_data")?,
            get_server_output: m.flag("get_server_output")?,
            udp_counters_64bit: m.flag("udp_counters_64bit")?,
            repeating_payload: m.flag("repeating_payload")?,
            dont_fragment: m.flag("dont_fragment")?,
            gso: m.flag("gso")?,
            gro: m.flag("gro")?,
            // Stock reads these without refusing a value of another type.
            zerocopy: m.flag("zerocopy").unwrap_or(false),
            skip_rx_copy: m.flag("skip_rx_copy").unwrap_or(false),
            authtoken: m.string("authtoken")?,
            client_version: m.string("client_version")?,
        };
        // Keys we accept but have no use for on the server: pacing_timer,
        // flowlabel, server_affinity, gso/gro sizes,
        // congestion_used. Their types are still checked where stock does.
        m.uint("pacing_timer", 1000, u64::MAX, p)?;
        Ok(params)
    }

    /// A client's parameters with stock's defaults for `protocol`: ten
    /// seconds, one stream, the default block size, unlimited TCP and
    /// 1 Mibit/s UDP.
    pub fn client_default(protocol: Protocol) -> TestParams {
        let (len, bandwidth) = match protocol {
            Protocol::Tcp => (DEFAULT_TCP_LEN, 0),
            Protocol::Udp => (DEFAULT_UDP_LEN, 1 << 20),
        };
        TestParams {
            protocol,
            omit: 0,
            time: 10,
            num: 0,
            blockcount: 0,
            parallel: 1,
            reverse: false,
            bidirectional: false,
            len,
            window: 0,
            mss: 0,
            nodelay: false,
            bandwidth,
            fqrate: 0,
            burst: 0,
            tos: 0,
            congestion: None,
            title: None,
            extra_data: None,
            get_server_output: false,
            udp_counters_64bit: false,
            repeating_payload: false,
            dont_fragment: false,
            gso: false,
            gro: false,
            zerocopy: false,
            skip_rx_copy: false,
            authtoken: None,
            client_version: None,
        }
    }

    /// The parameters document a client sends, in a stock client's member
    /// order: what [`TestParams::decode`] reads back unchanged. Members at
    /// their default are left out where stock leaves them out.
    pub fn encode(&self) -> Vec<u8> {
        let mut out: Vec<(&str, Value)> = Vec::new();
        let mut put = |k: &'static str, v: Value| out.push((k, v));
        let on = |b: bool| b.then_some(Value::from(1));
        put(
            match self.protocol {
                Protocol::Tcp => "tcp",
                Protocol::Udp => "udp",
            },
            Value::Bool(true),
        );
        put("omit", self.omit.into());
        put("time", self.time.into());
        put("num", self.num.into());
        put("blockcount", self.blockcount.into());
        let optional = [
            ("MSS", (self.mss > 0).then_some(Value::from(self.mss))),
            ("nodelay", self.nodelay.then_some(Value::Bool(true))),
        ];
        optional
            .into_iter()
            .for_each(|(k, v)| v.into_iter().for_each(|v| put(k, v)));
        put("parallel", self.parallel.into());
        let optional = [
            ("reverse", self.reverse.then_some(Value::Bool(true))),
            (
                "bidirectional",
                self.bidirectional.then_some(Value::Bool(true)),
            ),
            (
                "window",
                (self.window > 0).then_some(Value::from(self.window)),
            ),
        ];
        optional
            .into_iter()
            .for_each(|(k, v)| v.into_iter().for_each(|v| put(k, v)));
        put("len", self.len.into());
        let text = |s: &Option<String>| s.clone().map(Value::String);
        let optional = [
            (
                "bandwidth",
                (self.bandwidth > 0).then_some(Value::from(self.bandwidth)),
            ),
            (
                "fqrate",
                (self.fqrate > 0).then_some(Value::from(self.fqrate)),
            ),
            ("pacing_timer", Some(Value::from(1000))),
            ("burst", (self.burst > 0).then_some(Value::from(self.burst))),
            ("TOS", (self.tos > 0).then_some(Value::from(self.tos))),
            ("title", text(&self.title)),
            ("extra_data", text(&self.extra_data)),
            ("congestion", text(&self.congestion)),
            ("get_server_output", on(self.get_server_output)),
            ("udp_counters_64bit", on(self.udp_counters_64bit)),
            ("repeating_payload", on(self.repeating_payload)),
            ("zerocopy", on(self.zerocopy)),
            ("dont_fragment", on(self.dont_fragment)),
            ("skip_rx_copy", on(self.skip_rx_copy)),
            ("authtoken", text(&self.authtoken)),
            ("client_version", text(&self.client_version)),
        ];
        optional
            .into_iter()
            .for_each(|(k, v)| v.into_iter().for_each(|v| put(k, v)));
        let members: Vec<String> = out
            .iter()
            .map(|(k, v)| format!("{}:{v}", Value::from(*k)))
            .collect();
        format!("{{{}}}", members.join(",")).into_bytes()
    }

    /// How the data streams move bytes. By default nothing is copied
    /// between the kernel and the server; with the server's `--copy`, as
    /// stock: copying, unless the client asked otherwise (`-Z`,
    /// `--skip-rx-copy`, `--gsro`).
    pub fn data_path(&self, copy: bool) -> DataPath {
        if copy {
            DataPath {
                copy,
                send_file: self.zerocopy,
                discard: self.skip_rx_copy,
                gso: self.gso,
                gro: self.gro,
            }
        } else {
            DataPath {
                copy,
                send_file: true,
                discard: true,
                gso: true,
                gro: true,
            }
        }
    }

    /// Number of data streams the client opens: `parallel`, twice for bidir.
    pub fn stream_count(&self) -> u32 {
        if self.bidirectional {
            self.parallel * 2
        } else {
            self.parallel
        }
    }

    /// Whether the server receives on any stream.
    pub fn server_receives(&self) -> bool {
        !self.reverse
    }

    /// Whether the server sends on any stream.
    pub fn server_sends(&self) -> bool {
        self.reverse || self.bidirectional
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(s: &str) -> Result<TestParams, ParamError> {
        TestParams::decode(s.as_bytes())
    }

    #[test]
    fn what_a_client_encodes_decodes_unchanged_in_stock_order() {
        let tcp = TestParams {
            time: 2,
            client_version: Some("3.12".into()),
            ..TestParams::client_default(Protocol::Tcp)
        };
        // Byte for byte what a stock 3.12 client sends for `-t 2`.
        let want = r#"{"tcp":true,"omit":0,"time":2,"num":0,"blockcount":0,"parallel":1,"len":131072,"pacing_timer":1000,"client_version":"3.12"}"#;
        assert_eq!(String::from_utf8(tcp.encode()).unwrap(), want);
        let every = TestParams {
            protocol: Protocol::Udp,
            omit: 1,
            time: 0,
            num: 5 << 20,
            blockcount: 7,
            parallel: 4,
            bidirectional: true,
            len: 1200,
            window: 1 << 20,
            mss: 1400,
            nodelay: true,
            bandwidth: 10_000_000,
            fqrate: 20_000_000,
            burst: 3,
            tos: 184,
            congestion: Some("bbr".into()),
            title: Some("a \"title\"".into()),
            extra_data: Some("east→west".into()),
            get_server_output: true,
            udp_counters_64bit: true,
            repeating_payload: true,
            dont_fragment: true,
            zerocopy: true,
            skip_rx_copy: true,
            authtoken: Some("dG9rZW4=".into()),
            ..tcp.clone()
        };
        for p in [tcp, every, TestParams::client_default(Protocol::Udp)] {
            assert_eq!(TestParams::decode(&p.encode()), Ok(p));
        }
    }

    #[test]
    fn real_client_documents() {
        let p = decode(r#"{"tcp":true,"omit":0,"time":1,"num":0,"blockcount":0,"parallel":1,"len":131072,"bandwidth":10000000,"pacing_timer":1000,"title":"my title","extra_data":"hello extra","get_server_output":1,"client_version":"3.12"}"#).unwrap();
        assert_eq!(p.protocol, Protocol::Tcp);
        assert_eq!(p.time, 1);
        assert_eq!(p.bandwidth, 10_000_000);
        assert_eq!(p.title.as_deref(), Some("my title"));
        assert_eq!(p.extra_data.as_deref(), Some("hello extra"));
        assert!(p.get_server_output);
        assert_eq!(p.stream_count(), 1);

        let p = decode(r#"{"udp":true,"omit":0,"time":1,"num":0,"blockcount":0,"parallel":1,"bidirectional":true,"len":32768,"bandwidth":1000000,"pacing_timer":1000,"udp_counters_64bit":1,"client_version":"3.12"}"#).unwrap();
        assert_eq!(p.protocol, Protocol::Udp);
        assert!(p.bidirectional && p.udp_counters_64bit);
        assert_eq!(p.stream_count(), 2);

        let p = decode(r#"{"udp":true,"omit":0,"time":1,"parallel":1,"len":32768,"bandwidth":1048576,"pacing_timer":1000,"client_version":"3.7"}"#).unwrap();
        assert_eq!(p.num, 0);
        assert_eq!(p.client_version.as_deref(), Some("3.7"));
    }

    #[test]
    fn copy_avoidance_follows_the_server_then_the_client() {
        let plain = decode("{}").unwrap();
        let asked = decode(r#"{"zerocopy":1,"skip_rx_copy":1,"gso":1,"gro":1}"#).unwrap();
        assert!(asked.zerocopy && asked.skip_rx_copy);
        let all = DataPath {
            copy: false,
            send_file: true,
            discard: true,
            gso: true,
            gro: true,
        };
        // By default nothing is copied, whatever the client asked.
        assert_eq!(plain.data_path(false), all);
        assert_eq!(asked.data_path(false), all);
        // With --copy, as stock: the client's flags decide.
        assert_eq!(
            plain.data_path(true),
            DataPath {
                copy: true,
                ..DataPath::default()
            }
        );
        assert_eq!(asked.data_path(true), DataPath { copy: true, ..all });
        // A value of another type is ignored, as stock ignores it.
        let odd = decode(r#"{"zerocopy":"yes","skip_rx_copy":[1]}"#).unwrap();
        assert!(!odd.zerocopy && !odd.skip_rx_copy);
    }

    #[test]
    fn empty_object_gives_defaults() {
        let p = decode("{}").unwrap();
        assert_eq!(
            (p.protocol, p.parallel, p.time, p.len),
            (Protocol::Tcp, 1, 10, 131072)
        );
    }

    #[test]
    fn keys_are_case_insensitive_first_wins() {
        let p = decode(r#"{"TIME":3,"time":7,"Reverse":true}"#).unwrap();
        assert_eq!(p.time, 3);
        assert!(p.reverse);
    }

    #[test]
    fn invalid_values_get_their_codes() {
        let code = |s: &str| decode(s).unwrap_err().code.0;
        assert_eq!(code("not json"), 114);
        assert_eq!(code("[1,2]"), 114);
        assert_eq!(code(r#"{"time":-1}"#), 5);
        assert_eq!(code(r#"{"time":86401}"#), 5);
        assert_eq!(code(r#"{"time":"10"}"#), 114);
        assert_eq!(code(r#"{"time":1.5}"#), 5);
        assert_eq!(code(r#"{"parallel":0}"#), 6);
        assert_eq!(code(r#"{"parallel":129}"#), 6);
        assert_eq!(code(r#"{"len":2000000}"#), 7);
        assert_eq!(code(r#"{"udp":true,"len":8}"#), 7);
        assert_eq!(code(r#"{"window":600000000}"#), 8);
        assert_eq!(code(r#"{"MSS":40000}"#), 10);
        assert_eq!(code(r#"{"omit":601}"#), 12);
        assert_eq!(code(r#"{"burst":1001}"#), 15);
        assert_eq!(code(r#"{"sctp":true}"#), 18);
        assert_eq!(code(r#"{"TOS":256}"#), 21);
        assert_eq!(code(r#"{"reverse":true,"bidirectional":true}"#), 25);
        assert_eq!(code(r#"{"num":1e300}"#), 114);
        assert_eq!(code(r#"{"num":99999999999999999999999}"#), 114);
        assert_eq!(code(r#"{"reverse":"yes"}"#), 114);
        assert_eq!(code(r#"{"title":{"a":1}}"#), 114);
    }

    #[test]
    fn false_flags_are_unset() {
        let p = decode(r#"{"reverse":false,"nodelay":0}"#).unwrap();
        assert!(!p.reverse && !p.nodelay);
    }
}

#[cfg(test)]
mod props {
    use super::*;
    use crate::testing::{config, json_value};
    use proptest::prelude::*;
    use serde_json::json;

    /// Every key the decoder reads.
    const KEYS: &[&str] = &[
        "tcp",
        "udp",
        "sctp",
        "mptcp",
        "omit",
        "time",
        "num",
        "blockcount",
        "parallel",
        "reverse",
        "bidirectional",
        "len",
        "window",
        "MSS",
        "nodelay",
        "bandwidth",
        "fqrate",
        "burst",
        "TOS",
        "congestion",
        "title",
        "extra_data",
        "get_server_output",
        "udp_counters_64bit",
        "repeating_payload",
        "dont_fragment",
        "gso",
        "gro",
        "zerocopy",
        "skip_rx_copy",
        "authtoken",
        "client_version",
        "pacing_timer",
    ];

    /// The document a client would send for `p`.
    fn document(p: &TestParams) -> Value {
        let mut doc = json!({
            "omit": p.omit, "time": p.time, "num": p.num, "blockcount": p.blockcount,
            "parallel": p.parallel, "len": p.len, "window": p.window, "MSS": p.mss,
            "bandwidth": p.bandwidth, "fqrate": p.fqrate, "burst": p.burst, "TOS": p.tos,
            "pacing_timer": 1000,
        });
        let m = doc.as_object_mut().unwrap();
        m.insert(p.protocol.name().to_ascii_lowercase(), json!(true));
        for (key, on) in [
            ("reverse", p.reverse),
            ("bidirectional", p.bidirectional),
            ("nodelay", p.nodelay),
            ("get_server_output", p.get_server_output),
            ("udp_counters_64bit", p.udp_counters_64bit),
            ("repeating_payload", p.repeating_payload),
            ("dont_fragment", p.dont_fragment),
            ("gso", p.gso),
            ("gro", p.gro),
            ("zerocopy", p.zerocopy),
            ("skip_rx_copy", p.skip_rx_copy),
        ] {
            if on {
                m.insert(key.into(), json!(1));
            }
        }
        for (key, v) in [
            ("congestion", &p.congestion),
            ("title", &p.title),
            ("extra_data", &p.extra_data),
            ("authtoken", &p.authtoken),
            ("client_version", &p.client_version),
        ] {
            if let Some(v) = v {
                m.insert(key.into(), json!(v));
            }
        }
        doc
    }

    fn text() -> impl Strategy<Value = Option<String>> {
        proptest::option::of(".{1,16}")
    }

    /// Parameters within every limit.
    fn valid_params() -> impl Strategy<Value = TestParams> {
        let numbers = (
            0u32..=600,
            0u32..=86400,
            0u64..=i64::MAX as u64,
            0u64..=i64::MAX as u64,
            1u32..=MAX_PARALLEL,
            0u32..=536_870_912,
            0u32..=32767,
            0u64..=i64::MAX as u64,
            0u64..=i64::MAX as u64,
            0u32..=1000,
            any::<u8>(),
        );
        let flags = proptest::collection::vec(any::<bool>(), 11);
        let texts = (text(), text(), text(), text(), text());
        (any::<bool>(), numbers, flags, texts, 0u32..=MAX_TCP_LEN).prop_map(
            |(udp, n, f, t, len)| {
                let (protocol, len) = if udp {
                    (
                        Protocol::Udp,
                        MIN_UDP_LEN + len % (MAX_UDP_LEN - MIN_UDP_LEN + 1),
                    )
                } else {
                    (Protocol::Tcp, len.max(1))
                };
                TestParams {
                    protocol,
                    omit: n.0,
                    time: n.1,
                    num: n.2,
                    blockcount: n.3,
                    parallel: n.4,
                    reverse: f[0] && !f[1],
                    bidirectional: f[1],
                    len,
                    window: n.5,
                    mss: n.6,
                    nodelay: f[2],
                    bandwidth: n.7,
                    fqrate: n.8,
                    burst: n.9,
                    tos: n.10,
                    congestion: t.0,
                    title: t.1,
                    extra_data: t.2,
                    get_server_output: f[3],
                    udp_counters_64bit: f[4],
                    repeating_payload: f[5],
                    dont_fragment: f[6],
                    gso: f[7],
                    gro: f[8],
                    zerocopy: f[9],
                    skip_rx_copy: f[10],
                    authtoken: t.3,
                    client_version: t.4,
                }
            },
        )
    }

    /// What every accepted document must satisfy.
    fn within_limits(p: &TestParams) -> Result<(), TestCaseError> {
        prop_assert!((1..=MAX_PARALLEL).contains(&p.parallel));
        prop_assert!(p.time <= 86400 && p.omit <= 600 && p.burst <= 1000);
        prop_assert!(p.window <= 536_870_912 && p.mss <= 32767);
        prop_assert!(!(p.reverse && p.bidirectional));
        match p.protocol {
            Protocol::Tcp => prop_assert!((1..=MAX_TCP_LEN).contains(&p.len)),
            Protocol::Udp => prop_assert!((MIN_UDP_LEN..=MAX_UDP_LEN).contains(&p.len)),
        }
        prop_assert!(p.stream_count() <= 2 * MAX_PARALLEL);
        Ok(())
    }

    proptest! {
        #![proptest_config(config(256))]

        #[test]
        fn arbitrary_bytes_never_panic(body in proptest::collection::vec(any::<u8>(), 0..256)) {
            if let Ok(p) = TestParams::decode(&body) {
                within_limits(&p)?;
            }
        }

        #[test]
        fn arbitrary_json_never_panics_and_errors_carry_a_code(doc in json_value(KEYS)) {
            let body = serde_json::to_vec(&doc).unwrap();
            match TestParams::decode(&body) {
                Ok(p) => within_limits(&p)?,
                Err(e) => {
                    let known = [5, 6, 7, 8, 10, 12, 15, 18, 21, 25, 114, 131];
                    prop_assert!(known.contains(&e.code.0), "code {}", e.code.0);
                }
            }
        }

        #[test]
        fn valid_documents_round_trip(p in valid_params()) {
            let body = serde_json::to_vec(&document(&p)).unwrap();
            prop_assert_eq!(TestParams::decode(&body), Ok(p));
        }
    }
}
