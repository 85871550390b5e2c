//! A fast writer of big histories for the page tests: stock-shaped iperf3
//! server log entries (one interval each), many names, IPv4 and IPv6
//! clients, TCP and UDP, upload and download, one test every 30 s.

use std::io::{BufWriter, Write};
use std::path::Path;

/// How many different names the generated history holds.
pub const NAMES: usize = 40;

/// The name of generated test `i`.
pub fn name_of(i: usize) -> String {
    format!("user-{:02}", i % NAMES)
}

/// Writes `count` tests into `path` (a `port-P.json` log), the last one
/// ending about now; returns the timestamp of the first.
pub fn write_history(path: &Path, count: usize) -> u64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let first = now - 30 * count as u64;
    let file = std::fs::File::create(path).unwrap();
    let mut out = BufWriter::with_capacity(1 << 20, file);
    for i in 0..count {
        let ts = first + 30 * i as u64;
        let v6 = i % 3 == 0;
        let host = if v6 {
            format!("2001:db8::{:x}", i % 200 + 1)
        } else {
            format!("192.168.{}.{}", i % 7, i % 200 + 1)
        };
        // Each name gets both directions, both families, TCP and UDP.
        let udp = (i / 3) % 5 == 0;
        let reverse = (i / NAMES) % 2 == 1;
        // Rates wander with the time of day and per name.
        let bps = 2.0e8
            + 7.0e8
                * (((i % 2880) as f64 / 2880.0) * std::f64::consts::TAU)
                    .sin()
                    .abs()
            + 1.0e6 * (i % NAMES) as f64;
        let bytes = (bps / 8.0 * 10.0) as u64;
        let (sum_key, sender) = if reverse {
            ("sum_sent", "true")
        } else {
            ("sum_received", "false")
        };
        let udp_sum = if udp {
            ",\"jitter_ms\":0.02,\"lost_packets\":3,\"packets\":8000,\"lost_percent\":0.0375"
        } else {
            ""
        };
        writeln!(
            out,
            "{{\n\t\"start\":\t{{\n\t\t\"connected\":\t[],\n\t\t\"version\":\t\"iperf 3.12\",\n\
             \t\t\"timestamp\":\t{{\"timesecs\":\t{ts}}},\n\
             \t\t\"accepted_connection\":\t{{\"host\":\t\"{host}\",\"port\":\t40000}},\n\
             \t\t\"test_start\":\t{{\"protocol\":\t\"{proto}\",\"num_streams\":\t1,\"blksize\":\t131072,\
             \"omit\":\t0,\"duration\":\t10,\"bytes\":\t0,\"blocks\":\t0,\"reverse\":\t{rev},\"tos\":\t0,\
             \"target_bitrate\":\t0,\"bidir\":\t0,\"fqrate\":\t0,\"interval\":\t1}}\n\t}},\n\
             \t\"intervals\":\t[{{\"streams\":\t[],\"sum\":\t{{\"start\":\t0,\"end\":\t10,\"seconds\":\t10,\
             \"bytes\":\t{bytes},\"bits_per_second\":\t{bps},\"omitted\":\tfalse,\"sender\":\t{sender}{udp_sum}}}}}],\n\
             \t\"end\":\t{{\"streams\":\t[],\"{sum_key}\":\t{{\"start\":\t0,\"end\":\t10,\"seconds\":\t10,\
             \"bytes\":\t{bytes},\"bits_per_second\":\t{bps},\"sender\":\t{sender}{udp_sum}}}}},\n\
             \t\"extra_data\":\t\"{name}\"\n}}",
            proto = if udp { "UDP" } else { "TCP" },
            rev = u8::from(reverse),
            name = name_of(i),
        )
        .unwrap();
    }
    out.flush().unwrap();
    first
}
