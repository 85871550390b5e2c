//! The control-message exchange: handshake, parameters, results, read
//! deadlines, state bytes, shutdown.

use super::*;

#[test]
fn normal_test() {
    let clock = Clock(Instant::now());
    let mut s = running(&clock);
    assert_eq!(
        s.handle(clock.at(2.1), Event::StateByte(4)),
        vec![
            Action::EndTest,
            Action::StopStreams,
            Action::Send(State::ExchangeResults)
        ]
    );
    assert_eq!(s.expect(), Expect::Results);
    let actions = s.handle(
        clock.at(2.1),
        Event::ClientResults(RESULTS.as_bytes().to_vec()),
    );
    assert!(matches!(actions[0], Action::KeepClientResults(_)));
    assert_eq!(
        actions[1..],
        [
            Action::SendResults,
            Action::FreePort,
            Action::Send(State::DisplayResults)
        ]
    );
    assert_eq!(
        s.handle(clock.at(2.2), Event::StateByte(16)),
        vec![Action::Finish(None)]
    );
    assert_eq!(s.phase(), Phase::Finished);
    assert_eq!(s.handle(clock.at(2.2), Event::Eof), vec![]);
}

#[test]
fn eof_after_display_is_clean() {
    let clock = Clock(Instant::now());
    let mut s = running(&clock);
    s.handle(clock.at(2.0), Event::StateByte(4));
    s.handle(
        clock.at(2.0),
        Event::ClientResults(RESULTS.as_bytes().to_vec()),
    );
    assert_eq!(
        s.handle(clock.at(2.0), Event::Eof),
        vec![Action::Finish(None)]
    );
}

#[test]
fn client_vanishes_mid_test() {
    let clock = Clock(Instant::now());
    let mut s = running(&clock);
    assert_eq!(
        s.handle(clock.at(1.0), Event::Eof),
        vec![
            Action::EndTest,
            Action::Finish(Some(errors::CLIENT_CLOSED.into()))
        ]
    );
}

#[test]
fn client_terminates_while_streams_connect() {
    let clock = Clock(Instant::now());
    let mut s = Session::new(clock.at(0.0), Limits::default());
    s.handle(clock.at(0.0), Event::Cookie(cookie()));
    s.handle(clock.at(0.0), Event::Params(PARAMS.to_vec()));
    s.handle(clock.at(0.0), Event::Prepared);
    assert_eq!(
        s.handle(clock.at(0.5), Event::StateByte(12)),
        vec![Action::Finish(Some(errors::CLIENT_TERMINATED.into()))]
    );
}

#[test]
fn policy_refuses_long_tests() {
    let clock = Clock(Instant::now());
    let policy = Policy {
        max_duration: Some(1),
        ..Policy::default()
    };
    let mut s = Session::new(clock.at(0.0), Limits::default()).with_policy(policy);
    s.handle(clock.at(0.0), Event::Cookie(cookie()));
    let out = s.handle(clock.at(0.0), Event::Params(PARAMS.to_vec()));
    assert_eq!(out[0], Action::SendError(ErrorCode::MAX_DURATION, 0));
}

#[test]
fn bad_params_are_reported() {
    let clock = Clock(Instant::now());
    let mut s = Session::new(clock.at(0.0), Limits::default());
    s.handle(clock.at(0.0), Event::Cookie(cookie()));
    let out = s.handle(clock.at(0.0), Event::Params(b"{\"parallel\":500}".to_vec()));
    assert_eq!(out[0], Action::SendError(ErrorCode::NUM_STREAMS, 0));
    assert!(
        matches!(&out[1], Action::Finish(Some(t)) if t.starts_with("error - number of parallel"))
    );
}

#[test]
fn unknown_state_byte_is_error_110() {
    let clock = Clock(Instant::now());
    let mut s = running(&clock);
    let out = s.handle(clock.at(1.0), Event::StateByte(7));
    assert_eq!(out[0], Action::SendError(ErrorCode::MESSAGE, 0));
    assert_eq!(out[1], Action::EndTest);
}

#[test]
fn timeouts_per_phase() {
    let clock = Clock(Instant::now());
    let mut s = Session::new(clock.at(0.0), Limits::default());
    assert_eq!(s.deadline(), Some(clock.at(10.0)));
    let out = s.handle(clock.at(10.0), tick());
    assert_eq!(out[0], Action::SendError(ErrorCode::RECV_COOKIE, 0));

    // Running, receiving: idle timeout 120 s unless progress; hard limit
    // time + omit + 40 s.
    let s = running(&clock);
    assert_eq!(s.deadline(), Some(clock.at(0.1 + 42.0)));
    let limits = idle_after(5);
    let mut s = running_with(&clock, Session::new(clock.at(0.0), limits));
    assert_eq!(s.deadline(), Some(clock.at(5.1)));
    let moved = Counters {
        received: 10,
        ..Counters::default()
    };
    s.handle(clock.at(3.0), Event::Tick(moved));
    assert_eq!(s.deadline(), Some(clock.at(8.0)));
    let out = s.handle(clock.at(8.0), tick());
    assert_eq!(out[0], Action::SendError(ErrorCode::NO_MSG, 0));
    assert!(
        matches!(&out[2], Action::Finish(Some(t)) if t == "error - idle timeout for receiving data")
    );
}

#[test]
fn read_start_then_read_total() {
    let clock = Clock(Instant::now());
    // Nothing at all: the start limit (10 s) applies.
    let mut s = Session::new(clock.at(0.0), Limits::default());
    assert!(s.awaiting_first_byte());
    assert_eq!(s.deadline(), Some(clock.at(10.0)));
    // Some bytes came: the whole message has the total (30 s) from the
    // start of the phase.
    assert_eq!(s.handle(clock.at(4.0), Event::ReadStarted), vec![]);
    assert!(!s.awaiting_first_byte());
    assert_eq!(s.deadline(), Some(clock.at(30.0)));
    // The next message starts a new phase with its own limits.
    s.handle(clock.at(5.0), Event::Cookie(cookie()));
    assert!(s.awaiting_first_byte());
    assert_eq!(s.deadline(), Some(clock.at(15.0)));
    let out = s.handle(clock.at(15.0), tick());
    assert_eq!(out[0], Action::SendError(ErrorCode::RECV_PARAMS, 0));
    assert!(
        matches!(&out[1], Action::Finish(Some(t)) if t.starts_with("error - unable to receive parameters"))
    );
    assert_eq!(s.phase(), Phase::Finished);
    assert_eq!(s.deadline(), None);

    // Results that never come: 117 after the start limit.
    let mut s = running(&clock);
    s.handle(clock.at(2.0), Event::StateByte(4));
    assert_eq!(s.deadline(), Some(clock.at(12.0)));
    let out = s.handle(clock.at(12.0), tick());
    assert_eq!(out[0], Action::SendError(ErrorCode::RECV_RESULTS, 0));

    // A short limit from the command line.
    let limits = Limits {
        read_start: Duration::from_millis(500),
        read_total: Duration::from_millis(1500),
        ..Limits::default()
    };
    let mut s = Session::new(clock.at(0.0), limits);
    assert_eq!(s.deadline(), Some(clock.at(0.5)));
    s.handle(clock.at(0.1), Event::ReadStarted);
    assert_eq!(s.deadline(), Some(clock.at(1.5)));
}

#[test]
fn streams_that_never_connect_time_out() {
    let clock = Clock(Instant::now());
    let mut s = Session::new(clock.at(0.0), Limits::default());
    s.handle(clock.at(0.0), Event::Cookie(cookie()));
    s.handle(clock.at(0.0), Event::Params(PARAMS.to_vec()));
    s.handle(clock.at(1.0), Event::Prepared);
    assert_eq!(s.deadline(), Some(clock.at(31.0)));
    s.handle(clock.at(2.0), Event::StreamConnected);
    let out = s.handle(clock.at(31.0), tick());
    assert_eq!(out[0], Action::SendError(ErrorCode::STREAM_ACCEPT, 0));
    assert!(matches!(out[1], Action::Finish(Some(_))));
}

#[test]
fn a_client_that_stops_reading_is_dropped() {
    let clock = Clock(Instant::now());
    let limits = idle_after(5);
    let mut s = Session::new(clock.at(0.0), limits);
    s.handle(clock.at(0.0), Event::Cookie(cookie()));
    let reverse = br#"{"tcp":true,"time":0,"num":1000000000,"reverse":true}"#;
    s.handle(clock.at(0.0), Event::Params(reverse.to_vec()));
    s.handle(clock.at(0.0), Event::Prepared);
    s.handle(clock.at(0.0), Event::StreamConnected);
    // An untimed reverse test: only the send-idle rule bounds it.
    assert_eq!(s.deadline(), Some(clock.at(5.0)));
    // Receiving nothing is normal when only sending.
    let pacing = Counters {
        pacing: true,
        ..Counters::default()
    };
    s.handle(clock.at(4.0), Event::Tick(pacing));
    assert_eq!(s.deadline(), Some(clock.at(9.0)));
    // A timeout reported before the deadline changes nothing.
    assert_eq!(s.handle(clock.at(8.0), tick()), vec![]);
    let out = s.handle(clock.at(9.0), tick());
    assert_eq!(out[0], Action::SendError(ErrorCode::NO_MSG, 0));
    assert_eq!(out[1], Action::EndTest);
    assert_eq!(
        out[2],
        Action::Finish(Some("error - idle timeout for sending data".into()))
    );
}

#[test]
fn bad_parameter_documents_get_their_codes() {
    let clock = Clock(Instant::now());
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let deep_in_object = format!(
        r#"{{"title":{}1{}}}"#,
        "[".repeat(10_000),
        "]".repeat(10_000)
    );
    let cases: Vec<(&[u8], i32)> = vec![
        (b"", 114),
        (b"\xff\xfe", 114),
        (b"null", 114),
        (b"[]", 114),
        (b"\"tcp\"", 114),
        (b"{\"time\":", 114),
        (b"{} trailing", 114),
        (deep.as_bytes(), 114),
        (deep_in_object.as_bytes(), 114),
        (br#"{"time":"10"}"#, 114),
        (br#"{"parallel":[1]}"#, 114),
        (br#"{"udp":"yes"}"#, 114),
        (br#"{"title":42}"#, 114),
        (br#"{"num":-5}"#, 114),
        (br#"{"bandwidth":1e400}"#, 114),
        (br#"{"time":-10}"#, 5),
        (br#"{"time":1e30}"#, 5),
        (br#"{"time":18446744073709551616}"#, 5),
        (br#"{"omit":-1}"#, 12),
        (br#"{"parallel":129}"#, 6),
        (br#"{"parallel":-1}"#, 6),
        (br#"{"len":-1}"#, 7),
        (br#"{"window":-1}"#, 8),
        (br#"{"TOS":-1}"#, 21),
    ];
    for (body, want) in cases {
        let mut s = Session::new(clock.at(0.0), Limits::default());
        s.handle(clock.at(0.0), Event::Cookie(cookie()));
        let out = s.handle(clock.at(0.0), Event::Params(body.to_vec()));
        assert_eq!(
            out[0],
            Action::SendError(ErrorCode(want), 0),
            "{}",
            String::from_utf8_lossy(&body[..body.len().min(40)])
        );
        assert!(matches!(out[1], Action::Finish(Some(_))));
        assert_eq!(s.phase(), Phase::Finished);
    }
    // Missing keys are defaults, not errors.
    let mut s = Session::new(clock.at(0.0), Limits::default());
    s.handle(clock.at(0.0), Event::Cookie(cookie()));
    assert_eq!(
        s.handle(clock.at(0.0), Event::Params(b"{}".to_vec())),
        vec![Action::Prepare]
    );
}

#[test]
fn bad_results_documents_get_their_codes() {
    let clock = Clock(Instant::now());
    let deep = format!("{}{}", "{\"a\":".repeat(10_000), "}".repeat(10_000));
    let cases: Vec<(Vec<u8>, i32)> = vec![
        (b"garbage".to_vec(), 117),
        (b"[]".to_vec(), 117),
        (deep.into_bytes(), 117),
        (
            RESULTS.replace("\"streams\"", "\"streamz\"").into_bytes(),
            117,
        ),
        (
            RESULTS
                .replace("\"bytes\":5", "\"bytes\":\"5\"")
                .into_bytes(),
            117,
        ),
        (RESULTS.replace("\"id\":3", "\"id\":9").into_bytes(), 208),
        (RESULTS.replace("\"id\":3", "\"id\":-3").into_bytes(), 208),
    ];
    for (body, want) in cases {
        let mut s = running(&clock);
        s.handle(clock.at(2.0), Event::StateByte(4));
        let out = s.handle(clock.at(2.0), Event::ClientResults(body));
        assert_eq!(out[0], Action::SendError(ErrorCode(want), 0));
        assert!(matches!(out[1], Action::Finish(Some(_))));
    }
}

#[test]
fn shutdown_while_running() {
    let clock = Clock(Instant::now());
    let mut s = running(&clock);
    let out = s.handle(
        clock.at(1.0),
        Event::Shutdown(errors::SERVER_TERMINATED_TERM),
    );
    assert_eq!(out[0], Action::EndTest);
    assert_eq!(out[1], Action::Send(State::ServerTerminate));
    assert!(matches!(out[2], Action::Finish(Some(_))));
}

#[test]
fn bad_results_are_reported() {
    let clock = Clock(Instant::now());
    let mut s = running(&clock);
    s.handle(clock.at(2.0), Event::StateByte(4));
    let out = s.handle(clock.at(2.0), Event::ClientResults(b"{}".to_vec()));
    assert_eq!(out[0], Action::SendError(ErrorCode::RECV_RESULTS, 0));
    assert!(matches!(&out[1], Action::Finish(Some(_))));
}

/// A session that requires authentication, with its parameters (carrying
/// `authtoken` "T") received: it asks for the check before anything else.
fn authenticating(clock: &Clock, policy: Policy, params: &str) -> Session {
    let mut s = Session::new(clock.at(0.0), Limits::default())
        .with_policy(policy)
        .with_auth(true);
    s.handle(clock.at(0.0), Event::Cookie(cookie()));
    let out = s.handle(clock.at(0.1), Event::Params(params.as_bytes().to_vec()));
    assert_eq!(out, vec![Action::Authenticate(Some("T".into()))]);
    assert_eq!(s.expect(), Expect::Nothing);
    s
}

#[test]
fn limits_are_judged_only_after_authentication() {
    let clock = Clock(Instant::now());
    let policy = Policy {
        max_duration: Some(5),
        no_udp: true,
        ..Policy::default()
    };
    // Over two limits and too many streams: nothing is told yet.
    let params = r#"{"udp":true,"time":60,"parallel":500,"authtoken":"T"}"#;
    let mut s = authenticating(&clock, policy.clone(), params);
    // A failed check is all the client hears.
    let out = s.handle(clock.at(0.4), Event::Fault(ErrorCode::AUTH_TEST, None));
    assert_eq!(out[0], Action::SendError(ErrorCode::AUTH_TEST, 0));
    // Once authenticated, the limits apply.
    let mut s = authenticating(&clock, policy.clone(), params);
    let out = s.handle(clock.at(0.2), Event::Authenticated);
    assert!(matches!(out[0], Action::SendError(code, 0) if code != ErrorCode::AUTH_TEST));
    let ok = r#"{"tcp":true,"time":5,"authtoken":"T"}"#;
    let mut s = authenticating(&clock, policy.clone(), ok);
    assert_eq!(
        s.handle(clock.at(0.2), Event::Authenticated),
        vec![Action::Prepare]
    );
    assert_eq!(s.params().map(|p| p.time), Some(5));
    // Authenticated, but the port is full: told "busy", as stock does.
    let mut s = authenticating(&clock, policy, ok);
    let out = s.handle(clock.at(0.2), Event::Busy);
    assert_eq!(out[0], Action::Send(State::AccessDenied));
    assert_eq!(s.phase(), Phase::Finished);
}
