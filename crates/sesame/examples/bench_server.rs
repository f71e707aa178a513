//! The peer-bench workload on Sesame: the same two routes, bodies and server
//! as the peers in `../shared/peer-bench` (`GET /` reads `counter`, stores
//! `counter + 1` and answers `counter=<old>`; `GET /plain` never touches the
//! session), so a comparison measures the session layers and nothing else.
//!
//! Run: `STORE=memory: PORT=8000 cargo run --release -p sesame --example bench_server --features full`.
//! `STORE` is `memory:` (default), `sqlite://PATH` or a `redis://…` URL;
//! `bench/peer-bench.sh` runs it under the harness. `SECRET_KEY` signs
//! SQLite rows (a fixed bench key when unset). `RUNTIME=per-core` runs one
//! single-threaded runtime per core; `CONFLICT=last-write-wins` saves as
//! Django and the peers do (no compare-and-swap) instead of merging.

use axum::extract::Request;
use axum::routing::{IntoMakeService, get};
use axum::{Router, ServiceExt};
use sesame::backends::{MemoryStore, RedisStore, SessionStore, SqliteStore};
use sesame::{ConflictPolicy, Session, SessionManager, SessionManagerLayer, Settings, Signer};
use tower_layer::Layer;

async fn counter(session: Session) -> sesame::Result<String> {
    let c: u64 = session.get("counter").await?.unwrap_or(0);
    session.insert("counter", c + 1).await?;
    Ok(format!("counter={c}"))
}

async fn plain() -> &'static str {
    "plain"
}

/// The routes, wrapped whole in the session layer (`layer.layer(router)`,
/// not `Router::layer`, which boxes the layered service once per route).
fn app(store: impl SessionStore) -> IntoMakeService<SessionManager<Router>> {
    let router = Router::new()
        .route("/", get(counter))
        .route("/plain", get(plain));
    // CONFLICT=last-write-wins: Django's (and the peers') guarantee, for a
    // like-for-like comparison; the default is Sesame's merge.
    let policy = match std::env::var("CONFLICT").as_deref() {
        Ok("last-write-wins") => ConflictPolicy::LastWriteWins,
        _ => ConflictPolicy::default(),
    };
    let service = SessionManagerLayer::new(store)
        .with_settings(Settings::default())
        .with_conflict_policy(policy)
        .layer(router);
    ServiceExt::<Request>::into_make_service(service)
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

fn main() -> Result<(), BoxError> {
    let port: u16 = std::env::var("PORT")
        .unwrap_or_else(|_| "8000".into())
        .parse()?;
    let threads = std::thread::available_parallelism().map_or(2, usize::from);
    if std::env::var("RUNTIME").as_deref() == Ok("per-core") {
        // One single-threaded runtime per core, each with its own listener
        // (SO_REUSEPORT) and its own store connection: actix-web's model.
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                std::thread::spawn(move || {
                    tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()?
                        .block_on(serve(port, true))
                })
            })
            .collect();
        for worker in workers {
            worker.join().map_err(|_| "a worker panicked")??;
        }
        Ok(())
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?
            .block_on(serve(port, false))
    }
}

async fn serve(port: u16, reuse_port: bool) -> Result<(), BoxError> {
    let store = std::env::var("STORE").unwrap_or_else(|_| "memory:".into());
    let signer = Signer::new(
        std::env::var("SECRET_KEY").unwrap_or_else(|_| "sesame-bench-server-key".into()),
    );
    let app = if let Some(path) = store.strip_prefix("sqlite://") {
        let store = SqliteStore::open(path, signer)?;
        store.migrate().await?;
        app(store)
    } else if store.starts_with("redis") {
        app(RedisStore::connect(&store).await?)
    } else {
        app(MemoryStore::new())
    };
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.set_reuseport(reuse_port)?;
    socket.bind(std::net::SocketAddr::from(([127, 0, 0, 1], port)))?;
    axum::serve(socket.listen(1024)?, app).await?;
    Ok(())
}
