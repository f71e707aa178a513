//! `CachedDbStore`: Django's `cached_db` engine — a cache in front of a database.

use std::fmt;
use std::future::Future;

use bytes::{BufMut, Bytes, BytesMut};
use sesame_codec::SessionMap;
use time::OffsetDateTime;

use super::base::{Record, Saved, SessionStore, Version};
use super::list::{ListSessions, Listed};
use crate::{Error, Result, SessionKey};

/// A cache a [`CachedDbStore`] keeps copies of sessions in: Django's cache
/// API (`get`, `set`, `delete`, `touch`) for whole sessions, under names
/// that do not clash with [`SessionStore`]'s (`remove`, `expire_at`).
///
/// The cache is never the source of truth: a miss, an error or a corrupt
/// entry sends [`CachedDbStore`] to the database.
///
/// Implemented by [`MemoryStore`](crate::backends::MemoryStore) and, with
/// their features, `RedisStore` and `MemcachedStore`. Build those with
/// [`CacheKeys::cached_db`](crate::backends::CacheKeys::cached_db) so their
/// keys are the ones Django's `cached_db` uses.
pub trait SessionCache: Send + Sync + 'static {
    /// The cached copy of the session under `key`, with its expiry, if any.
    ///
    /// The record's [`version`](Record::version) is not used.
    ///
    /// # Errors
    ///
    /// [`Error::Corrupt`] for an entry that cannot be decoded, or a backend error.
    fn get(&self, key: &SessionKey) -> impl Future<Output = Result<Option<Record>>> + Send;

    /// Stores `data` under `key` until `expires_at`, whether or not an
    /// entry exists (Django's `cache.set`).
    ///
    /// # Errors
    ///
    /// A backend error, or [`Error::TooLarge`] when the cache refuses the value.
    fn set(
        &self,
        key: &SessionKey,
        data: &SessionMap,
        expires_at: OffsetDateTime,
    ) -> impl Future<Output = Result<()>> + Send;

    /// Removes the entry under `key`; removing a missing entry succeeds.
    ///
    /// # Errors
    ///
    /// A backend error.
    #[doc(alias = "delete")]
    fn remove(&self, key: &SessionKey) -> impl Future<Output = Result<()>> + Send;

    /// Moves the expiry of the entry under `key`, if there is one.
    ///
    /// # Errors
    ///
    /// A backend error.
    #[doc(alias = "touch")]
    fn expire_at(
        &self,
        key: &SessionKey,
        until: OffsetDateTime,
    ) -> impl Future<Output = Result<()>> + Send;
}

/// Where a [`Version`] of a [`CachedDbStore`] record came from.
const FROM_DB: u8 = b'D';
const FROM_CACHE: u8 = b'C';

/// Sessions in a database with a cache in front: Django's `cached_db` engine.
///
/// - **Reads** come from the cache; on a miss (or a cache error, or a
///   corrupt entry) from the database, and the cache is filled back in with
///   the record's remaining lifetime — except after a cache error, so that a
///   cache that hangs costs a read one cache timeout, not three. A cache hit is trusted without
///   checking the database, as Django does: the cache entry expires with the
///   session.
/// - **Writes** go to the database first, then to the cache. A cache that
///   fails to take the write is logged at `error` level on target
///   `sesame::store` and is not fatal (Django 5.1's behaviour); the entry it
///   failed to replace is dropped, so reads go to the database.
/// - **Deletes** reach both, the database first. A copy written to the
///   cache by a request that raced the delete (or a newer write) is noticed
///   by that request (it reads the row again after copying) and dropped, so
///   a logout is not undone, nor a newer write shadowed, by a slow request's
///   copy, as both can be in Django — unless the cache fails that very drop,
///   right after taking the copy (logged at `error` level: the copy then
///   lives until it expires).
///   Unlike Django, a delete the cache does not
///   confirm is an error (the middleware's outage answer): a cached copy of a
///   logged-out session must not stay loadable.
/// - **No lost writes.** A save is a compare-and-swap on the database row.
///   A session read from the cache carries a snapshot of what it read; its
///   save first reads the row, and if the row no longer holds that snapshot
///   (a concurrent write, or a stale cache), drops the cache entry and
///   reports [`Error::Conflict`], so [`Session`](crate::Session) re-reads
///   (now from the database) and re-applies its own changes. A session read
///   from the database saves with one conditional `UPDATE`. A row that no
///   longer decodes (a rotated `SECRET_KEY`) under a cached copy is
///   overwritten, as [`Session`](crate::Session) overwrites any corrupt
///   record, with a warning on `sesame::security`.
///
/// `D` is any durable store (`SqliteStore`, `PostgresStore`, `MySqlStore`,
/// [`FileStore`](crate::backends::FileStore)); `C` is any [`SessionCache`].
/// A Django app with `SESSION_ENGINE = "…backends.cached_db"` on the same
/// database, cache and `SECRET_KEY` shares the sessions both ways.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> sesame::Result<()> {
/// use sesame::backends::{CachedDbStore, MemoryStore, Record, SessionStore};
/// use time::{Duration, OffsetDateTime};
///
/// let (cache, db) = (MemoryStore::new(), MemoryStore::new());
/// let store = CachedDbStore::new(cache.clone(), db.clone());
/// let record = Record::new(Default::default(), OffsetDateTime::now_utc() + Duration::hours(1));
/// let saved = store.create(&record).await?;
/// assert!(db.exists(&saved.key).await?); // the database has it
/// assert!(cache.exists(&saved.key).await?); // and so does the cache
/// store.delete(&saved.key).await?;
/// assert!(!cache.exists(&saved.key).await? && !db.exists(&saved.key).await?);
/// # Ok(()) }
/// ```
///
/// # Django
///
/// `SESSION_ENGINE = "django.contrib.sessions.backends.cached_db"`
/// (`SESSION_CACHE_ALIAS` names the cache).
#[doc(alias = "cached_db")]
#[doc(alias = "django.contrib.sessions.backends.cached_db")]
#[derive(Clone)]
pub struct CachedDbStore<C, D> {
    cache: C,
    db: D,
}

impl<C: SessionCache, D: SessionStore> CachedDbStore<C, D> {
    /// A store that caches `db`'s sessions in `cache`.
    #[must_use]
    pub fn new(cache: C, db: D) -> Self {
        Self { cache, db }
    }

    /// The cache.
    #[must_use]
    pub fn cache(&self) -> &C {
        &self.cache
    }

    /// The database.
    #[must_use]
    pub fn db(&self) -> &D {
        &self.db
    }

    /// Copies a record into the cache; a failure is logged, not returned.
    ///
    /// A delete (a logout) or another write may have run between the
    /// database read or write this copy comes from and the copy itself; the
    /// copy would then bring back the deleted session, or shadow the newer
    /// one, for as long as it lives in the cache. So the row is read again
    /// *after* the copy is in place, and the copy dropped unless the row
    /// still holds the same data: deletes and writes reach the row before
    /// the cache, so one of the two requests always sees the other's work.
    async fn fill(&self, key: &SessionKey, data: &SessionMap, expires_at: OffsetDateTime) {
        if let Err(e) = self.cache.set(key, data, expires_at).await {
            tracing::error!(
                target: "sesame::store",
                error = %e,
                source = ?std::error::Error::source(&e),
                "could not write the session to the cache of cached_db"
            );
            // The entry it failed to replace is older than the database.
            self.forget(key).await;
            return;
        }
        // The copy must still be what the database holds: a concurrent
        // write (or delete) may have landed between our read or write of
        // the row and this copy, which would then shadow it until it expires.
        let current = match self.db.load(key).await {
            Ok(Some(record)) => *record.data == *data,
            Ok(None) | Err(_) => false,
        };
        if !current {
            self.forget(key).await;
        }
    }

    /// Saves `db_record` to the database, then copies `record` to the cache.
    async fn write_through(
        &self,
        key: &SessionKey,
        db_record: &Record,
        record: &Record,
    ) -> Result<Saved> {
        let saved = match self.db.save(key, db_record).await {
            Err(Error::Missing) => {
                self.forget(key).await;
                return Err(Error::Missing);
            }
            other => other?,
        };
        self.fill(&saved.key, &record.data, record.expires_at).await;
        Ok(Saved {
            version: db_version(&saved.version),
            key: saved.key,
        })
    }

    /// Drops a cache entry that may be stale; a failure is logged, not returned.
    async fn forget(&self, key: &SessionKey) {
        if let Err(e) = self.cache.remove(key).await {
            tracing::error!(
                target: "sesame::store",
                error = %e,
                source = ?std::error::Error::source(&e),
                "could not drop a stale session from the cache of cached_db"
            );
        }
    }
}

impl<C: fmt::Debug, D: fmt::Debug> fmt::Debug for CachedDbStore<C, D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CachedDbStore")
            .field("cache", &self.cache)
            .field("db", &self.db)
            .finish()
    }
}

/// A version naming where the record was read: the database's own version,
/// or a snapshot of the data read from the cache.
fn tagged(tag: u8, body: &[u8]) -> Version {
    let mut bytes = BytesMut::with_capacity(1 + body.len());
    bytes.put_u8(tag);
    bytes.put_slice(body);
    Version::new(bytes.freeze())
}

fn db_version(version: &Version) -> Version {
    tagged(FROM_DB, version.as_bytes())
}

fn cache_snapshot(data: &SessionMap) -> Result<Version> {
    let json = serde_json::to_vec(data).map_err(Error::Json)?;
    Ok(tagged(FROM_CACHE, &json))
}

/// Lists the database's sessions: the database holds every one, the cache
/// only copies. Deleting through the `CachedDbStore` reaches both.
impl<C: SessionCache, D: ListSessions> ListSessions for CachedDbStore<C, D> {
    fn session_keys(&self) -> impl futures_util::Stream<Item = Result<SessionKey>> + Send + '_ {
        self.db.session_keys()
    }

    fn sessions(&self) -> impl futures_util::Stream<Item = Result<Listed>> + Send + '_ {
        self.db.sessions()
    }
}

impl<C: SessionCache, D: SessionStore> SessionStore for CachedDbStore<C, D> {
    async fn load(&self, key: &SessionKey) -> Result<Option<Record>> {
        // Whether to copy the row into the cache: not when the cache just
        // failed. The copy only saves later reads a database round trip, and
        // a cache that hangs would make this load wait out its timeout twice
        // more (the fill, then dropping the fill); the entry that is there,
        // if any, is still checked by the next save.
        let fill = match self.cache.get(key).await {
            Ok(Some(mut record)) if !record.is_expired(OffsetDateTime::now_utc()) => {
                record.version = Some(cache_snapshot(&record.data)?);
                return Ok(Some(record));
            }
            Ok(_) => true,
            Err(Error::Corrupt(e)) => {
                tracing::warn!(
                    target: "sesame::security",
                    error = %e,
                    "corrupt session in the cache of cached_db; reading the database"
                );
                true
            }
            Err(e) => {
                tracing::error!(
                    target: "sesame::store",
                    error = %e,
                    source = ?std::error::Error::source(&e),
                    "the cache of cached_db failed; reading the database"
                );
                false
            }
        };
        let Some(mut record) = self.db.load(key).await? else {
            return Ok(None);
        };
        if fill {
            self.fill(key, &record.data, record.expires_at).await;
        }
        record.version = record.version.as_ref().map(db_version);
        Ok(Some(record))
    }

    async fn create(&self, record: &Record) -> Result<Saved> {
        let saved = self.db.create(record).await?;
        self.fill(&saved.key, &record.data, record.expires_at).await;
        Ok(Saved {
            version: db_version(&saved.version),
            key: saved.key,
        })
    }

    async fn save(&self, key: &SessionKey, record: &Record) -> Result<Saved> {
        let db_record = match record.version.as_ref().map(Version::as_bytes) {
            None => record.clone(),
            Some([FROM_DB, version @ ..]) => Record {
                version: Some(Version::new(Bytes::copy_from_slice(version))),
                ..record.clone()
            },
            Some([FROM_CACHE, snapshot @ ..]) => {
                let read: SessionMap = serde_json::from_slice(snapshot).map_err(Error::Json)?;
                let current = match self.db.load(key).await {
                    Ok(current) => current,
                    Err(Error::Corrupt(e)) => {
                        // The row no longer decodes (a rotated SECRET_KEY, a
                        // damaged row) while the cache still held a copy: as
                        // for any corrupt record, the save overwrites it.
                        tracing::warn!(
                            target: "sesame::security",
                            error = %e,
                            "corrupt session in the database of cached_db; overwriting it"
                        );
                        self.forget(key).await;
                        let unconditional = Record {
                            version: None,
                            ..record.clone()
                        };
                        return self.write_through(key, &unconditional, record).await;
                    }
                    Err(e) => return Err(e),
                };
                let Some(current) = current else {
                    self.forget(key).await;
                    return Err(Error::Missing);
                };
                if *current.data != read {
                    // Changed since the cache copy was made, or the cache
                    // was stale: either way the cache must not answer again.
                    self.forget(key).await;
                    return Err(Error::Conflict);
                }
                Record {
                    version: current.version,
                    ..record.clone()
                }
            }
            Some(_) => return Err(Error::Conflict),
        };
        self.write_through(key, &db_record, record).await
    }

    async fn delete(&self, key: &SessionKey) -> Result<()> {
        self.db.delete(key).await?;
        self.cache.remove(key).await
    }

    async fn exists(&self, key: &SessionKey) -> Result<bool> {
        match self.cache.get(key).await {
            Ok(Some(record)) if !record.is_expired(OffsetDateTime::now_utc()) => return Ok(true),
            Ok(_) | Err(Error::Corrupt(_)) => {}
            Err(e) => tracing::error!(
                target: "sesame::store",
                error = %e,
                source = ?std::error::Error::source(&e),
                "the cache of cached_db failed; asking the database"
            ),
        }
        self.db.exists(key).await
    }

    async fn touch(&self, key: &SessionKey, until: OffsetDateTime) -> Result<()> {
        self.db.touch(key, until).await?;
        if let Err(e) = self.cache.expire_at(key, until).await {
            tracing::error!(
                target: "sesame::store",
                error = %e,
                "could not move the expiry of the cached session; dropping it"
            );
            self.forget(key).await;
        }
        Ok(())
    }

    async fn clear_expired(&self) -> Result<u64> {
        self.db.clear_expired().await
    }
}
