//! `--forward` against a real HTTP receiver written here: it answers 500,
//! goes away, comes back; `webperf3` is restarted and killed (SIGKILL) in
//! between. Every test arrives, and none is sent again once the receiver
//! answered 2xx.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

use crate::support::daemon::{Daemon, Launch};
use crate::support::iperf3;
use crate::support::wait::wait_until;

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Delivery {
    key: String,
    body: Value,
    /// The status it answered.
    status: u16,
}

/// What a receiver answers to a request's body.
type Answer = Arc<dyn Fn(&Value) -> u16 + Send + Sync>;

/// A receiver on 127.0.0.1: answers every POST with `status`, records it.
struct Receiver {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Receiver {
    fn start(
        addr: SocketAddr,
        status: u16,
        seen: Arc<Mutex<Vec<Delivery>>>,
    ) -> std::io::Result<Receiver> {
        Receiver::answering(addr, Arc::new(move |_| status), seen)
    }

    /// A receiver whose answer depends on what it is sent.
    fn answering(
        addr: SocketAddr,
        answer: Answer,
        seen: Arc<Mutex<Vec<Delivery>>>,
    ) -> std::io::Result<Receiver> {
        let listener = TcpListener::bind(addr)?;
        let addr = listener.local_addr()?;
        listener.set_nonblocking(true)?;
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            if let Some(d) = serve(stream, &answer) {
                                seen.lock().unwrap().push(d);
                            }
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                            // Polling accept keeps the stop flag simple.
                            std::thread::sleep(Duration::from_millis(5));
                        }
                        Err(_) => return,
                    }
                }
            })
        };
        Ok(Receiver {
            addr,
            stop,
            thread: Some(thread),
        })
    }

    /// Stops listening: the port refuses connections.
    fn shut(mut self) -> SocketAddr {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
        self.addr
    }
}

/// Reads one request, answers what `answer` says of its body.
fn serve(stream: TcpStream, answer: &Answer) -> Option<Delivery> {
    stream.set_nonblocking(false).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    assert!(line.starts_with("POST /ingest "), "{line}");
    let (mut length, mut key) = (0usize, String::new());
    loop {
        let mut header = String::new();
        reader.read_line(&mut header).ok()?;
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        let (name, value) = header.split_once(':')?;
        match name.to_ascii_lowercase().as_str() {
            "content-length" => length = value.trim().parse().ok()?,
            "idempotency-key" => key = value.trim().to_string(),
            _ => {}
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    let body: Value = serde_json::from_slice(&body).ok()?;
    let status = answer(&body);
    let mut stream = reader.into_inner();
    let _ = write!(
        stream,
        "HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
    );
    Some(Delivery { key, body, status })
}

fn forwarding(daemon: &Daemon) -> Value {
    let status: Value = serde_json::from_str(&daemon.get("/api/status").1).unwrap();
    status["forward"][0].clone()
}

fn start(logs: &std::path::Path, url: &str) -> Daemon {
    Launch::new(logs)
        .args([
            "--forward",
            url,
            "--forward-host",
            "box-a",
            "--forward-retry-max",
            "0.5",
        ])
        .start()
}

#[test]
fn every_test_arrives_once_through_failures_restarts_and_a_kill() {
    iperf3::require();
    let tmp = tempfile::tempdir().unwrap();
    let logs = tmp.path().join("logs");
    let seen = Arc::new(Mutex::new(Vec::<Delivery>::new()));
    let receiver = Receiver::start("127.0.0.1:0".parse().unwrap(), 500, seen.clone()).unwrap();
    let url = format!("http://{}/ingest", receiver.addr);

    // The receiver answers 500: the test stays queued, retried.
    let mut daemon = start(&logs, &url);
    iperf3::client_json(daemon.port, &["-t", "1", "--extra-data", "one"]);
    wait_until(Duration::from_secs(20), "two refused attempts", || {
        seen.lock().unwrap().len() >= 2
    });
    let f = forwarding(&daemon);
    assert_eq!(f["queued"], 1, "{f}");
    assert!(f["last_error"].as_str().unwrap().contains("500"), "{f}");
    assert_eq!(f["target"], url.as_str());

    // The receiver goes away; a second test queues behind the first.
    let addr = receiver.shut();
    iperf3::client_json(daemon.port, &["-t", "1", "--extra-data", "two"]);
    wait_until(Duration::from_secs(20), "the queue holds both", || {
        forwarding(&daemon)["queued"] == 2
    });
    let failed = forwarding(&daemon)["failed"].as_u64().unwrap();
    wait_until(Duration::from_secs(20), "a refused connection", || {
        forwarding(&daemon)["failed"].as_u64().unwrap() > failed
    });
    let metrics = daemon.get("/metrics").1;
    assert!(
        metrics.contains("webperf3_forward_queue_tests{target=\""),
        "{metrics}"
    );

    // A clean restart keeps the queue; a third test joins it; then SIGKILL.
    assert!(daemon.terminate().success());
    let mut daemon = start(&logs, &url);
    assert_eq!(forwarding(&daemon)["queued"], 2);
    iperf3::client_json(daemon.port, &["-t", "1", "--extra-data", "three"]);
    wait_until(Duration::from_secs(20), "the third test queued", || {
        forwarding(&daemon)["queued"] == 3
    });
    daemon.signal(libc::SIGKILL);
    assert!(daemon.terminate().code().is_none());
    let daemon = start(&logs, &url);
    assert_eq!(forwarding(&daemon)["queued"], 3);

    // The receiver comes back (same address) and says yes.
    let mut back = None;
    wait_until(
        Duration::from_secs(20),
        "the receiver's address again",
        || {
            back = Receiver::start(addr, 200, seen.clone()).ok();
            back.is_some()
        },
    );
    let receiver = back.unwrap();
    wait_until(Duration::from_secs(30), "the queue drains", || {
        forwarding(&daemon)["queued"] == 0
    });
    iperf3::client_json(daemon.port, &["-t", "1", "--extra-data", "four"]);
    wait_until(Duration::from_secs(30), "the fourth test", || {
        forwarding(&daemon)["delivered"] == 4
    });

    // Killed again after every delivery: nothing is sent twice, and what
    // comes next still arrives (in order, so nothing older is pending).
    let mut daemon = daemon;
    daemon.signal(libc::SIGKILL);
    daemon.terminate();
    let daemon = start(&logs, &url);
    iperf3::client_json(daemon.port, &["-t", "1", "--extra-data", "five"]);
    wait_until(Duration::from_secs(30), "the fifth test", || {
        forwarding(&daemon)["delivered"] == 1
    });

    let seen = seen.lock().unwrap().clone();
    let mut accepted: BTreeMap<String, Vec<&Delivery>> = BTreeMap::new();
    for d in seen.iter().filter(|d| d.status == 200) {
        accepted.entry(d.key.clone()).or_default().push(d);
    }
    let names: Vec<&str> = accepted
        .values()
        .map(|d| d[0].body["result"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(accepted.len(), 5, "{names:?}");
    for (key, deliveries) in &accepted {
        assert_eq!(deliveries.len(), 1, "{key} accepted twice");
        let body = &deliveries[0].body;
        assert_eq!(body["host"], "box-a");
        assert_eq!(key, &format!("box-a/{}", body["id"].as_str().unwrap()));
        assert!(body["entry"]["start"].is_object(), "{body}");
        assert!(body["result"]["receive_bps"].is_number(), "{body}");
    }
    let mut names = names;
    names.sort_unstable();
    assert_eq!(names, ["five", "four", "one", "three", "two"]);
    // The refused attempts carried the same key as the accepted one.
    let first = seen.iter().find(|d| d.status == 500).unwrap();
    assert!(accepted.contains_key(&first.key));
    receiver.shut();
}

#[test]
fn a_receiver_that_never_answers_holds_up_neither_tests_nor_the_dashboard() {
    iperf3::require();
    let tmp = tempfile::tempdir().unwrap();
    // Accepts connections and never reads or answers them.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/ingest", listener.local_addr().unwrap());
    let held = Arc::new(Mutex::new(Vec::new()));
    {
        let held = held.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                held.lock().unwrap().push(stream);
            }
        });
    }
    let daemon = start(&tmp.path().join("logs"), &url);
    iperf3::client_json(daemon.port, &["-t", "1", "--extra-data", "one"]);
    wait_until(
        Duration::from_secs(20),
        "a delivery attempt hanging",
        || !held.lock().unwrap().is_empty(),
    );
    // While the sender waits for an answer, tests are recorded and the
    // dashboard answers at once.
    iperf3::client_json(daemon.port, &["-t", "1", "--extra-data", "two"]);
    wait_until(Duration::from_secs(10), "both tests recorded", || {
        let results: Vec<Value> = serde_json::from_str(&daemon.get("/api/results").1).unwrap();
        results.len() == 2
    });
    let asked = std::time::Instant::now();
    let f = forwarding(&daemon);
    assert!(
        asked.elapsed() < Duration::from_secs(2),
        "{:?}",
        asked.elapsed()
    );
    assert_eq!(
        (f["queued"].as_u64(), f["delivered"].as_u64()),
        (Some(2), Some(0)),
        "{f}"
    );
    assert_eq!(held.lock().unwrap().len(), 1, "one attempt at a time");
}

/// The name a delivered document's test was given.
fn name_of(body: &Value) -> &str {
    body["result"]["name"].as_str().unwrap_or_default()
}

/// The files of the one queue under `logs` (the directory named `dir`
/// inside it: `.` for the queue itself, `dead` for its dead letters).
fn queue_files(logs: &std::path::Path, dir: &str) -> Vec<std::path::PathBuf> {
    let queues: Vec<_> = std::fs::read_dir(logs.join("forward"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| !p.ends_with("pending"))
        .collect();
    assert_eq!(queues.len(), 1, "{queues:?}");
    let mut files: Vec<_> = std::fs::read_dir(queues[0].join(dir))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    files
}

/// A receiver on 127.0.0.1 answering as `answer` says, the binary
/// forwarding to it (its URL), and a stock client test run for each of
/// `names`, one after the other.
fn forwarding_to(
    logs: &std::path::Path,
    answer: Answer,
    seen: &Arc<Mutex<Vec<Delivery>>>,
    names: &[&str],
) -> (Receiver, String, Daemon) {
    let receiver =
        Receiver::answering("127.0.0.1:0".parse().unwrap(), answer, seen.clone()).unwrap();
    let url = format!("http://{}/ingest", receiver.addr);
    let daemon = start(logs, &url);
    for name in names {
        iperf3::client_json(daemon.port, &["-t", "1", "--extra-data", name]);
    }
    (receiver, url, daemon)
}

#[test]
fn a_test_refused_for_good_is_set_aside_and_the_queue_moves_on() {
    iperf3::require();
    let tmp = tempfile::tempdir().unwrap();
    let logs = tmp.path().join("logs");
    let seen = Arc::new(Mutex::new(Vec::<Delivery>::new()));
    // Loki's answer to a line it will not take: 400, every time.
    let answer: Answer = Arc::new(|body| if name_of(body) == "bad" { 400 } else { 200 });
    let (receiver, url, daemon) = forwarding_to(&logs, answer, &seen, &["bad", "good"]);
    wait_until(Duration::from_secs(30), "the test behind delivered", || {
        forwarding(&daemon)["delivered"] == 1
    });
    let f = forwarding(&daemon);
    assert_eq!(
        (&f["queued"], &f["rejected"], &f["dead_letters"]),
        (&Value::from(0), &Value::from(1), &Value::from(1)),
        "{f}"
    );
    assert!(f["last_error"].as_str().unwrap().contains("400"), "{f}");
    let metrics = daemon.get("/metrics").1;
    for line in [
        format!("webperf3_forward_rejected_total{{target=\"{url}\"}} 1"),
        format!("webperf3_forward_dead_letter_tests{{target=\"{url}\"}} 1"),
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line}\n{metrics}");
    }
    // The refused test waits in dead/, whole, for a person.
    let dead = queue_files(&logs, "dead");
    assert_eq!(dead.len(), 1, "{dead:?}");
    let kept: Value = serde_json::from_slice(&std::fs::read(&dead[0]).unwrap()).unwrap();
    assert_eq!(name_of(&kept), "bad");
    assert!(queue_files(&logs, ".").is_empty());
    // Asked once; after a restart it is still set aside, not sent again.
    let mut daemon = daemon;
    assert!(daemon.terminate().success());
    let daemon = start(&logs, &url);
    assert_eq!(forwarding(&daemon)["dead_letters"], 1);
    iperf3::client_json(daemon.port, &["-t", "1", "--extra-data", "after"]);
    wait_until(Duration::from_secs(30), "the next test delivered", || {
        forwarding(&daemon)["delivered"] == 1
    });
    let seen = seen.lock().unwrap();
    let asked: Vec<(&str, u16)> = seen.iter().map(|d| (name_of(&d.body), d.status)).collect();
    assert_eq!(asked, [("bad", 400), ("good", 200), ("after", 200)]);
    drop(seen);
    receiver.shut();
}

#[test]
fn a_queued_test_whose_file_is_gone_does_not_hold_up_the_others() {
    iperf3::require();
    let tmp = tempfile::tempdir().unwrap();
    let logs = tmp.path().join("logs");
    let seen = Arc::new(Mutex::new(Vec::<Delivery>::new()));
    let status = Arc::new(std::sync::atomic::AtomicU16::new(500));
    let answer: Answer = {
        let status = status.clone();
        Arc::new(move |_| status.load(Ordering::SeqCst))
    };
    let (receiver, _, daemon) = forwarding_to(&logs, answer, &seen, &["one", "two"]);
    wait_until(Duration::from_secs(20), "both queued", || {
        forwarding(&daemon)["queued"] == 2
    });
    // The first test's file goes, as when its removal reached the disk
    // but the directory sync after it failed: it was done.
    let failed = forwarding(&daemon)["failed"].as_u64().unwrap();
    std::fs::remove_file(&queue_files(&logs, ".")[0]).unwrap();
    // An attempt begun before the file went may still carry the first
    // test: the receiver says yes only once a later one began.
    wait_until(
        Duration::from_secs(20),
        "attempts after the removal",
        || forwarding(&daemon)["failed"].as_u64().unwrap() >= failed + 2,
    );
    status.store(200, Ordering::SeqCst);
    wait_until(Duration::from_secs(20), "the second test delivered", || {
        forwarding(&daemon)["delivered"] == 1
    });
    let f = forwarding(&daemon);
    assert_eq!(f["queued"], 0, "{f}");
    let seen = seen.lock().unwrap();
    let accepted: Vec<&str> = seen
        .iter()
        .filter(|d| d.status == 200)
        .map(|d| name_of(&d.body))
        .collect();
    assert_eq!(accepted, ["two"]);
    drop(seen);
    receiver.shut();
}

#[test]
fn a_probe_is_forwarded_with_its_kind_target_and_entry() {
    let stock = iperf3::StockServer::start();
    let tmp = tempfile::tempdir().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let receiver = Receiver::start("127.0.0.1:0".parse().unwrap(), 200, seen.clone()).unwrap();
    let url = format!("http://{}/ingest", receiver.addr);
    let daemon = Launch::new(&tmp.path().join("logs"))
        .args(["--forward", &url, "--forward-host", "box-a"])
        .args(["--probe-allow", "127.0.0.1"])
        .start();
    let target = format!("127.0.0.1:{}", stock.port);
    let (status, body) = daemon.get(&format!("/probe?target={target}&duration=1&bitrate=10M"));
    assert_eq!(status, 200, "{body}");
    wait_until(Duration::from_secs(20), "the probe delivered", || {
        !seen.lock().unwrap().is_empty()
    });
    let delivered = seen.lock().unwrap()[0].clone();
    let id = delivered.body["id"].as_str().unwrap().to_string();
    assert!(id.starts_with("probe-"), "{id}");
    assert_eq!(delivered.key, format!("box-a/{id}"));
    let result = &delivered.body["result"];
    assert_eq!(
        (&result["kind"], &result["target"]),
        (&Value::from("probe"), &Value::from(target.as_str()))
    );
    assert_eq!(
        delivered.body["entry"]["start"]["connecting_to"]["port"],
        stock.port
    );
    receiver.shut();
}
