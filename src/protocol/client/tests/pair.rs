//! The client machine against the server's session, in memory, on one
//! simulated clock: every message one side sends is the event the other
//! reads, the data streams move bytes at a fixed rate, and both sides must
//! end cleanly, with the parameters the client sent being those the server
//! judged.

use std::collections::VecDeque;

use super::*;
use crate::protocol::policy::Policy;
use crate::protocol::results_exchange::stream_id;
use crate::protocol::session::{self, Session};
use crate::protocol::wire::{Cookie, COOKIE_LEN};

/// Bytes per second each sending stream moves.
const RATE: f64 = 1e6;

/// A results document with these (stream id, bytes).
pub(super) fn results(streams: &[(i64, u64)]) -> Vec<u8> {
    let streams: Vec<String> = streams
        .iter()
        .map(|(id, bytes)| {
            format!(
                r#"{{"id":{id},"bytes":{bytes},"retransmits":0,"jitter":0,"errors":0,"packets":0,"start_time":0,"end_time":1}}"#
            )
        })
        .collect();
    format!(
        r#"{{"cpu_util_total":1,"cpu_util_user":0,"cpu_util_system":1,"sender_has_retransmits":1,"streams":[{}]}}"#,
        streams.join(",")
    )
    .into_bytes()
}

/// What a run of the pair ended with.
#[derive(Debug, Default)]
struct Outcome {
    /// The client's outcome.
    client: Option<Option<Failure>>,
    /// The server's log `error`.
    server: Option<Option<String>>,
    /// The server's parameters.
    params: Option<TestParams>,
    /// When the client sent `TEST_END`, seconds after the data started.
    ended_at: Option<f64>,
    /// Bytes the client had sent and received when it ended.
    moved: Progress,
    /// Omit ends seen by (the client, the server).
    omit_ends: (u32, u32),
    /// The client kept the server's results.
    kept: bool,
    /// The authtoken the server was asked to check.
    token: Option<Option<String>>,
}

/// How the server side answers what it is asked.
#[derive(Clone, Copy, PartialEq)]
enum Answer {
    /// Authentication passes, the port is free.
    Fine,
    /// The port is busy (asked once authenticated).
    Busy,
}

struct Pair {
    t0: Instant,
    now: Instant,
    client: Client,
    server: Session,
    answer: Answer,
    to_client: VecDeque<Event>,
    to_server: VecDeque<session::Event>,
    /// When the data started on (client, server).
    data: (Option<Instant>, Option<Instant>),
    out: Outcome,
}

impl Pair {
    fn new(params: TestParams, server: Session, answer: Answer) -> Pair {
        let t0 = Instant::now();
        Pair {
            t0,
            now: t0,
            client: Client::new(t0, params, Limits::default()),
            server,
            answer,
            to_client: VecDeque::from([Event::Connected]),
            to_server: VecDeque::new(),
            data: (None, None),
            out: Outcome::default(),
        }
    }

    /// The counters of the client's streams at `now`.
    fn client_progress(&self) -> Progress {
        let p = self.client.params();
        let secs = self
            .data
            .0
            .map_or(0.0, |t| self.now.saturating_duration_since(t).as_secs_f64());
        let per_stream = (RATE * secs) as u64;
        let n = u64::from(p.parallel);
        let sends = !p.reverse;
        let receives = p.reverse || p.bidirectional;
        let blocks = |b: u64| b / u64::from(p.len);
        Progress {
            sent: if sends { per_stream * n } else { 0 },
            received: if receives { per_stream * n } else { 0 },
            sent_blocks: if sends { blocks(per_stream) * n } else { 0 },
            received_blocks: if receives { blocks(per_stream) * n } else { 0 },
        }
    }

    fn on_client(&mut self, actions: Vec<Action>) {
        for a in actions {
            match a {
                Action::SendCookie => self
                    .to_server
                    .push_back(session::Event::Cookie(Cookie([b'c'; COOKIE_LEN]))),
                Action::SendParams(body) => self.to_server.push_back(session::Event::Params(body)),
                Action::Send(s) => self
                    .to_server
                    .push_back(session::Event::StateByte(s.byte())),
                Action::ConnectStreams(n) => {
                    for _ in 0..n {
                        self.to_client.push_back(Event::StreamConnected);
                        self.to_server.push_back(session::Event::StreamConnected);
                    }
                }
                Action::StartTest => {
                    self.data.0 = Some(self.now);
                    self.to_client.push_back(Event::Started);
                }
                Action::EndOmit => self.out.omit_ends.0 += 1,
                Action::EndTest => {
                    let start = self.data.0.unwrap_or(self.t0);
                    self.out.ended_at = Some((self.now - start).as_secs_f64());
                    self.out.moved = self.client_progress();
                }
                Action::SendResults => {
                    let n = self.client.params().stream_count() as usize;
                    let ids: Vec<(i64, u64)> = (0..n).map(|i| (stream_id(i), 1)).collect();
                    self.to_server
                        .push_back(session::Event::ClientResults(results(&ids)));
                }
                Action::KeepServerResults(_) => self.out.kept = true,
                Action::Finish(f) => {
                    self.out.client = Some(f);
                    self.to_server.push_back(session::Event::Eof);
                }
                Action::SampleInterval | Action::CloseStreams => {}
            }
        }
    }

    fn on_server(&mut self, actions: Vec<session::Action>) {
        use session::Action as A;
        for a in actions {
            match a {
                A::Send(s) => self.to_client.push_back(Event::StateByte(s.byte())),
                A::SendError(code, errno) => {
                    self.to_client
                        .push_back(Event::StateByte(State::ServerError.byte()));
                    let mut payload = [0u8; 8];
                    payload[..4].copy_from_slice(&code.0.to_be_bytes());
                    payload[4..].copy_from_slice(&errno.to_be_bytes());
                    self.to_client.push_back(Event::ErrorPayload(payload));
                }
                A::Authenticate(token) => {
                    self.out.token = Some(token);
                    self.to_server.push_back(match self.answer {
                        Answer::Fine => session::Event::Authenticated,
                        Answer::Busy => session::Event::Busy,
                    });
                }
                A::Prepare => self.to_server.push_back(session::Event::Prepared),
                A::StartTest => {
                    self.data.1 = Some(self.now);
                    self.to_server.push_back(session::Event::Started);
                }
                A::EndOmit => self.out.omit_ends.1 += 1,
                A::SendResults => {
                    let n = self.client.params().stream_count() as usize;
                    let ids: Vec<(i64, u64)> = (0..n).map(|i| (stream_id(i), 1)).collect();
                    self.to_client.push_back(Event::ReadStarted);
                    self.to_client
                        .push_back(Event::ServerResults(results(&ids)));
                }
                A::Finish(error) => {
                    self.out.server = Some(error);
                    self.out.params = self.server.params().cloned();
                    self.to_client.push_back(Event::Eof);
                }
                A::SampleInterval
                | A::Refused(_)
                | A::EndTest
                | A::StopStreams
                | A::FreePort
                | A::KeepClientResults(_) => {}
            }
        }
    }

    /// Runs both sides until both finished, or an hour of simulated time.
    fn run(mut self) -> Outcome {
        let limit = self.t0 + Duration::from_secs(3600);
        while self.out.client.is_none() || self.out.server.is_none() {
            if let Some(e) = self.to_client.pop_front() {
                let out = self.client.handle(self.now, e);
                self.on_client(out);
                continue;
            }
            if let Some(e) = self.to_server.pop_front() {
                let out = self.server.handle(self.now, e);
                self.on_server(out);
                continue;
            }
            let next = [self.client.deadline(), self.server.deadline()]
                .into_iter()
                .flatten()
                .min();
            let Some(next) = next.filter(|&n| n < limit) else {
                panic!("stuck at {:?}: {:?}", self.now - self.t0, self.out);
            };
            self.now = self.now.max(next);
            let progress = self.client_progress();
            let out = self.client.handle(self.now, Event::Tick(progress));
            self.on_client(out);
            let counters = session::Counters {
                received: progress.sent,
                sent: progress.received,
                ..session::Counters::default()
            };
            let out = self.server.handle(self.now, session::Event::Tick(counters));
            self.on_server(out);
        }
        self.out
    }
}

fn server() -> Session {
    Session::new(Instant::now(), session::Limits::default())
}

/// Runs `params` against a default server: both must end cleanly.
fn clean(params: TestParams) -> Outcome {
    let out = Pair::new(params.clone(), server(), Answer::Fine).run();
    assert_eq!(out.client, Some(None), "{out:?}");
    assert_eq!(out.server, Some(None), "{out:?}");
    assert_eq!(out.params.as_ref(), Some(&params));
    assert!(out.kept);
    out
}

#[test]
fn every_mode_runs_to_a_clean_end_against_the_server() {
    let udp = TestParams::client_default(Protocol::Udp);
    let modes = [
        tcp(2),
        TestParams {
            reverse: true,
            parallel: 3,
            ..tcp(2)
        },
        TestParams {
            bidirectional: true,
            parallel: 2,
            ..tcp(2)
        },
        TestParams {
            time: 2,
            reverse: true,
            bandwidth: 5_000_000,
            len: 1200,
            ..udp.clone()
        },
        TestParams {
            time: 2,
            bidirectional: true,
            udp_counters_64bit: true,
            ..udp
        },
        TestParams {
            window: 1 << 20,
            len: 8192,
            extra_data: Some("from the lab \"east\"".into()),
            title: Some("mesh".into()),
            client_version: Some("webperf3".into()),
            ..tcp(2)
        },
    ];
    for p in modes {
        let out = clean(p);
        assert_eq!(out.ended_at, Some(2.0));
    }
}

#[test]
fn the_omit_period_ends_on_both_sides_and_the_time_follows_it() {
    let out = clean(TestParams { omit: 2, ..tcp(3) });
    assert_eq!(out.omit_ends, (1, 1));
    assert_eq!(out.ended_at, Some(5.0));
}

#[test]
fn a_byte_count_ends_once_either_direction_reaches_it() {
    for reverse in [false, true] {
        let p = TestParams {
            num: 5_000_000,
            reverse,
            ..tcp(0)
        };
        let out = clean(p);
        let at = out.ended_at.unwrap();
        assert!(
            (5.0..5.0 + COUNT_CHECK.as_secs_f64() + 1e-9).contains(&at),
            "{at}"
        );
        assert!(out.moved.sent.max(out.moved.received) >= 5_000_000);
    }
}

#[test]
fn authentication_sends_the_token_the_server_checks() {
    let p = TestParams {
        authtoken: Some("c2VjcmV0".into()),
        ..tcp(1)
    };
    let out = Pair::new(p.clone(), server().with_auth(true), Answer::Fine).run();
    assert_eq!(out.client, Some(None));
    assert_eq!(out.token, Some(Some("c2VjcmV0".into())));
}

#[test]
fn a_busy_server_and_a_refusal_reach_the_client_with_their_reason() {
    let out = Pair::new(tcp(1), server().with_auth(true), Answer::Busy).run();
    assert_eq!(out.client, Some(Some(Failure::Busy)));
    assert_eq!(out.ended_at, None);

    let policy = Policy {
        max_duration: Some(5),
        ..Policy::default()
    };
    let out = Pair::new(tcp(10), server().with_policy(policy), Answer::Fine).run();
    assert_eq!(
        out.client,
        Some(Some(Failure::Server {
            code: ErrorCode::MAX_DURATION,
            errno: 0
        }))
    );
    assert!(out.server.unwrap().is_some());
}
