//! Tests of the client machine on a simulated clock: its own rules here
//! (the exchange, the end of a test, failures and timeouts), and the client
//! against the server's session in memory in [`pair`].

mod pair;

use super::*;
use crate::protocol::params::Protocol;

fn at(t0: Instant, secs: f64) -> Instant {
    t0 + Duration::from_secs_f64(secs)
}

fn tcp(time: u32) -> TestParams {
    TestParams {
        time,
        ..TestParams::client_default(Protocol::Tcp)
    }
}

fn byte(s: State) -> Event {
    Event::StateByte(s.byte())
}

fn sent(bytes: u64) -> Event {
    Event::Tick(Progress {
        sent: bytes,
        sent_blocks: bytes / 1000,
        ..Progress::default()
    })
}

fn received(bytes: u64) -> Event {
    Event::Tick(Progress {
        received: bytes,
        received_blocks: bytes / 1000,
        ..Progress::default()
    })
}

/// A client with `params` driven to its data phase, started at 0 s.
fn running(t0: Instant, params: TestParams) -> Client {
    let mut c = Client::new(t0, params.clone(), Limits::default());
    assert_eq!(c.expect(), Expect::Nothing);
    assert_eq!(c.handle(t0, Event::Connected), vec![Action::SendCookie]);
    assert_eq!(c.expect(), Expect::StateByte);
    assert_eq!(
        c.handle(t0, byte(State::ParamExchange)),
        vec![Action::SendParams(params.encode())]
    );
    let n = params.stream_count();
    assert_eq!(
        c.handle(t0, byte(State::CreateStreams)),
        vec![Action::ConnectStreams(n)]
    );
    assert_eq!(c.expect(), Expect::Nothing);
    for _ in 0..n {
        assert_eq!(c.handle(t0, Event::StreamConnected), vec![]);
    }
    assert_eq!(c.phase(), Phase::Starting);
    assert_eq!(c.handle(t0, byte(State::TestStart)), vec![]);
    assert_eq!(
        c.handle(t0, byte(State::TestRunning)),
        vec![Action::StartTest]
    );
    assert_eq!(c.handle(t0, Event::Started), vec![]);
    c
}

#[test]
fn a_timed_test_samples_each_second_and_ends_at_its_time() {
    let t0 = Instant::now();
    let mut c = running(t0, tcp(2));
    assert_eq!(c.deadline(), Some(at(t0, 1.0)));
    assert_eq!(
        c.handle(at(t0, 1.0), sent(10)),
        vec![Action::SampleInterval]
    );
    assert_eq!(c.deadline(), Some(at(t0, 2.0)));
    assert_eq!(
        c.handle(at(t0, 2.0), sent(20)),
        vec![
            Action::SampleInterval,
            Action::EndTest,
            Action::Send(State::TestEnd)
        ]
    );
    assert_eq!(c.phase(), Phase::Ending);
    assert_eq!(
        c.handle(at(t0, 2.0), byte(State::ExchangeResults)),
        vec![Action::SendResults]
    );
    assert_eq!(c.expect(), Expect::Results);
    assert_eq!(c.handle(at(t0, 2.0), Event::ReadStarted), vec![]);
    let results = pair::results(&[(1, 20)]);
    let out = c.handle(at(t0, 2.0), Event::ServerResults(results));
    assert!(matches!(out[..], [Action::KeepServerResults(_)]), "{out:?}");
    assert_eq!(
        c.handle(at(t0, 2.0), byte(State::DisplayResults)),
        vec![
            Action::Send(State::IperfDone),
            Action::CloseStreams,
            Action::Finish(None)
        ]
    );
    assert_eq!(c.phase(), Phase::Finished);
    assert_eq!(c.deadline(), None);
}

#[test]
fn the_omit_period_delays_the_end_and_the_count() {
    let t0 = Instant::now();
    let p = TestParams { omit: 2, ..tcp(1) };
    let mut c = running(t0, p);
    assert_eq!(c.handle(at(t0, 1.0), sent(5)), vec![Action::SampleInterval]);
    assert_eq!(
        c.handle(at(t0, 2.0), sent(10)),
        vec![Action::SampleInterval, Action::EndOmit]
    );
    assert_eq!(
        c.handle(at(t0, 3.0), sent(15)),
        vec![
            Action::SampleInterval,
            Action::EndTest,
            Action::Send(State::TestEnd)
        ]
    );

    // -n counts only what moved after the omit period.
    let p = TestParams {
        omit: 1,
        time: 0,
        num: 100,
        ..tcp(0)
    };
    let mut c = running(t0, p);
    assert_eq!(c.deadline(), Some(at(t0, 0.01)));
    assert_eq!(c.handle(at(t0, 0.5), sent(150)), vec![]);
    assert_eq!(
        c.handle(at(t0, 1.0), sent(160)),
        vec![Action::SampleInterval, Action::EndOmit]
    );
    assert_eq!(c.handle(at(t0, 1.2), sent(259)), vec![]);
    assert_eq!(
        c.handle(at(t0, 1.21), sent(260)),
        vec![Action::EndTest, Action::Send(State::TestEnd)]
    );
}

#[test]
fn a_count_ends_on_either_direction() {
    let t0 = Instant::now();
    let bytes = TestParams {
        num: 1000,
        reverse: true,
        ..tcp(0)
    };
    let mut c = running(t0, bytes);
    assert_eq!(c.handle(at(t0, 0.01), received(999)), vec![]);
    assert_eq!(c.deadline(), Some(at(t0, 0.02)));
    assert_eq!(
        c.handle(at(t0, 0.02), received(1000)),
        vec![Action::EndTest, Action::Send(State::TestEnd)]
    );
    let blocks = TestParams {
        blockcount: 3,
        ..tcp(0)
    };
    let mut c = running(t0, blocks);
    assert_eq!(c.handle(at(t0, 0.01), sent(2999)), vec![]);
    assert_eq!(
        c.handle(at(t0, 0.02), sent(3000)),
        vec![Action::EndTest, Action::Send(State::TestEnd)]
    );
}

#[test]
fn the_longest_run_caps_a_slow_count_and_a_long_time() {
    let t0 = Instant::now();
    let limits = Limits {
        max_run: Duration::from_secs(5),
        ..Limits::default()
    };
    for p in [
        TestParams {
            num: 1 << 40,
            ..tcp(0)
        },
        tcp(60),
    ] {
        let mut c = running(t0, p);
        c.limits = limits;
        c.started(t0);
        assert_eq!(c.timers().get(Timer::End), Some(at(t0, 5.0)));
        let out = c.handle(at(t0, 5.0), sent(1));
        assert!(out.ends_with(&[Action::EndTest, Action::Send(State::TestEnd)]));
    }
}

#[test]
fn busy_and_server_errors_end_the_test_with_their_reason() {
    let t0 = Instant::now();
    let mut c = Client::new(t0, tcp(1), Limits::default());
    c.handle(t0, Event::Connected);
    assert_eq!(
        c.handle(t0, byte(State::AccessDenied)),
        vec![Action::Finish(Some(Failure::Busy))]
    );
    assert!(Failure::Busy.is_busy());

    let mut c = Client::new(t0, tcp(1), Limits::default());
    c.handle(t0, Event::Connected);
    c.handle(t0, byte(State::ParamExchange));
    assert_eq!(c.handle(t0, byte(State::ServerError)), vec![]);
    assert_eq!(c.expect(), Expect::ErrorPayload);
    let out = c.handle(t0, Event::ErrorPayload([0, 0, 0, 37, 0, 0, 0, 0]));
    let failure = Failure::Server {
        code: ErrorCode::MAX_DURATION,
        errno: 0,
    };
    assert_eq!(out, vec![Action::Finish(Some(failure.clone()))]);
    assert!(failure
        .to_string()
        .starts_with("the server reported error 37: "));
    assert!(!failure.is_busy());
}

#[test]
fn the_server_ending_the_test_stops_ours() {
    let t0 = Instant::now();
    let mut c = running(t0, tcp(10));
    assert_eq!(
        c.handle(at(t0, 3.0), byte(State::ServerTerminate)),
        vec![
            Action::EndTest,
            Action::CloseStreams,
            Action::Finish(Some(Failure::ServerTerminated))
        ]
    );
    let mut c = running(t0, tcp(10));
    assert_eq!(
        c.handle(at(t0, 3.0), Event::Eof),
        vec![
            Action::EndTest,
            Action::CloseStreams,
            Action::Finish(Some(Failure::Closed))
        ]
    );
    assert_eq!(c.handle(at(t0, 3.0), Event::Eof), vec![]);
}

#[test]
fn out_of_turn_messages_and_bad_results_are_protocol_errors() {
    let t0 = Instant::now();
    let mut c = running(t0, tcp(10));
    let out = c.handle(at(t0, 1.0), byte(State::CreateStreams));
    assert_eq!(out[0], Action::Send(State::IperfDone));
    assert!(matches!(
        out.last(),
        Some(Action::Finish(Some(Failure::Protocol(t)))) if t == "unexpected control message 10"
    ));
    assert_eq!(c.handle(t0, Event::StateByte(3)), vec![]);

    let mut c = running(t0, tcp(1));
    c.handle(at(t0, 1.0), sent(1));
    c.handle(at(t0, 1.0), byte(State::ExchangeResults));
    // Stream id 3 is not one of a one-stream test's.
    let out = c.handle(at(t0, 1.0), Event::ServerResults(pair::results(&[(3, 1)])));
    assert!(matches!(
        out.last(),
        Some(Action::Finish(Some(Failure::Protocol(t)))) if t.starts_with("unable to receive results")
    ));
}

#[test]
fn every_wait_on_the_server_has_a_deadline() {
    let t0 = Instant::now();
    let l = Limits::default();
    let timeout = |what| Action::Finish(Some(Failure::Timeout(what)));
    // Connecting, then each answer of the exchange.
    let mut c = Client::new(t0, tcp(1), l);
    assert_eq!(c.deadline(), Some(t0 + l.reply));
    assert_eq!(
        c.handle(t0 + l.reply, Event::Tick(Progress::default())),
        vec![timeout("connecting")]
    );
    let mut c = Client::new(t0, tcp(1), l);
    c.handle(t0, Event::Connected);
    let out = c.handle(t0 + l.reply, Event::Tick(Progress::default()));
    assert_eq!(out, vec![timeout("waiting for PARAM_EXCHANGE")]);
    let mut c = Client::new(t0, tcp(1), l);
    c.handle(t0, Event::Connected);
    c.handle(t0, byte(State::ParamExchange));
    c.handle(t0, byte(State::CreateStreams));
    assert_eq!(c.deadline(), Some(t0 + l.streams));
    let out = c.handle(t0 + l.streams, Event::Tick(Progress::default()));
    assert_eq!(
        out,
        vec![
            Action::Send(State::IperfDone),
            timeout("connecting the data streams")
        ]
    );
    // The results: their first byte, then the whole document.
    let mut c = running(t0, tcp(1));
    c.handle(at(t0, 1.0), sent(1));
    c.handle(at(t0, 1.0), byte(State::ExchangeResults));
    assert_eq!(c.deadline(), Some(at(t0, 1.0) + l.read_start));
    let out = c.handle(at(t0, 1.0) + l.read_start, Event::Tick(Progress::default()));
    assert_eq!(out.last(), Some(&timeout("waiting for results")));
    // A receiving test whose data stops.
    let p = TestParams {
        reverse: true,
        ..tcp(1000)
    };
    let mut c = running(t0, p);
    assert_eq!(c.handle(at(t0, 60.0), received(5)).len(), 1);
    assert!(c.handle(at(t0, 179.0), received(5)).len() == 1);
    let out = c.handle(at(t0, 180.0), received(5));
    assert!(out.ends_with(&[
        Action::EndTest,
        Action::CloseStreams,
        timeout("no data received")
    ]));
}

#[test]
fn a_cancelled_test_tells_the_server() {
    let t0 = Instant::now();
    let mut c = running(t0, tcp(10));
    assert_eq!(
        c.handle(at(t0, 1.5), Event::Cancel("the box is shutting down")),
        vec![
            Action::Send(State::ClientTerminate),
            Action::EndTest,
            Action::CloseStreams,
            Action::Finish(Some(Failure::Cancelled("the box is shutting down")))
        ]
    );
    let mut c = Client::new(t0, tcp(1), Limits::default());
    assert_eq!(
        c.handle(t0, Event::Fault("connection refused".into())),
        vec![Action::Finish(Some(Failure::Local(
            "connection refused".into()
        )))]
    );
}
