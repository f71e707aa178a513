//! A store of your own (a `HashMap` behind a `Mutex`) implementing `SessionStore`, behind the layer.
//! Run: `cargo run -p sesame --example custom_store`, then open <http://127.0.0.1:8000/> (a counter).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use axum::{Router, routing::get};
use sesame::backends::{Record, Saved, SessionStore, Version, create_unique};
use sesame::{Error, Result, Session, SessionKey, SessionManagerLayer};
use time::OffsetDateTime;

#[derive(Debug, Clone, Default)]
struct MapStore(Arc<Mutex<HashMap<SessionKey, Record>>>);

impl MapStore {
    fn map(&self) -> MutexGuard<'_, HashMap<SessionKey, Record>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn live(record: &Record) -> bool {
    !record.is_expired(OffsetDateTime::now_utc())
}

/// Stores `record` under `key`. As in the SQL stores, its version is its data.
fn put(map: &mut HashMap<SessionKey, Record>, key: SessionKey, record: &Record) -> Saved {
    let version = Version::new(sesame::codec::encode_session_data(&record.data));
    let mut stored = record.clone();
    stored.version = Some(version.clone());
    map.insert(key.clone(), stored);
    Saved { key, version }
}

impl SessionStore for MapStore {
    async fn load(&self, key: &SessionKey) -> Result<Option<Record>> {
        Ok(self.map().get(key).filter(|r| live(r)).cloned())
    }

    async fn create(&self, record: &Record) -> Result<Saved> {
        create_unique(|key| {
            let mut map = self.map();
            std::future::ready(if map.get(&key).is_some_and(live) {
                Err(Error::KeyCollision) // a create never overwrites
            } else {
                Ok(put(&mut map, key, record))
            })
        })
        .await
    }

    async fn save(&self, key: &SessionKey, record: &Record) -> Result<Saved> {
        let mut map = self.map();
        let stored = map.get(key).filter(|r| live(r)).ok_or(Error::Missing)?; // never re-create
        if record.version.is_some() && record.version != stored.version {
            return Err(Error::Conflict); // changed since this session loaded it
        }
        Ok(put(&mut map, key.clone(), record))
    }

    async fn delete(&self, key: &SessionKey) -> Result<()> {
        self.map().remove(key);
        Ok(())
    }
}

async fn counter(session: Session) -> Result<String> {
    let n: i64 = session.get("counter").await?.unwrap_or(0);
    session.insert("counter", n + 1).await?;
    Ok(format!("Counter : {n}"))
}

#[tokio::main]
async fn main() -> std::result::Result<(), Box<dyn std::error::Error>> {
    let layer = SessionManagerLayer::new(MapStore::default());
    let app = Router::new().route("/", get(counter)).layer(layer);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:8000").await?;
    Ok(axum::serve(listener, app).await?)
}
