//! A real store killed mid-load and brought back, through the layer.
//!
//! The shared PostgreSQL and MariaDB servers are never touched: a
//! [`ToggleProxy`] sits between the store's pool and the server, and
//! `stop()` closes every connection and refuses new ones (what a killed
//! server looks like to the client) until `start()`.
//!
//! Each run: 8 clients, each with its own session, loop on `GET /` (load +
//! save) for 1 s, the proxy stops for 3 s, then runs again for 3 s. Checked
//! and printed as `figure:` lines:
//!
//! - 0 hung requests (each has a 15 s hard limit);
//! - every request that starts during the outage is answered by the outage
//!   policy (503 under `FailClosed`, the handler's 200 with an empty session
//!   under `FailOpen`) within the store timeout plus a margin;
//! - ≥ 99 % of the requests that start 1 s or more after the store is back
//!   succeed, and the sessions kept their data through the outage.
//!
//! Run: `SESAME_TEST_POSTGRES_URL=… SESAME_TEST_MYSQL_URL=… cargo test -p
//! sesame --all-features --test faults -- --nocapture --test-threads 1`.

#![cfg(any(feature = "postgres", feature = "mysql"))]

mod sql_support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use http::header::{COOKIE, SET_COOKIE};
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use sesame::backends::SessionStore;
use sesame::{OutagePolicy, Session, SessionManagerLayer};
use sesame_conformance::ToggleProxy;
use tokio::time::Instant;
use tower::ServiceExt;

const CLIENTS: usize = 8;
const STORE_TIMEOUT: Duration = Duration::from_secs(1);
/// Added to the store timeout for the latency bound: a loaded 2-core machine.
const MARGIN: Duration = Duration::from_millis(1500);
const HARD_LIMIT: Duration = Duration::from_secs(15);
const WARM: Duration = Duration::from_secs(1);
const OUTAGE: Duration = Duration::from_secs(3);
const AFTER: Duration = Duration::from_secs(3);
const RECOVERY: Duration = Duration::from_secs(1);

async fn counter(session: Session) -> sesame::Result<String> {
    let n: i64 = session.get("counter").await?.unwrap_or(0);
    session.insert("counter", n + 1).await?;
    Ok(n.to_string())
}

/// One request as a client saw it.
#[derive(Debug, Clone)]
struct Sample {
    started: Duration,
    latency: Duration,
    /// `None`: not answered within [`HARD_LIMIT`] (hung).
    status: Option<StatusCode>,
    body: String,
}

async fn get_counter(app: &Router, cookie: Option<&str>) -> (StatusCode, Option<String>, String) {
    let mut req = Request::get("/");
    if let Some(c) = cookie {
        req = req.header(COOKIE, c);
    }
    let res = app
        .clone()
        .oneshot(req.body(Body::empty()).expect("a request"))
        .await
        .expect("infallible");
    let status = res.status();
    let set = res
        .headers()
        .get(SET_COOKIE)
        .and_then(|v| v.to_str().ok()?.split(';').next().map(str::to_owned));
    let body = res.into_body().collect().await.expect("a body").to_bytes();
    (status, set, String::from_utf8_lossy(&body).into_owned())
}

/// Runs the scenario on `store` (whose connections go through `proxy`).
async fn outage_scenario<S: SessionStore + Clone>(
    name: &str,
    store: S,
    proxy: &ToggleProxy,
    policy: OutagePolicy,
) {
    let app = Router::new().route("/", get(counter)).layer(
        SessionManagerLayer::new(store)
            .with_store_timeout(STORE_TIMEOUT)
            .with_outage_policy(policy),
    );
    let mut cookies = Vec::new();
    for _ in 0..CLIENTS {
        let (status, set, _) = get_counter(&app, None).await;
        assert_eq!(status, StatusCode::OK);
        cookies.push(set.expect("a new session"));
    }

    let t0 = Instant::now();
    let samples = Arc::new(Mutex::new(Vec::<Sample>::new()));
    let stop_at = WARM + OUTAGE + AFTER;
    let mut clients = Vec::new();
    for cookie in cookies {
        let app = app.clone();
        let samples = Arc::clone(&samples);
        clients.push(tokio::spawn(async move {
            while t0.elapsed() < stop_at {
                let started = t0.elapsed();
                let answer =
                    tokio::time::timeout(HARD_LIMIT, get_counter(&app, Some(&cookie))).await;
                let latency = t0.elapsed() - started;
                let (status, body) = match answer {
                    Ok((status, _, body)) => (Some(status), body),
                    Err(_) => (None, String::new()),
                };
                samples.lock().expect("not poisoned").push(Sample {
                    started,
                    latency,
                    status,
                    body,
                });
                // Failing fast must not turn into a busy loop.
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }));
    }
    tokio::time::sleep(WARM).await;
    proxy.stop();
    let down = t0.elapsed();
    tokio::time::sleep(OUTAGE).await;
    proxy.start().await.expect("the proxy listens again");
    let up = t0.elapsed();
    for client in clients {
        client.await.expect("a client does not panic");
    }
    let samples = samples.lock().expect("not poisoned").clone();

    // ---- figures ----
    let hung = samples.iter().filter(|s| s.status.is_none()).count();
    let during: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.started >= down && s.started + STORE_TIMEOUT <= up)
        .collect();
    let expected = match policy {
        OutagePolicy::FailOpen => StatusCode::OK,
        _ => StatusCode::SERVICE_UNAVAILABLE,
    };
    let by_policy = during.iter().filter(|s| s.status == Some(expected)).count();
    let worst = during.iter().map(|s| s.latency).max().unwrap_or_default();
    let ok = |s: &Sample| s.status == Some(StatusCode::OK) && s.body != "0";
    let first_back = samples
        .iter()
        .filter(|s| s.started >= up && ok(s))
        .map(|s| s.started + s.latency - up)
        .min();
    let recovered: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.started >= up + RECOVERY)
        .collect();
    let recovered_ok = recovered.iter().filter(|s| ok(s)).count();
    let rate = 100.0 * recovered_ok as f64 / recovered.len().max(1) as f64;
    eprintln!(
        "figure: {name} {}: {} requests, {hung} hung; outage {:.1} s: {by_policy}/{} answered {} \
         by the policy, slowest {} ms (store timeout {} ms); back: first success {} ms after \
         restart, {recovered_ok}/{} = {rate:.1} % success from {} s after restart",
        policy_name(policy),
        samples.len(),
        (up - down).as_secs_f64(),
        during.len(),
        expected.as_u16(),
        worst.as_millis(),
        STORE_TIMEOUT.as_millis(),
        first_back.map_or_else(|| "never".to_owned(), |d| d.as_millis().to_string()),
        recovered.len(),
        RECOVERY.as_secs(),
    );

    assert_eq!(hung, 0, "{name}: hung requests");
    assert!(
        !during.is_empty(),
        "{name}: no request ran during the outage"
    );
    assert_eq!(by_policy, during.len(), "{name}: {during:?}");
    assert!(worst <= STORE_TIMEOUT + MARGIN, "{name}: {worst:?}");
    assert!(
        recovered.len() >= 10,
        "{name}: too few requests after recovery"
    );
    assert!(rate >= 99.0, "{name}: {rate:.1} % after recovery");
}

fn policy_name(policy: OutagePolicy) -> &'static str {
    policy.as_str()
}

/// A bounded run: a scenario that does not finish in a minute is a hang.
async fn bounded(f: impl std::future::Future<Output = ()>) {
    tokio::time::timeout(Duration::from_secs(60), f)
        .await
        .expect("the scenario finishes within a minute");
}

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_killed_mid_load_and_restarted() {
    let Some(url) = sql_support::env_url("postgres") else {
        return;
    };
    bounded(async {
        for policy in [OutagePolicy::FailClosed, OutagePolicy::FailOpen] {
            let (proxy, via) = ToggleProxy::in_front_of(&url, 5432).await.unwrap();
            let store = sesame::backends::PostgresStore::connect(&via, sql_support::signer())
                .await
                .unwrap()
                .with_table(sql_support::fresh_name());
            store.migrate().await.unwrap();
            outage_scenario("postgres", store.clone(), &proxy, policy).await;
            sql_support::postgres::drop_table(&store).await;
        }
    })
    .await;
}

#[cfg(feature = "mysql")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_killed_mid_load_and_restarted() {
    let Some(url) = sql_support::env_url("mysql") else {
        return;
    };
    bounded(async {
        for policy in [OutagePolicy::FailClosed, OutagePolicy::FailOpen] {
            let (proxy, via) = ToggleProxy::in_front_of(&url, 3306).await.unwrap();
            let store = sesame::backends::MySqlStore::connect(&via, sql_support::signer())
                .await
                .unwrap()
                .with_table(sql_support::fresh_name());
            store.migrate().await.unwrap();
            outage_scenario("mariadb", store.clone(), &proxy, policy).await;
            sql_support::mysql::drop_table(&store).await;
        }
    })
    .await;
}
