//! TCP tests with the stock client: every client flag a server must honour,
//! the busy answer, clients that vanish, and the log each test leaves.

use std::time::Duration;

use serde_json::Value;

use crate::harness::{close, num, Server};
use crate::support::iperf3::{client, client_json, Running};
use crate::support::process::wait_output;

/// Runs one client test on a fresh server and returns (client JSON, our log
/// entry), after the checks every test shares: exit 0, exactly one new log
/// entry, no error, `extra_data` round-trips, and the byte counts of both
/// directions agree with the client's within 10 %.
fn run(extra: &[&str]) -> (Value, Value) {
    run_on(Server::start(1), extra)
}

/// [`run`] on a given server.
fn run_on(server: Server, extra: &[&str]) -> (Value, Value) {
    let name = format!("case {}", extra.join(" "));
    let mut args = vec!["-t", "2", "--extra-data", &name];
    if extra.iter().any(|a| *a == "-n" || *a == "-k") {
        args.drain(..2);
    }
    args.extend_from_slice(extra);
    let c = client_json(server.ports[0], &args);
    let entries = server.wait_entries(0, 1);
    let e = entries.into_iter().next().unwrap();
    assert!(e.get("error").is_none(), "error in log: {}", e["error"]);
    assert_eq!(e["extra_data"], Value::from(name.as_str()));
    let reverse = extra.contains(&"-R");
    let bidir = extra.contains(&"--bidir");
    if !reverse {
        // What the client sent is what we received (minus what was in flight).
        close(
            "received",
            num(&e, "/end/sum_received/bytes"),
            num(&c, "/end/sum_sent/bytes"),
        );
        // The client's receiver line is our results document.
        close(
            "results",
            num(&e, "/end/sum_received/bytes"),
            num(&c, "/end/sum_received/bytes"),
        );
    }
    if reverse {
        close(
            "sent",
            num(&e, "/end/sum_sent/bytes"),
            num(&c, "/end/sum_received/bytes"),
        );
        close(
            "results",
            num(&e, "/end/sum_sent/bytes"),
            num(&c, "/end/sum_sent/bytes"),
        );
    }
    if bidir {
        close(
            "sent (bidir)",
            num(&e, "/end/sum_sent_bidir_reverse/bytes"),
            num(&c, "/end/sum_received_bidir_reverse/bytes"),
        );
    }
    assert_eq!(
        num(&e, "/start/test_start/reverse"),
        f64::from(u8::from(reverse))
    );
    assert_eq!(
        num(&e, "/start/test_start/bidir"),
        f64::from(u8::from(bidir))
    );
    assert_eq!(e["start"]["cookie"], c["start"]["cookie"]);
    (c, e)
}

#[test]
fn plain() {
    let (_, e) = run(&[]);
    assert_eq!(e["start"]["test_start"]["protocol"], "TCP");
    assert_eq!(e["start"]["accepted_connection"]["host"], "127.0.0.1");
    let intervals = e["intervals"].as_array().unwrap();
    assert!(
        (2..=3).contains(&intervals.len()),
        "{} intervals",
        intervals.len()
    );
    assert!(e["end"]["receiver_tcp_congestion"].is_string());
    assert!(num(&e, "/end/cpu_utilization_percent/host_total") > 0.0);
}

#[test]
fn reverse() {
    let (c, e) = run(&["-R"]);
    assert!(e["end"]["sender_tcp_congestion"].is_string());
    // Retransmission figures come from our TCP_INFO.
    assert!(
        e["intervals"][0]["streams"][0]["snd_cwnd"]
            .as_u64()
            .unwrap()
            > 0
    );
    assert!(e["end"]["streams"][0]["sender"]["max_rtt"].is_u64());
    assert!(c["end"]["sum_sent"]["retransmits"].is_u64());
}

#[test]
fn reverse_client_results_keep_retransmits_signed() {
    // Stock 3.12 sends a receiving stream's "no figure" (-1) as its
    // unsigned 64-bit image; the entry keeps what the client meant.
    let (_, e) = run(&["-R"]);
    let streams = e["webperf3"]["client_results"]["streams"]
        .as_array()
        .expect("client_results kept");
    assert!(!streams.is_empty());
    for s in streams {
        assert_eq!(s["retransmits"], Value::from(-1), "{s}");
    }
}

#[test]
fn bidir() {
    let (_, e) = run(&["--bidir"]);
    assert_eq!(e["start"]["connected"].as_array().unwrap().len(), 2);
    assert!(e["intervals"][0]["sum_bidir_reverse"]["sender"] == true);
    assert!(e["end"]["sum_received"]["bytes"].as_u64().unwrap() > 0);
}

#[test]
fn parallel_four() {
    let (c, e) = run(&["-P", "4"]);
    assert_eq!(e["start"]["test_start"]["num_streams"], 4);
    assert_eq!(e["end"]["streams"].as_array().unwrap().len(), 4);
    assert_eq!(c["end"]["streams"].as_array().unwrap().len(), 4);
    for s in e["end"]["streams"].as_array().unwrap() {
        assert!(
            s["receiver"]["bytes"].as_u64().unwrap() > 0,
            "every stream carried data"
        );
    }
}

#[test]
fn parallel_four_reverse() {
    let (_, e) = run(&["-P", "4", "-R"]);
    assert_eq!(e["end"]["streams"].as_array().unwrap().len(), 4);
    for s in e["end"]["streams"].as_array().unwrap() {
        assert!(s["sender"]["bytes"].as_u64().unwrap() > 0);
    }
}

#[test]
fn bytes_limit() {
    // Large enough that what is still in flight at TEST_END stays well
    // under the 10 % the shared checks allow.
    let (c, e) = run(&["-n", "800M"]);
    assert_eq!(e["start"]["test_start"]["bytes"], 838_860_800);
    assert_eq!(e["start"]["test_start"]["duration"], 0);
    assert!(num(&c, "/end/sum_sent/bytes") >= 838_860_800.0);
}

#[test]
fn blocks_limit() {
    let (c, e) = run(&["-k", "6400"]);
    assert_eq!(e["start"]["test_start"]["blocks"], 6400);
    assert!(num(&c, "/end/sum_sent/bytes") >= 6400.0 * 131_072.0);
}

#[test]
fn omit() {
    let (_, e) = run(&["-O", "1"]);
    let intervals = e["intervals"].as_array().unwrap();
    assert_eq!(intervals[0]["sum"]["omitted"], true);
    assert_eq!(intervals[1]["sum"]["omitted"], false);
    assert_eq!(intervals[1]["sum"]["start"], 0);
    // end covers the two seconds after the omit period only.
    let t = num(&e, "/end/sum_received/seconds");
    assert!((1.8..2.5).contains(&t), "end seconds {t}");
}

#[test]
fn block_size() {
    let (_, e) = run(&["-l", "1K"]);
    assert_eq!(e["start"]["test_start"]["blksize"], 1024);
}

#[test]
fn window() {
    let (_, e) = run(&["-w", "256K"]);
    assert_eq!(e["start"]["sock_bufsize"], 262_144);
    assert!(num(&e, "/start/rcvbuf_actual") >= 262_144.0);
}

#[test]
fn nodelay_and_zerocopy() {
    // -N: the server's data sockets have TCP_NODELAY; without it they do not.
    let (_, e) = run(&["-N", "-Z"]);
    assert_eq!(e["webperf3"]["tcp_nodelay"], true, "{}", e["webperf3"]);
    let (_, e) = run(&["-t", "1", "-R"]);
    assert_eq!(e["webperf3"]["tcp_nodelay"], false, "{}", e["webperf3"]);
    // -Z reaches the server: under --copy (stock's way) a server sending
    // for a -Z client sends with sendfile, as stock does, instead of
    // copying with write.
    let copying = || {
        Server::with_settings(
            1,
            webperf3::server::port::PortSettings {
                copy: true,
                ..Default::default()
            },
        )
    };
    let (_, e) = run_on(copying(), &["-R", "-N", "-Z"]);
    assert_eq!(e["webperf3"]["tcp_nodelay"], true);
    let path = &e["webperf3"]["data_path"];
    assert_eq!(
        (&path["mode"], &path["send"]),
        (&"copy".into(), &"sendfile".into()),
        "{path}"
    );
    let (_, e) = run_on(copying(), &["-R", "-N"]);
    assert_eq!(e["webperf3"]["data_path"]["send"], "write");
}

#[test]
fn tos_and_fq_rate() {
    let (_, e) = run(&["-R", "-S", "32", "--fq-rate", "400M"]);
    assert_eq!(e["start"]["test_start"]["tos"], 32);
    assert_eq!(e["start"]["fq_rate"], 400_000_000);
    // The kernel paces the server's sending stream to the fq rate.
    let bps = num(&e, "/end/sum_sent/bits_per_second");
    assert!(bps < 480e6, "fq rate not applied: {bps}");
}

#[test]
fn congestion() {
    let (c, e) = run(&["-C", "reno"]);
    assert_eq!(e["end"]["receiver_tcp_congestion"], "reno");
    assert_eq!(c["end"]["receiver_tcp_congestion"], "reno");
}

#[test]
fn get_server_output() {
    let (c, e) = run(&["--get-server-output"]);
    let out = &c["server_output_json"];
    assert_eq!(out["start"]["cookie"], e["start"]["cookie"]);
    assert_eq!(out["end"], e["end"]);
    assert!(
        out.get("extra_data").is_none(),
        "stock leaves extra_data out of the server output"
    );
}

#[test]
fn title() {
    let (_, e) = run(&["--title", "lab <b>&</b>"]);
    assert_eq!(e["title"], "lab <b>&</b>");
}

#[test]
fn ipv6() {
    let server = Server::start(1);
    let port = server.ports[0].to_string();
    let out = client(&[
        "-c",
        "::1",
        "-p",
        &port,
        "-t",
        "1",
        "-6",
        "-J",
        "--extra-data",
        "v6",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let e = &server.wait_entries(0, 1)[0];
    assert_eq!(e["start"]["accepted_connection"]["host"], "::1");
    assert_eq!(e["start"]["connected"][0]["remote_host"], "::1");
    assert_eq!(e["extra_data"], "v6");
}

#[test]
fn window_not_granted_is_an_error() {
    let server = Server::start(1);
    let port = server.ports[0].to_string();
    let out = client(&["-c", "127.0.0.1", "-p", &port, "-t", "1", "-w", "100M"]);
    assert!(!out.status.success());
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        text.contains("socket buffer size not set correctly"),
        "{text}"
    );
    let e = &server.wait_entries(0, 1)[0];
    assert_eq!(e["error"], "error - socket buffer size not set correctly");
    // The port works normally afterwards.
    client_json(server.ports[0], &["-t", "1"]);
    server.wait_entries(0, 2);
}

/// Starts a client in text mode and returns once it printed its first
/// interval (the test is running).
fn running_client(port: u16, secs: &str, extra: &[&str]) -> std::process::Child {
    let mut args = vec!["-t", secs];
    args.extend_from_slice(extra);
    Running::start(port, &args).draining()
}

#[test]
fn back_to_back_clients_are_not_told_busy_while_the_last_test_is_recorded() {
    // Each record takes longer than a test: the port must not wait for it.
    let mut server = Server::with_slow_records(1, Duration::from_millis(700));
    let port = server.ports[0];
    let runs: [&[&str]; 6] = [
        &["-R"],
        &["--bidir", "-P", "2"],
        &[],
        &["-R", "-P", "2"],
        &["--bidir"],
        &["-u", "-b", "20M"],
    ];
    for (i, extra) in runs.iter().enumerate() {
        let name = format!("run-{i}");
        let mut args = vec!["-n", "1M", "--extra-data", &name];
        args.extend_from_slice(extra);
        // Fails on "the server is busy running a test".
        client_json(port, &args);
    }
    // Shutdown waits for the records still under way: none is lost.
    server.stop();
    let entries = crate::support::logs::read_entries(&server.log_path(0));
    let mut names: Vec<&str> = entries
        .iter()
        .map(|e| e["extra_data"].as_str().unwrap_or_default())
        .collect();
    // Records under way at once may reach the log in either order.
    names.sort_unstable();
    assert_eq!(
        names,
        ["run-0", "run-1", "run-2", "run-3", "run-4", "run-5"]
    );
}

#[test]
fn busy_while_a_test_runs() {
    let server = Server::start(1);
    let first = running_client(server.ports[0], "3", &[]);
    let port = server.ports[0].to_string();
    let second = client(&["-c", "127.0.0.1", "-p", &port, "-t", "1"]);
    assert!(!second.status.success());
    let text = String::from_utf8_lossy(&second.stderr).to_string()
        + &String::from_utf8_lossy(&second.stdout);
    assert!(text.contains("the server is busy running a test"), "{text}");
    let out = wait_output(first, Duration::from_secs(30));
    assert!(out.status.success(), "the running test was disturbed");
    let entries = server.wait_entries(0, 1);
    assert!(entries[0].get("error").is_none());
}

#[test]
fn client_killed_mid_test_then_a_good_test() {
    let server = Server::start(1);
    let mut victim = running_client(server.ports[0], "10", &["--extra-data", "victim"]);
    victim.kill().unwrap();
    victim.wait().unwrap();
    let entries = server.wait_entries(0, 1);
    assert_eq!(
        entries[0]["error"],
        "the client has unexpectedly closed the connection"
    );
    assert_eq!(entries[0]["extra_data"], "victim");
    assert!(!entries[0]["intervals"].as_array().unwrap().is_empty());
    let c = client_json(server.ports[0], &["-t", "1", "--extra-data", "after"]);
    let entries = server.wait_entries(0, 2);
    assert_eq!(entries[1]["extra_data"], "after");
    close(
        "after",
        num(&entries[1], "/end/sum_received/bytes"),
        num(&c, "/end/sum_sent/bytes"),
    );
}

#[test]
fn client_interrupted_is_logged() {
    let server = Server::start(1);
    let victim = running_client(server.ports[0], "10", &["--extra-data", "ctrl-c"]);
    // SAFETY: plain kill(2) on our own child's pid.
    unsafe { libc::kill(victim.id() as i32, libc::SIGINT) };
    let out = wait_output(victim, Duration::from_secs(20));
    assert!(!out.status.success() || String::from_utf8_lossy(&out.stdout).contains("interrupt"));
    let entries = server.wait_entries(0, 1);
    assert_eq!(entries[0]["error"], "the client has terminated");
    assert!(
        entries[0]["end"]["sum_received"]["bytes"].as_u64().unwrap() > 0,
        "end built at interrupt"
    );
}

#[test]
fn tests_on_several_ports_at_once() {
    let server = Server::start(2);
    let (a, b) = (server.ports[0], server.ports[1]);
    let t = std::thread::spawn(move || client_json(a, &["-t", "2", "--extra-data", "a"]));
    client_json(b, &["-t", "2", "--extra-data", "b"]);
    t.join().unwrap();
    assert_eq!(server.wait_entries(0, 1)[0]["extra_data"], "a");
    assert_eq!(server.wait_entries(1, 1)[0]["extra_data"], "b");
}
