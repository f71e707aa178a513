//! A user's sessions: find them and revoke them ("log out everywhere").

use futures_util::stream::TryStreamExt as _;
use serde_json::Value;
use sesame_codec::{AUTH_USER_ID_KEY, SessionMap};
use time::OffsetDateTime;

use super::list::ListSessions;
use crate::{Error, Result, SessionKey};

/// The sessions of one user a store holds, found by reading every session.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct UserSessions {
    /// The user's live sessions: each key and when it expires.
    pub sessions: Vec<(SessionKey, OffsetDateTime)>,
    /// How many sessions were read (a key Redis's `SCAN` lists twice
    /// counts twice).
    pub checked: u64,
    /// How many listed sessions could not be decoded ([`Error::Corrupt`]:
    /// usually data signed with a key other than the store's), so could
    /// not be checked. Any of them may belong to the user.
    pub unreadable: u64,
}

/// What [`revoke_user_sessions`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Revoked {
    /// The keys of the sessions deleted.
    pub revoked: Vec<SessionKey>,
    /// Whether the session to keep was one of the user's (and so was kept).
    pub kept: bool,
    /// How many sessions were read.
    pub checked: u64,
    /// As [`UserSessions::unreadable`]: sessions that could not be checked,
    /// and were left alone.
    pub unreadable: u64,
}

/// Whether `data` is logged in as `user_id`: its `_auth_user_id` is that
/// text (as Django stores it) or a number written as that text.
fn belongs_to(data: &SessionMap, user_id: &str) -> bool {
    match data.get(AUTH_USER_ID_KEY) {
        Some(Value::String(id)) => id == user_id,
        Some(Value::Number(n)) => n.to_string() == user_id,
        _ => false,
    }
}

/// Finds the live sessions in which `user_id` is logged in (their
/// `_auth_user_id`, as [`Session::login`](crate::Session::login) and
/// Django's `login()` write it), by reading every session the store holds
/// ([`ListSessions::sessions`]).
///
/// A session that cannot be decoded is counted in
/// [`unreadable`](UserSessions::unreadable) and skipped; a session that
/// expires or is deleted while the store is read is not reported.
///
/// # Errors
///
/// The first backend error of the listing or of a load.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> sesame::Result<()> {
/// use sesame::Session;
/// use sesame::backends::{MemoryStore, sessions_of_user};
///
/// let store = MemoryStore::new();
/// let session = Session::new(store.clone(), None);
/// session.login("42", "django.contrib.auth.backends.ModelBackend", None).await?;
/// session.save().await?;
///
/// let found = sessions_of_user(&store, "42").await?;
/// assert_eq!(found.sessions.len(), 1);
/// assert!(sessions_of_user(&store, "7").await?.sessions.is_empty());
/// # Ok(()) }
/// ```
///
/// # Django
///
/// Django has no such function (its `SessionStore` keeps no index by user);
/// `django-user-sessions` and Spring Session's `findByPrincipalName` are the
/// nearest.
pub async fn sessions_of_user<S: ListSessions>(store: &S, user_id: &str) -> Result<UserSessions> {
    let mut found = UserSessions::default();
    let sessions = store.sessions();
    let mut sessions = std::pin::pin!(sessions);
    while let Some((key, loaded)) = sessions.try_next().await? {
        match loaded {
            Ok(Some(record)) => {
                found.checked += 1;
                if belongs_to(&record.data, user_id) {
                    found.sessions.push((key, record.expires_at));
                }
            }
            // Expired or deleted since it was listed.
            Ok(None) => {}
            Err(Error::Corrupt(_)) => found.unreadable += 1,
            Err(e) => return Err(e),
        }
    }
    // Sorted, and each once: a store may list a key twice (Redis `SCAN`).
    found
        .sessions
        .sort_by(|a, b| a.0.as_str().cmp(b.0.as_str()));
    found.sessions.dedup_by(|a, b| a.0 == b.0);
    Ok(found)
}

/// Deletes every live session in which `user_id` is logged in, except the
/// one under `keep` (the session making the request, for "log out my other
/// devices"): Django's `logout()` for each of them at once.
///
/// Sessions are found as [`sessions_of_user`] finds them. A request that
/// holds a revoked session and saves it afterwards gets
/// [`Error::Missing`] (the middleware's `SessionInterrupted`): a revoked
/// session is never re-created by a save. A login that happens after the
/// store was read is not revoked.
///
/// # Errors
///
/// The first backend error of the listing, a load or a delete; sessions
/// deleted before it stay deleted.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> sesame::Result<()> {
/// use sesame::Session;
/// use sesame::backends::{MemoryStore, SessionStore, revoke_user_sessions};
///
/// let store = MemoryStore::new();
/// let (laptop, phone) = (Session::new(store.clone(), None), Session::new(store.clone(), None));
/// for session in [&laptop, &phone] {
///     session.login("42", "django.contrib.auth.backends.ModelBackend", None).await?;
///     session.save().await?;
/// }
/// let laptop_key = laptop.session_key().expect("saved");
///
/// let revoked = revoke_user_sessions(&store, "42", Some(&laptop_key)).await?;
/// assert_eq!(revoked.revoked.len(), 1);
/// assert!(revoked.kept);
/// assert!(store.exists(&laptop_key).await?);
/// assert!(!store.exists(&phone.session_key().expect("saved")).await?);
/// # Ok(()) }
/// ```
///
/// # Django
///
/// None built in: Django users delete the user's rows from `django_session`
/// by hand, or use `django-user-sessions`; `update_session_auth_hash()` ends
/// other sessions only on a password change.
pub async fn revoke_user_sessions<S: ListSessions>(
    store: &S,
    user_id: &str,
    keep: Option<&SessionKey>,
) -> Result<Revoked> {
    let found = sessions_of_user(store, user_id).await?;
    let mut revoked = Revoked {
        checked: found.checked,
        unreadable: found.unreadable,
        ..Revoked::default()
    };
    for (key, _) in found.sessions {
        if keep == Some(&key) {
            revoked.kept = true;
            continue;
        }
        store.delete(&key).await?;
        revoked.revoked.push(key);
    }
    Ok(revoked)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn data(value: Value) -> SessionMap {
        match value {
            Value::Object(map) => map,
            _ => unreachable!(),
        }
    }

    #[test]
    fn a_session_belongs_to_the_user_its_auth_user_id_names() {
        assert!(belongs_to(&data(json!({"_auth_user_id": "42"})), "42"));
        assert!(belongs_to(&data(json!({"_auth_user_id": 42})), "42"));
        assert!(belongs_to(
            &data(json!({"_auth_user_id": "3f2a-uuid"})),
            "3f2a-uuid"
        ));
        assert!(!belongs_to(&data(json!({"_auth_user_id": "420"})), "42"));
        assert!(!belongs_to(&data(json!({"_auth_user_id": " 42"})), "42"));
        assert!(!belongs_to(&data(json!({"_auth_user_id": ["42"]})), "42"));
        assert!(!belongs_to(&data(json!({"user": "42"})), "42"));
        assert!(!belongs_to(&data(json!({})), ""));
    }
}
