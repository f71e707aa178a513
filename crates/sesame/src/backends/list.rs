//! Listing a store's sessions: what finding (and revoking) a user's
//! sessions needs, since no store keeps an index by user.

// The paging helpers serve the SQL and Redis stores, each behind its feature.
#![cfg_attr(
    not(any(
        feature = "sqlite",
        feature = "postgres",
        feature = "mysql",
        feature = "redis"
    )),
    allow(dead_code)
)]

use std::future::Future;

use futures_util::stream::{self, Stream, StreamExt as _, TryStreamExt as _};

use super::base::{Record, SessionStore};
use crate::{Error, Result, SessionKey};

/// How many keys a store fetches per round trip while listing (an SQL
/// `LIMIT`, a Redis `SCAN … COUNT`).
pub(crate) const LIST_PAGE: usize = 500;

/// A store that can list the keys of the sessions it holds.
///
/// Django keeps no index of sessions by user, and neither does a store
/// Django shares: finding a user's sessions means reading each one, which
/// [`sessions_of_user`](crate::backends::sessions_of_user) and
/// [`revoke_user_sessions`](crate::backends::revoke_user_sessions) do on top
/// of this listing.
///
/// Implemented by the stores that can enumerate their keys: the SQL stores
/// (by primary key, in pages of 500, live rows only), `RedisStore`
/// (`SCAN … MATCH` on every primary of a Cluster), [`FileStore`](crate::backends::FileStore)
/// (the directory's session files), [`MemoryStore`](crate::backends::MemoryStore),
/// and [`CachedDbStore`](crate::backends::CachedDbStore) (its database).
/// Not by `MemcachedStore` (memcached cannot list its keys) nor
/// [`SignedCookieStore`](crate::backends::SignedCookieStore) (its sessions
/// are stored nowhere).
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> sesame::Result<()> {
/// use futures_util::TryStreamExt as _;
/// use sesame::backends::{ListSessions, MemoryStore, Record, SessionStore};
/// use time::{Duration, OffsetDateTime};
///
/// let store = MemoryStore::new();
/// let saved = store.create(&Record::new(Default::default(), OffsetDateTime::now_utc() + Duration::hours(1))).await?;
/// let keys: Vec<_> = store.session_keys().try_collect().await?;
/// assert_eq!(keys, [saved.key]);
/// # Ok(()) }
/// ```
///
/// # Django
///
/// No counterpart: Django's `SessionStore` has no way to list sessions
/// (`clearsessions` deletes by date in SQL, or by file in the `file` engine).
pub trait ListSessions: SessionStore {
    /// The keys of the sessions in the store, in no particular order,
    /// fetched page by page as the stream is read.
    ///
    /// Every session stored for the whole time the stream runs is listed at
    /// least once, except on a Redis Cluster whose slots move between
    /// primaries meanwhile (a key can then be missed); Redis's `SCAN` may
    /// list a key twice (while its table grows), the other stores list each
    /// key once.
    ///
    /// A store that can tell expired records lists only live ones; one
    /// that cannot (a Redis key expiring between two pages) may list a key
    /// that no longer loads. A session created or deleted while the stream
    /// runs may or may not be listed. Entries whose names are not session
    /// keys (another application's rows, temporary files) are skipped.
    ///
    /// # Errors
    ///
    /// The stream yields a backend error when the store fails, and ends.
    fn session_keys(&self) -> impl Stream<Item = Result<SessionKey>> + Send + '_;

    /// The sessions in the store, each with what [`load`](SessionStore::load)
    /// returns for it: `Ok(None)` for one that expired or was deleted after
    /// it was listed, `Err(Corrupt)` for one that cannot be decoded.
    ///
    /// The default loads each listed key, sixteen at a time; the SQL stores
    /// read the rows with their keys, a page per query, and a standalone
    /// `RedisStore` each `SCAN` page's values in one pipeline.
    ///
    /// # Errors
    ///
    /// The stream yields a backend error of the listing, or of a load, and ends.
    fn sessions(&self) -> impl Stream<Item = Result<Listed>> + Send + '_ {
        load_each(self, self.session_keys())
    }
}

/// Each of `keys` with what `store.load` returns for it, sixteen loads at
/// a time: [`ListSessions::sessions`]' default.
pub(crate) fn load_each<'a, S: SessionStore + ?Sized>(
    store: &'a S,
    keys: impl Stream<Item = Result<SessionKey>> + Send + 'a,
) -> impl Stream<Item = Result<Listed>> + Send + 'a {
    keys.map_ok(move |key| async move {
        match store.load(&key).await {
            Ok(record) => Ok((key, Ok(record))),
            Err(e @ Error::Corrupt(_)) => Ok((key, Err(e))),
            Err(e) => Err(e),
        }
    })
    .try_buffer_unordered(READ_AHEAD)
}

/// A listed session: its key, and its record (`None`: gone since it was
/// listed) or why it cannot be read ([`Error::Corrupt`]).
pub type Listed = (SessionKey, Result<Option<Record>>);

/// How many sessions [`ListSessions::sessions`] loads at once by default.
const READ_AHEAD: usize = 16;

/// The items of pages fetched one after the other: `next_page(cursor)`
/// returns one page and the cursor of the next, `None` after the last.
pub(crate) fn paged<'a, T, C, F, Fut>(
    first: C,
    mut next_page: F,
) -> impl Stream<Item = Result<T>> + Send + 'a
where
    T: Send + 'a,
    C: Send + 'a,
    F: FnMut(C) -> Fut + Send + 'a,
    Fut: Future<Output = Result<(Vec<T>, Option<C>)>> + Send + 'a,
{
    stream::try_unfold(Some(first), move |cursor| {
        let page = cursor.map(&mut next_page);
        async move {
            match page {
                Some(page) => page.await.map(Some),
                None => Ok(None),
            }
        }
    })
    .map_ok(|items: Vec<T>| stream::iter(items.into_iter().map(Ok)))
    .try_flatten()
    .boxed()
}

/// The session key `name` holds, if it is one; other names are skipped.
pub(crate) fn parse_listed(name: &[u8]) -> Option<SessionKey> {
    SessionKey::from_bytes(name).ok()
}

#[cfg(test)]
mod tests {
    use futures_util::TryStreamExt as _;

    use super::*;

    #[tokio::test]
    async fn pages_are_read_in_order_until_there_is_no_cursor() {
        let keys: Vec<SessionKey> = (0..5).map(|_| SessionKey::generate()).collect();
        let pages = keys.clone();
        let listed: Vec<SessionKey> = paged(0usize, move |at| {
            let page: Vec<SessionKey> = pages.iter().skip(at).take(2).cloned().collect();
            let next = (at + 2 < pages.len()).then_some(at + 2);
            async move { Ok((page, next)) }
        })
        .try_collect()
        .await
        .unwrap();
        assert_eq!(listed, keys);
    }

    #[tokio::test]
    async fn a_failing_page_ends_the_stream_with_its_error() {
        let mut items = paged(0u8, |at| async move {
            if at == 0 {
                Ok((vec![SessionKey::generate()], Some(1)))
            } else {
                Err(crate::Error::Missing)
            }
        });
        assert!(items.next().await.unwrap().is_ok());
        assert!(matches!(
            items.next().await,
            Some(Err(crate::Error::Missing))
        ));
        assert!(items.next().await.is_none(), "nothing after the error");
    }

    #[test]
    fn only_session_keys_are_listed() {
        assert!(parse_listed(b"abcdefghijklmnopqrstuvwxyz012345").is_some());
        assert!(parse_listed(b"tmp-upload").is_none());
        assert!(parse_listed(b"").is_none());
    }
}
