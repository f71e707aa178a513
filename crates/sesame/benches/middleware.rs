//! What the session layer costs per request, in-process (no sockets):
//! a route that never touches the session, with a session cookie sent, next
//! to the same route without the layer (under `Router::layer`, and with the
//! layer wrapping the whole router); and the counter view on `MemoryStore`.
//!
//! Run: `cargo bench -p sesame --bench middleware`. Whole-server figures against
//! peers come from `../shared/peer-bench` (see BENCHMARKS.md).

#![allow(
    missing_docs,
    reason = "criterion_group! generates an undocumented function"
)]

use std::hint::black_box;

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use criterion::{Criterion, criterion_group, criterion_main};
use http::Request;
use http::header::{COOKIE, SET_COOKIE};
use sesame::backends::MemoryStore;
use sesame::{Session, SessionManagerLayer};
use tower::ServiceExt;

async fn counter(session: Session) -> sesame::Result<String> {
    let n: i64 = session.get("counter").await?.unwrap_or(0);
    session.insert("counter", n + 1).await?;
    Ok(format!("Counter : {n}"))
}

fn app(store: MemoryStore) -> Router {
    Router::new()
        .route("/", get(counter))
        .route("/plain", get(|| async { "plain" }))
        .layer(SessionManagerLayer::new(store))
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let store = MemoryStore::new();
    let with_layer = app(store);
    let bare: Router = Router::new().route("/plain", get(|| async { "plain" }));
    // The whole router wrapped once, as `bench_server` does: no per-route
    // boxing of the layered service.
    let wrapped = tower::Layer::layer(&SessionManagerLayer::new(MemoryStore::new()), bare.clone());
    let cookie = rt.block_on(async {
        let res = with_layer
            .clone()
            .oneshot(Request::get("/").body(Body::empty()).expect("request"))
            .await
            .expect("response");
        let set = res.headers()[SET_COOKIE].to_str().expect("ascii");
        set.split(';').next().expect("name=value").to_owned()
    });
    let request = |path: &str| {
        Request::get(path)
            .header(COOKIE, &cookie)
            .body(Body::empty())
            .expect("request")
    };

    let mut group = c.benchmark_group("per_request");
    group.bench_function("plain_bare", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(bare.clone().oneshot(request("/plain")).await) });
    });
    group.bench_function("plain_with_session_cookie", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(with_layer.clone().oneshot(request("/plain")).await) });
    });
    group.bench_function("plain_with_session_cookie_wrapped", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(wrapped.clone().oneshot(request("/plain")).await) });
    });
    group.bench_function("counter_memory_store", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(with_layer.clone().oneshot(request("/")).await) });
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
