//! The measurement message of the ndt7 spec (JSON text messages, and the
//! elements of a result's `ServerMeasurements`), with ndt's field names:
//! `AppInfo`, `ConnectionInfo`, `Origin`, `Test`, `TCPInfo`.

use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::Kind;
use crate::sys::KernelTcpInfo;

/// One measurement, as sent to the client and recorded.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Measurement {
    /// What the application moved.
    #[serde(rename = "AppInfo", skip_serializing_if = "Option::is_none")]
    pub app_info: Option<AppInfo>,
    /// The connection's four-tuple (in every server measurement).
    #[serde(rename = "ConnectionInfo", skip_serializing_if = "Option::is_none")]
    pub connection_info: Option<ConnectionInfo>,
    /// `"server"` for ours.
    #[serde(rename = "Origin", skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
    /// `"download"` or `"upload"`.
    #[serde(rename = "Test", skip_serializing_if = "Option::is_none")]
    pub test: Option<String>,
    /// The kernel's view of the connection.
    #[serde(rename = "TCPInfo", skip_serializing_if = "Option::is_none")]
    pub tcp_info: Option<TcpInfo>,
}

/// Application-level counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppInfo {
    /// µs since the subtest began.
    #[serde(rename = "ElapsedTime")]
    pub elapsed_time: i64,
    /// Payload bytes sent (download) or received (upload) so far.
    #[serde(rename = "NumBytes")]
    pub num_bytes: i64,
}

/// The connection as the server sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectionInfo {
    /// `ip:port`, IPv6 in brackets.
    #[serde(rename = "Client")]
    pub client: String,
    /// `ip:port`, IPv6 in brackets.
    #[serde(rename = "Server")]
    pub server: String,
    /// The subtest's unique id.
    #[serde(rename = "UUID")]
    pub uuid: String,
}

/// The `TCP_INFO` fields the spec names (µs for times, bytes for sizes).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TcpInfo {
    /// `tcpi_busy_time`.
    pub busy_time: i64,
    /// `tcpi_bytes_acked`.
    pub bytes_acked: i64,
    /// `tcpi_bytes_received`.
    pub bytes_received: i64,
    /// `tcpi_bytes_sent`.
    pub bytes_sent: i64,
    /// `tcpi_bytes_retrans`.
    pub bytes_retrans: i64,
    /// µs since the subtest began when this was read.
    pub elapsed_time: i64,
    /// `tcpi_min_rtt`.
    #[serde(rename = "MinRTT")]
    pub min_rtt: i64,
    /// `tcpi_rtt`.
    #[serde(rename = "RTT")]
    pub rtt: i64,
    /// `tcpi_rttvar`.
    #[serde(rename = "RTTVar")]
    pub rtt_var: i64,
    /// `tcpi_rwnd_limited`.
    #[serde(rename = "RWndLimited")]
    pub rwnd_limited: i64,
    /// `tcpi_sndbuf_limited`.
    pub snd_buf_limited: i64,
}

/// A kernel counter as JSON's safe integer range allows (int53).
fn int53(v: u64) -> i64 {
    const MAX: u64 = (1 << 53) - 1;
    // In range after the min: the conversion cannot fail.
    i64::try_from(v.min(MAX)).unwrap_or(i64::MAX)
}

/// µs of `d`, as an int53.
pub fn micros(d: Duration) -> i64 {
    int53(u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

impl TcpInfo {
    /// The spec's fields of a kernel `tcp_info`, read `elapsed` into the subtest.
    pub fn from_kernel(k: &KernelTcpInfo, elapsed: Duration) -> TcpInfo {
        TcpInfo {
            busy_time: int53(k.busy_time),
            bytes_acked: int53(k.bytes_acked),
            bytes_received: int53(k.bytes_received),
            bytes_sent: int53(k.bytes_sent),
            bytes_retrans: int53(k.bytes_retrans),
            elapsed_time: micros(elapsed),
            min_rtt: i64::from(k.min_rtt),
            rtt: i64::from(k.rtt),
            rtt_var: i64::from(k.rttvar),
            rwnd_limited: int53(k.rwnd_limited),
            snd_buf_limited: int53(k.sndbuf_limited),
        }
    }
}

/// `ip:port` as the spec writes endpoints (IPv6 in brackets; IPv4-mapped
/// addresses as plain IPv4).
pub fn endpoint(addr: SocketAddr) -> String {
    SocketAddr::new(addr.ip().to_canonical(), addr.port()).to_string()
}

impl Measurement {
    /// A server measurement of `kind` at `elapsed`: `num_bytes` moved by the
    /// application, the kernel's counters if read, the connection if given.
    pub fn server(
        kind: Kind,
        elapsed: Duration,
        num_bytes: u64,
        tcp: Option<TcpInfo>,
        connection: Option<ConnectionInfo>,
    ) -> Measurement {
        Measurement {
            app_info: Some(AppInfo {
                elapsed_time: micros(elapsed),
                num_bytes: int53(num_bytes),
            }),
            connection_info: connection,
            origin: Some("server".into()),
            test: Some(kind.as_str().into()),
            tcp_info: tcp,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serialises_with_ndt_field_names() {
        let k = KernelTcpInfo {
            bytes_acked: 1000,
            min_rtt: 42,
            rttvar: 7,
            sndbuf_limited: 3,
            ..Default::default()
        };
        let m = Measurement::server(
            Kind::Download,
            Duration::from_millis(250),
            900,
            Some(TcpInfo::from_kernel(&k, Duration::from_millis(251))),
            Some(ConnectionInfo {
                client: endpoint("[::ffff:10.0.0.1]:5000".parse().unwrap()),
                server: endpoint("[::1]:8080".parse().unwrap()),
                uuid: "u".into(),
            }),
        );
        let v = serde_json::to_value(&m).unwrap();
        assert_eq!(v["AppInfo"]["ElapsedTime"], 250_000);
        assert_eq!(v["AppInfo"]["NumBytes"], 900);
        assert_eq!(v["ConnectionInfo"]["Client"], "10.0.0.1:5000");
        assert_eq!(v["ConnectionInfo"]["Server"], "[::1]:8080");
        assert_eq!(v["Origin"], "server");
        assert_eq!(v["Test"], "download");
        assert_eq!(v["TCPInfo"]["BytesAcked"], 1000);
        assert_eq!(v["TCPInfo"]["MinRTT"], 42);
        assert_eq!(v["TCPInfo"]["RTTVar"], 7);
        assert_eq!(v["TCPInfo"]["SndBufLimited"], 3);
        assert_eq!(v["TCPInfo"]["RWndLimited"], 0);
        assert_eq!(v["TCPInfo"]["ElapsedTime"], 251_000);
        let back: Measurement = serde_json::from_value(v).unwrap();
        assert_eq!(back, m);
        let bare = serde_json::to_value(Measurement::default()).unwrap();
        assert_eq!(bare, serde_json::json!({}));
    }

    #[test]
    fn counters_stay_within_int53() {
        let k = KernelTcpInfo {
            bytes_acked: u64::MAX,
            ..Default::default()
        };
        let t = TcpInfo::from_kernel(&k, Duration::MAX);
        assert_eq!(t.bytes_acked, (1 << 53) - 1);
        assert_eq!(t.elapsed_time, (1 << 53) - 1);
    }
}
