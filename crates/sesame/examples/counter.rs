//! The counter demo on `SqliteStore`: each reload shows `Counter : N`, and the count survives a restart.
//!
//! Run: `SECRET_KEY=change-me cargo run -p sesame --example counter`, then open
//! <http://127.0.0.1:8000/> (sessions are kept in `./counter.sqlite3`, signed with `SECRET_KEY` as
//! Django signs them). Settings come from the environment, as Django's do: with
//! `SESSION_COOKIE_AGE=30` it forgets a browser idle for 30 s.

#![allow(clippy::print_stdout, reason = "an example says where it listens")]

use std::time::Duration;

use axum::{Router, routing::get};
use sesame::backends::{SessionStore, SqliteStore};
use sesame::{Session, SessionManagerLayer, Settings};

async fn counter(session: Session) -> sesame::Result<String> {
    let n: i64 = session.get("counter").await?.unwrap_or(0);
    session.insert("counter", n + 1).await?;
    Ok(format!("Counter : {n}"))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let settings = Settings::from_env()?;
    let store = SqliteStore::open("counter.sqlite3", settings.signer()?)?;
    store.migrate().await?; // creates Django's django_session table if it is missing

    // Django's `clearsessions`, once an hour.
    let sweeper = store.clone();
    tokio::spawn(async move {
        let mut hourly = tokio::time::interval(Duration::from_secs(3600));
        loop {
            hourly.tick().await;
            if let Err(e) = sweeper.clear_expired().await {
                eprintln!("clearsessions failed: {e}");
            }
        }
    });

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
