//! The counter on `PostgresStore`, in Django's `django_session` table (created if missing).
//!
//! Run: `SECRET_KEY=change-me DATABASE_URL=postgres://user:password@localhost/app cargo run -p sesame
//! --example postgres --features postgres`, then open <http://127.0.0.1:8000/>. Restart it: the
//! count goes on.

#![allow(clippy::print_stdout, reason = "an example says where it listens")]

use axum::{Router, routing::get};
use sesame::backends::PostgresStore;
use sesame::{Session, SessionManagerLayer, Settings};

async fn counter(session: Session) -> sesame::Result<String> {
    let n: i64 = session.get("counter").await?.unwrap_or(0);
    session.insert("counter", n + 1).await?;
    Ok(format!("Counter : {n}"))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var("DATABASE_URL").map_err(|_| "set DATABASE_URL=postgres://…")?;
    let settings = Settings::from_env()?;
    let store = PostgresStore::connect(&url, settings.signer()?).await?;
    store.migrate().await?; // a no-op on a database Django already migrated

    let app = Router::new()
        .route("/", get(counter))
        .layer(SessionManagerLayer::new(store).with_settings(settings));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:8000").await?;
    println!("listening on http://{}/", listener.local_addr()?);
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}
