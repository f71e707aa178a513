//! `MemoryStore`: sessions in this process's memory.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use futures_util::stream::{self, Stream, StreamExt as _};
use sesame_codec::SessionMap;
use time::OffsetDateTime;

use super::base::{Record, Saved, SessionStore, Version, create_unique};
use super::cached_db::SessionCache;
use super::list::ListSessions;
use crate::{Error, Result, SessionKey};

/// Sessions kept in this process's memory: for tests, examples and single
/// process apps that can lose sessions on restart.
///
/// Cloning is cheap and clones share the same sessions.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use sesame::backends::{MemoryStore, Record, SessionStore};
/// use time::{Duration, OffsetDateTime};
///
/// let store = MemoryStore::new();
/// let record = Record::new(Default::default(), OffsetDateTime::now_utc() + Duration::hours(1));
/// let saved = store.create(&record).await.unwrap();
/// assert!(store.exists(&saved.key).await.unwrap());
/// store.delete(&saved.key).await.unwrap();
/// assert!(!store.exists(&saved.key).await.unwrap());
/// # }
/// ```
///
/// # Django
///
/// Django has no in-memory engine; its closest is the `cache` engine on
/// `LocMemCache`.
#[derive(Clone, Default)]
pub struct MemoryStore {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    map: Mutex<HashMap<SessionKey, Stored>>,
    next_version: AtomicU64,
}

/// A record as kept: its data is shared with the sessions that loaded it
/// (copy-on-write), so a load copies nothing.
struct Stored {
    data: Arc<SessionMap>,
    expires_at: OffsetDateTime,
    version: u64,
}

impl MemoryStore {
    /// An empty store.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// How many records the store holds, expired ones included.
    #[must_use]
    pub fn len(&self) -> usize {
        self.map().len()
    }

    /// Whether the store holds no records at all.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.map().is_empty()
    }

    fn map(&self) -> MutexGuard<'_, HashMap<SessionKey, Stored>> {
        // A panic while holding the lock cannot leave the map half-written
        // (every write is a single insert or remove), so a poisoned lock is
        // still safe to use.
        self.inner
            .map
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn next_version(&self) -> u64 {
        self.inner.next_version.fetch_add(1, Ordering::Relaxed) + 1
    }

    fn insert_if_absent(&self, key: SessionKey, record: &Record) -> Result<Saved> {
        let version = self.next_version();
        let now = OffsetDateTime::now_utc();
        let mut map = self.map();
        let stored = Stored {
            data: Arc::clone(&record.data),
            expires_at: record.expires_at,
            version,
        };
        match map.entry(key.clone()) {
            Entry::Occupied(mut e) if e.get().expires_at <= now => {
                // An expired record is as good as absent (Django's `exists`
                // checks `expire_date__gt=now`).
                e.insert(stored);
            }
            Entry::Occupied(_) => return Err(Error::KeyCollision),
            Entry::Vacant(e) => {
                e.insert(stored);
            }
        }
        Ok(Saved {
            key,
            version: Version::from_u64(version),
        })
    }
}

impl fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryStore")
            .field("len", &self.len())
            .finish()
    }
}

impl SessionStore for MemoryStore {
    async fn load(&self, key: &SessionKey) -> Result<Option<Record>> {
        let now = OffsetDateTime::now_utc();
        let map = self.map();
        Ok(map.get(key).filter(|s| s.expires_at > now).map(|s| Record {
            data: Arc::clone(&s.data),
            expires_at: s.expires_at,
            version: Some(Version::from_u64(s.version)),
        }))
    }

    async fn create(&self, record: &Record) -> Result<Saved> {
        create_unique(|key| std::future::ready(self.insert_if_absent(key, record))).await
    }

    async fn save(&self, key: &SessionKey, record: &Record) -> Result<Saved> {
        // Shares the session's data (no copy).
        let data = Arc::clone(&record.data);
        let version = self.next_version();
        let now = OffsetDateTime::now_utc();
        let mut map = self.map();
        let stored = map
            .get_mut(key)
            .filter(|s| s.expires_at > now)
            .ok_or(Error::Missing)?;
        if let Some(expected) = &record.version
            && *expected != Version::from_u64(stored.version)
        {
            return Err(Error::Conflict);
        }
        let old = std::mem::replace(
            stored,
            Stored {
                data,
                expires_at: record.expires_at,
                version,
            },
        );
        // The old data (if no session still holds it) is freed after the
        // lock is released.
        drop(map);
        drop(old);
        Ok(Saved {
            key: key.clone(),
            version: Version::from_u64(version),
        })
    }

    async fn delete(&self, key: &SessionKey) -> Result<()> {
        self.map().remove(key);
        Ok(())
    }

    async fn exists(&self, key: &SessionKey) -> Result<bool> {
        let now = OffsetDateTime::now_utc();
        Ok(self.map().get(key).is_some_and(|s| s.expires_at > now))
    }

    async fn touch(&self, key: &SessionKey, until: OffsetDateTime) -> Result<()> {
        let now = OffsetDateTime::now_utc();
        let mut map = self.map();
        let stored = map
            .get_mut(key)
            .filter(|s| s.expires_at > now)
            .ok_or(Error::Missing)?;
        stored.expires_at = until;
        Ok(())
    }

    async fn clear_expired(&self) -> Result<u64> {
        let now = OffsetDateTime::now_utc();
        let mut map = self.map();
        let before = map.len();
        map.retain(|_, s| s.expires_at > now);
        Ok((before - map.len()) as u64)
    }
}

/// Lists the live records at the moment the stream is first read.
impl ListSessions for MemoryStore {
    fn session_keys(&self) -> impl Stream<Item = Result<SessionKey>> + Send + '_ {
        stream::once(async move {
            let now = OffsetDateTime::now_utc();
            let keys: Vec<SessionKey> = self
                .map()
                .iter()
                .filter(|(_, s)| s.expires_at > now)
                .map(|(key, _)| key.clone())
                .collect();
            stream::iter(keys.into_iter().map(Ok))
        })
        .flatten()
    }
}

/// A `MemoryStore` as the cache of a [`CachedDbStore`](crate::backends::CachedDbStore)
/// (Django's `cached_db` on `LocMemCache`).
impl SessionCache for MemoryStore {
    async fn get(&self, key: &SessionKey) -> Result<Option<Record>> {
        self.load(key).await
    }

    async fn set(
        &self,
        key: &SessionKey,
        data: &SessionMap,
        expires_at: OffsetDateTime,
    ) -> Result<()> {
        let version = self.next_version();
        self.map().insert(
            key.clone(),
            Stored {
                data: Arc::new(data.clone()),
                expires_at,
                version,
            },
        );
        Ok(())
    }

    async fn remove(&self, key: &SessionKey) -> Result<()> {
        SessionStore::delete(self, key).await
    }

    async fn expire_at(&self, key: &SessionKey, until: OffsetDateTime) -> Result<()> {
        if let Some(stored) = self.map().get_mut(key) {
            stored.expires_at = until;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use time::Duration;

    use super::*;

    fn in_an_hour() -> OffsetDateTime {
        OffsetDateTime::now_utc() + Duration::hours(1)
    }

    #[tokio::test]
    async fn a_loaded_record_shares_the_stored_data_until_it_is_changed() {
        let store = MemoryStore::new();
        let mut data = SessionMap::new();
        data.insert("n".into(), json!(1));
        let saved = store
            .create(&Record::new(data, in_an_hour()))
            .await
            .unwrap();

        let first = store.load(&saved.key).await.unwrap().unwrap();
        let second = store.load(&saved.key).await.unwrap().unwrap();
        assert!(
            Arc::ptr_eq(&first.data, &second.data),
            "a load copies nothing"
        );

        let mut changed = first.clone();
        changed.data_mut().insert("n".into(), json!(2));
        let again = store.load(&saved.key).await.unwrap().unwrap();
        assert_eq!(
            again.data["n"],
            json!(1),
            "a change in place never reaches the store"
        );

        store.save(&saved.key, &changed).await.unwrap();
        assert_eq!(
            second.data["n"],
            json!(1),
            "an earlier reader keeps what it read"
        );
        let after = store.load(&saved.key).await.unwrap().unwrap();
        assert_eq!(after.data["n"], json!(2));
    }

    /// An insert under a live key (a random source that repeated a key) is a
    /// collision that leaves the first session alone; `create_unique` then
    /// draws another key (tower-sessions' `test_create_id_collision`).
    #[test]
    fn an_insert_under_a_live_key_collides_and_overwrites_nothing() {
        let store = MemoryStore::new();
        let record = |n: i64| {
            let mut data = SessionMap::new();
            data.insert("n".into(), json!(n));
            Record::new(data, in_an_hour())
        };
        let key = SessionKey::generate();
        store.insert_if_absent(key.clone(), &record(1)).unwrap();
        assert!(matches!(
            store.insert_if_absent(key.clone(), &record(2)),
            Err(Error::KeyCollision)
        ));
        assert_eq!(store.map()[&key].data["n"], json!(1));
        // An expired record is as good as absent.
        let mut expired = record(3);
        expired.expires_at = OffsetDateTime::now_utc() - Duration::hours(1);
        let old = SessionKey::generate();
        store.insert_if_absent(old.clone(), &expired).unwrap();
        store.insert_if_absent(old.clone(), &record(4)).unwrap();
        assert_eq!(store.map()[&old].data["n"], json!(4));
    }
}
