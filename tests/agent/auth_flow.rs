//! Credentials end to end (issue 12), against real TLS tus servers on
//! loopback that require a bearer token: the provider is asked on the run's
//! thread, a 401/403 refreshes once, a second refusal or a provider that
//! gives nothing ends the run `unauthorized` with every item untouched, and
//! the token never lands in the database, the WAL, the logs, the audit or an
//! error. Every run has its own watchdog.

use std::collections::VecDeque;
use std::sync::{mpsc, Arc, Mutex, OnceLock};
use std::thread::ThreadId;
use std::time::{Duration, Instant};

use cloudsync::auth::{CredentialProvider, CredentialRequest, ProviderError, Secret};
use cloudsync::error::AuthFailure;
use cloudsync::{Agent, Error, ErrorKind, RunReport};
use cloudsync_devserver::Fault;
use cloudsync_testkit::env::{AgentEnv, RUN_WATCHDOG};
use cloudsync_testkit::files::random_file;

const TOKEN_IN: &str = "tok-in-Zq9pL2xY7wVb";

/// Every log record of this test binary, at every level.
struct Capture(Mutex<Vec<String>>);

impl log::Log for Capture {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, r: &log::Record<'_>) {
        let line = format!("{} {}: {}", r.level(), r.target(), r.args());
        self.0.lock().unwrap_or_else(|p| p.into_inner()).push(line);
    }
    fn flush(&self) {}
}

fn logs() -> &'static Capture {
    static CAPTURE: OnceLock<&'static Capture> = OnceLock::new();
    CAPTURE.get_or_init(|| {
        let c: &'static Capture = Box::leak(Box::new(Capture(Mutex::new(Vec::new()))));
        log::set_logger(c).expect("the only logger of this binary");
        log::set_max_level(log::LevelFilter::Trace);
        c
    })
}

/// One call the provider received.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Call {
    account: String,
    region: String,
    service: String,
    refresh: bool,
    thread: ThreadId,
}

/// A scripted provider: answers are taken in order (the last one repeats).
#[derive(Clone)]
struct Script {
    calls: Arc<Mutex<Vec<Call>>>,
    answers: Arc<Mutex<VecDeque<Answer>>>,
}

#[derive(Clone)]
enum Answer {
    Token(&'static str),
    None,
    Fail(&'static str),
    Slow(Duration, &'static str),
}

impl Script {
    fn new(answers: &[Answer]) -> Script {
        Script {
            calls: Arc::default(),
            answers: Arc::new(Mutex::new(answers.iter().cloned().collect())),
        }
    }

    fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }

    fn refreshes(&self) -> Vec<bool> {
        self.calls().iter().map(|c| c.refresh).collect()
    }
}

impl CredentialProvider for Script {
    fn credential(&self, r: &CredentialRequest<'_>) -> Result<Option<Secret>, ProviderError> {
        self.calls.lock().unwrap().push(Call {
            account: r.account.into(),
            region: r.region.into(),
            service: r.service.into(),
            refresh: r.refresh,
            thread: std::thread::current().id(),
        });
        let answer = {
            let mut a = self.answers.lock().unwrap();
            if a.len() > 1 {
                a.pop_front().unwrap()
            } else {
                a.front().cloned().expect("an answer")
            }
        };
        match answer {
            Answer::Token(t) => Ok(Some(Secret::new(t.into()))),
            Answer::None => Ok(None),
            Answer::Fail(m) => Err(ProviderError::new(m)),
            Answer::Slow(d, t) => {
                std::thread::sleep(d);
                Ok(Some(Secret::new(t.into())))
            }
        }
    }
}

/// Regions `in` (token [`TOKEN_IN`]) and `sg` (its own token), the account
/// `alice` in India, signed in.
fn env() -> AgentEnv {
    let _ = logs();
    AgentEnv::builder(&["in", "sg"])
        .setup(|s| {
            s[0].bearer_token = Some(TOKEN_IN.into());
            s[1].bearer_token = Some("tok-sg".into());
        })
        .account("alice")
        .build()
}

fn enqueue(e: &AgentEnv, names: &[&str], size: usize) -> Vec<i64> {
    names
        .iter()
        .map(|n| {
            let p = random_file(e.dir.path(), n, size as u64, 0);
            e.agent.enqueue(&p, "backup", 0).unwrap()
        })
        .collect()
}

fn run_max(agent: &Arc<Agent>, max: Duration) -> (cloudsync::Result<RunReport>, ThreadId) {
    let (tx, rx) = mpsc::channel();
    let a = agent.clone();
    std::thread::spawn(move || {
        let r = a.run_once(max, &mut |_| true);
        let _ = tx.send((r, std::thread::current().id()));
    });
    rx.recv_timeout(RUN_WATCHDOG)
        .expect("run_once returned in time")
}

fn run(agent: &Arc<Agent>) -> (cloudsync::Result<RunReport>, ThreadId) {
    run_max(agent, Duration::from_secs(30))
}

/// (state, attempts, last_error, held_reason) of every item, by id.
type Snap = Vec<(i64, String, u32, Option<String>, Option<String>)>;

fn snapshot(a: &Agent) -> Snap {
    a.list(None, 0, 1000)
        .unwrap()
        .into_iter()
        .map(|i| {
            let held = i.held_reason.map(|h| h.name().into());
            (i.id, i.state.name().into(), i.attempts, i.last_error, held)
        })
        .collect()
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

/// The token is nowhere it could persist or leak: the database file, its
/// WAL, any log record, the audit, the item list.
fn assert_token_nowhere(e: &AgentEnv, token: &str) {
    for f in [e.db.clone(), e.db.with_extension("db-wal")] {
        if let Ok(bytes) = std::fs::read(&f) {
            assert!(!contains(&bytes, token), "token found in {}", f.display());
        }
    }
    let logs = logs().0.lock().unwrap_or_else(|p| p.into_inner());
    assert!(!logs.is_empty(), "the capture sees the library's logs");
    let leaked: Vec<&String> = logs.iter().filter(|l| l.contains(token)).collect();
    assert!(leaked.is_empty(), "token in log records: {leaked:?}");
    let audit = format!("{:?}", e.agent.audit(0, 1000).unwrap());
    let list = format!("{:?}", e.agent.list(None, 0, 1000).unwrap());
    assert!(!audit.contains(token) && !list.contains(token));
}

#[test]
fn the_token_goes_to_the_approved_region_only_and_is_stored_nowhere() {
    let e = env();
    let script = Script::new(&[Answer::Token(TOKEN_IN)]);
    e.agent
        .set_credential_provider(Some(Arc::new(script.clone())));
    enqueue(&e, &["a", "b"], 300_000);
    let (r, run_thread) = run(&e.agent);
    let r = r.unwrap();
    assert_eq!((r.uploaded, r.failed, r.remaining), (2, 0, 0), "{r:?}");
    // Asked once for the run, on the run's own thread, for the right account.
    let calls = script.calls();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(
        (calls[0].account.as_str(), calls[0].region.as_str()),
        ("alice", "in")
    );
    assert_eq!(
        (calls[0].service.as_str(), calls[0].refresh),
        ("backup", false)
    );
    assert_eq!(calls[0].thread, run_thread);
    let srv = &e.world.servers["in"];
    let seen = srv.authorizations();
    assert!(!seen.is_empty());
    assert!(
        seen.iter().all(|h| h == &format!("Bearer {TOKEN_IN}")),
        "{seen:?}"
    );
    // OPTIONS carries no user data and goes without the header.
    assert_eq!(srv.stats().unauthorized, 0);
    let sg = e.world.servers["sg"].stats();
    assert_eq!((sg.connections, sg.authorization_headers), (0, 0));
    assert_token_nowhere(&e, TOKEN_IN);
}

#[test]
fn a_refused_token_is_refreshed_once_and_the_request_sent_again() {
    let e = env();
    // The server rotated the token: the provider's cached one is stale.
    let script = Script::new(&[Answer::Token("stale-token"), Answer::Token(TOKEN_IN)]);
    e.agent
        .set_credential_provider(Some(Arc::new(script.clone())));
    let ids = enqueue(&e, &["a"], 200_000);
    let r = run(&e.agent).0.unwrap();
    assert_eq!((r.uploaded, r.failed), (1, 0), "{r:?}");
    assert_eq!(script.refreshes(), [false, true]);
    let srv = &e.world.servers["in"];
    assert_eq!(srv.stats().unauthorized, 1);
    assert_eq!(srv.authorizations()[0], "Bearer stale-token");
    assert_eq!(srv.stats().uploads_created, 1, "{ids:?}");
    assert_token_nowhere(&e, "stale-token");
}

#[test]
fn a_403_on_patch_refreshes_and_resends_the_chunk() {
    let e = env();
    let script = Script::new(&[Answer::Token(TOKEN_IN)]);
    e.agent
        .set_credential_provider(Some(Arc::new(script.clone())));
    let ids = enqueue(&e, &["a"], 500_000);
    let srv = &e.world.servers["in"];
    srv.push_fault(Fault::Status {
        method: Some("PATCH"),
        status: 403,
        retry_after: None,
    });
    let r = run(&e.agent).0.unwrap();
    assert_eq!((r.uploaded, r.failed), (1, 0), "{r:?}");
    assert_eq!(script.refreshes(), [false, true]);
    let ups = srv.uploads();
    assert_eq!(ups.len(), 1, "one upload, resumed after the refresh");
    assert!(ups[0].complete);
    assert_eq!(
        ups[0].metadata_value("item"),
        Some(ids[0].to_string().as_bytes())
    );
}

#[test]
fn refused_twice_ends_the_run_unauthorized_with_every_item_untouched() {
    for (method, status) in [(None, 401u16), (Some("POST"), 403), (Some("PATCH"), 401)] {
        let e = env();
        let script = Script::new(&[Answer::Token(TOKEN_IN)]);
        e.agent
            .set_credential_provider(Some(Arc::new(script.clone())));
        enqueue(&e, &["a", "b", "c"], 100_000);
        let before = snapshot(&e.agent);
        let srv = &e.world.servers["in"];
        match method {
            // A token the server does not take, before and after the refresh.
            None => srv.set_token(Some("server-wants-another".into())),
            Some(m) => {
                for _ in 0..2 {
                    srv.push_fault(Fault::Status {
                        method: Some(m),
                        status,
                        retry_after: None,
                    });
                }
            }
        }
        let err = run(&e.agent).0.unwrap_err();
        assert!(
            matches!(err, Error::Unauthorized(AuthFailure::Status(s)) if s == status),
            "{method:?}: {err:?}"
        );
        assert_eq!(
            (err.kind(), err.kind().code()),
            (ErrorKind::Unauthorized, 53)
        );
        assert_eq!(
            err.to_string(),
            format!("unauthorized: the server refused the credentials (HTTP {status})")
        );
        assert_eq!(script.refreshes(), [false, true], "{method:?}");
        assert_eq!(
            snapshot(&e.agent),
            before,
            "{method:?}: no attempt, no backoff"
        );
        assert_eq!(srv.stats().uploads_completed, 0);
        assert!(!err.to_string().contains(TOKEN_IN));
        // Fixed credentials: everything goes.
        srv.set_token(Some(TOKEN_IN.into()));
        let r = run(&e.agent).0.unwrap();
        assert_eq!((r.uploaded, r.remaining), (3, 0), "{method:?}: {r:?}");
    }
}

#[test]
fn no_token_or_a_failing_provider_sends_nothing_and_ends_the_run() {
    let cases: [(Option<Answer>, &str); 4] = [
        (
            Some(Answer::None),
            "unauthorized: the provider returned no credentials for the account",
        ),
        (
            Some(Answer::Fail("account service down")),
            "unauthorized: the credential provider failed: account service down",
        ),
        (
            Some(Answer::Token("two words")),
            "unauthorized: the provider returned a token that is not a bearer token",
        ),
        (
            None,
            "unauthorized: the service requires credentials and no provider is set",
        ),
    ];
    for (answer, message) in cases {
        let e = env();
        if let Some(a) = answer {
            e.agent
                .set_credential_provider(Some(Arc::new(Script::new(&[a]))));
        }
        enqueue(&e, &["a", "b"], 100_000);
        let before = snapshot(&e.agent);
        let err = run(&e.agent).0.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unauthorized, "{message}");
        assert_eq!(err.to_string(), message);
        assert_eq!(snapshot(&e.agent), before, "{message}");
        let st = e.world.servers["in"].stats();
        // Only the anonymous OPTIONS went out: no POST, no header.
        assert_eq!(
            (
                st.uploads_created,
                st.authorization_headers,
                st.unauthorized
            ),
            (0, 0, 0),
            "{message}: {st:?}"
        );
    }
}

#[test]
fn a_slow_provider_past_the_deadline_sends_nothing() {
    let e = env();
    let script = Script::new(&[Answer::Slow(Duration::from_millis(1500), TOKEN_IN)]);
    e.agent
        .set_credential_provider(Some(Arc::new(script.clone())));
    enqueue(&e, &["a"], 100_000);
    let before = snapshot(&e.agent);
    let t0 = Instant::now();
    let r = run_max(&e.agent, Duration::from_millis(500)).0.unwrap();
    assert_eq!(r.stopped, cloudsync::StopReason::TimeUp, "{r:?}");
    assert!(t0.elapsed() < Duration::from_secs(10), "{:?}", t0.elapsed());
    assert_eq!(snapshot(&e.agent), before);
    let st = e.world.servers["in"].stats();
    assert_eq!((st.uploads_created, st.authorization_headers), (0, 0));
}

#[test]
fn a_provider_that_calls_back_into_the_agent_does_not_deadlock() {
    let e = env();
    let agent = e.agent.clone();
    let nested = Arc::new(Mutex::new(None));
    let seen = nested.clone();
    let provider = move |_: &CredentialRequest<'_>| -> Result<Option<Secret>, ProviderError> {
        let stats = agent
            .stats()
            .map_err(|e| ProviderError::new(e.to_string()))?;
        let inner = agent.run_once(Duration::from_secs(1), &mut |_| true);
        *seen.lock().unwrap() = Some((stats.pending, inner.map_err(|e| e.kind())));
        Ok(Some(Secret::new(TOKEN_IN.into())))
    };
    e.agent.set_credential_provider(Some(Arc::new(provider)));
    enqueue(&e, &["a"], 100_000);
    let r = run(&e.agent).0.unwrap();
    assert_eq!(r.uploaded, 1);
    let (pending, inner) = nested.lock().unwrap().take().unwrap();
    assert_eq!(
        pending, 0,
        "the item is being uploaded (claimed) while asked"
    );
    assert_eq!(inner.unwrap_err(), ErrorKind::Busy);
}
