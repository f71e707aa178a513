//! A serde struct kept under one session key, read and written by axum handlers, on `MemoryStore`.
//!
//! Run: `cargo run -p sesame --example typed_session` (it sends its own requests, in-process).

#![allow(clippy::print_stdout, reason = "an example shows what it does")]

use axum::body::{Body, to_bytes};
use axum::extract::Path;
use axum::routing::{get, post};
use axum::{Json, Router};
use http::Request;
use http::header::{COOKIE, SET_COOKIE};
use serde::{Deserialize, Serialize};
use sesame::backends::MemoryStore;
use sesame::{Session, SessionManagerLayer};
use tower::ServiceExt;

/// What the shop keeps about a visitor: one value, under one session key.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Cart {
    items: Vec<String>,
    total_cents: u64,
}

impl Cart {
    const KEY: &str = "cart";

    async fn load(session: &Session) -> sesame::Result<Self> {
        Ok(session.get(Self::KEY).await?.unwrap_or_default())
    }

    async fn save(&self, session: &Session) -> sesame::Result<()> {
        session.insert(Self::KEY, self).await
    }
}

async fn add(
    session: Session,
    Path((item, cents)): Path<(String, u64)>,
) -> sesame::Result<Json<Cart>> {
    let mut cart = Cart::load(&session).await?;
    cart.items.push(item);
    cart.total_cents += cents;
    cart.save(&session).await?;
    Ok(Json(cart))
}

async fn show(session: Session) -> sesame::Result<Json<Cart>> {
    Cart::load(&session).await.map(Json)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let app = Router::new()
        .route("/cart", get(show))
        .route("/cart/{item}/{cents}", post(add))
        .layer(SessionManagerLayer::new(MemoryStore::new()));
    let mut cookie = String::new();
    for (method, path) in [
        ("POST", "/cart/apple/120"),
        ("POST", "/cart/pear/95"),
        ("GET", "/cart"),
    ] {
        let request = Request::builder().method(method).uri(path);
        let request = request.header(COOKIE, &cookie).body(Body::empty())?;
        let response = app.clone().oneshot(request).await?;
        if let Some(set) = response.headers().get(SET_COOKIE) {
            cookie = set.to_str()?.split(';').next().unwrap_or_default().into();
        }
        let body = to_bytes(response.into_body(), 4096).await?;
        let cart: Cart = serde_json::from_slice(&body)?;
        println!("{method} {path} -> {cart:?}");
    }
    Ok(())
}
