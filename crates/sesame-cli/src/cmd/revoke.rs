//! `sesame revoke`: end every session of one user ("log out everywhere").

use anyhow::Context as _;
use sesame::SessionKey;
use sesame::backends::{revoke_user_sessions, sessions_of_user};
use time::format_description::well_known::Rfc3339;

use crate::cli::RevokeArgs;
use crate::cmd::{
    UsageError, cookie_settings_from_env, migrate_hint, require_existing_database, signer_for_store,
};
use crate::store_url::{Store, StoreUrl, Upkeep};

/// Deletes every live session in which `--user` is logged in (its
/// `_auth_user_id`, as Django's `login()` and `Session::login` write it),
/// except the one under `--except`, and prints how many it deleted.
/// `--dry-run` prints the user's sessions instead (the key's first four
/// characters and the expiry, one per line, the one to keep marked
/// `(kept)`) and deletes nothing.
///
/// No store keeps an index by user, Django's included: every session is
/// read (and verified with `SECRET_KEY` and `SECRET_KEY_FALLBACKS`, or the
/// key `sesame serve` generated) to find the user's. A request that holds
/// a revoked session and saves it afterwards is refused
/// (`SessionInterrupted`, 400): a revoked session does not come back.
///
/// # Errors
///
/// A [`UsageError`] (exit status 2), before the store is opened: an empty
/// `--user`, an `--except` that is not a session key, a store that cannot
/// list its sessions (`memory:` and `sqlite::memory:` live in the serving
/// process, `signed-cookies:` are stored nowhere, memcached cannot list its
/// keys), a `--cache memory:` (the serving process's own cache, which this
/// command cannot reach), or `SECRET_KEY` unset with no generated key.
/// Exit status 1: the store cannot be opened or read, or a delete fails; or, after revoking
/// what it found, some sessions could not be decoded with the keys given,
/// and so could not be checked (any of them may be the user's).
pub async fn run(args: &RevokeArgs) -> anyhow::Result<()> {
    let url = &args.store.store;
    refuse_unlistable(url)?;
    if let Some(cache) = &args.store.cache
        && cache.upkeep() == Upkeep::InProcess
    {
        return Err(UsageError(format!(
            "cannot revoke sessions behind --cache {cache}: that cache lives in the memory of \
             the process serving the sessions, where this command cannot delete its copies, \
             and it would go on serving them; revoke with the database alone only once that \
             process has restarted, or use a shared cache (redis://, memcached://)"
        ))
        .into());
    }
    if args.user.is_empty() {
        return Err(
            UsageError("--user is empty: give the user's id (its primary key)".into()).into(),
        );
    }
    let keep = args
        .except
        .as_deref()
        .map(|key| {
            SessionKey::from_bytes(key.as_bytes()).map_err(|e| {
                UsageError(format!(
                    "--except is not a session key ({e}); the sessionid cookie's value is one"
                ))
            })
        })
        .transpose()?;
    let signer = signer_for_store(url)?;
    require_existing_database(url)?;
    let settings = cookie_settings_from_env()?;
    let store = Store::open_args(&args.store, &settings, signer).await?;
    let failed = |e: sesame::Error| {
        let hint = migrate_hint(&e, url);
        anyhow::Error::new(e).context(format!("cannot revoke sessions in {url}{hint}"))
    };
    let user = &args.user;
    let (checked, unreadable) = if args.dry_run {
        let found = sessions_of_user(&store, user).await.map_err(failed)?;
        let mut would = 0;
        for (key, expires_at) in &found.sessions {
            let expires_at = expires_at
                .format(&Rfc3339)
                .context("an expiry date cannot be written as RFC 3339")?;
            let kept = if keep.as_ref() == Some(key) {
                " (kept)"
            } else {
                would += 1;
                ""
            };
            println!("{} expires {expires_at}{kept}", key.redacted());
        }
        println!(
            "would revoke {} of user {user:?} (checked {})",
            sessions(would),
            sessions(found.checked)
        );
        (found.checked, found.unreadable)
    } else {
        let revoked = revoke_user_sessions(&store, user, keep.as_ref())
            .await
            .map_err(failed)?;
        let kept = match (&keep, revoked.kept) {
            (Some(key), true) => format!(", kept {}", key.redacted()),
            _ => String::new(),
        };
        println!(
            "revoked {} of user {user:?} (checked {}{kept})",
            sessions(revoked.revoked.len()),
            sessions(revoked.checked)
        );
        (revoked.checked, revoked.unreadable)
    };
    if unreadable > 0 {
        anyhow::bail!(
            "could not decode {unreadable} of the {} with SECRET_KEY or SECRET_KEY_FALLBACKS, \
             so could not check them: any of them may be the user's; run again with the keys \
             serve runs with",
            sessions(checked + unreadable)
        );
    }
    Ok(())
}

/// Refuses, before anything is opened, a store whose sessions cannot be
/// listed.
fn refuse_unlistable(url: &StoreUrl) -> Result<(), UsageError> {
    let why = match (url, url.upkeep()) {
        (_, Upkeep::InProcess) => {
            "keeps sessions in the memory of the process serving them, where no other process \
             can see them"
        }
        (_, Upkeep::InCookie) => {
            "keeps each session in its signed cookie, stored nowhere: no session can be revoked \
             alone; replacing SECRET_KEY (and leaving the old key out of SECRET_KEY_FALLBACKS) \
             ends every session"
        }
        (StoreUrl::Memcached(_), _) => {
            "cannot list its keys; with sessions in a database behind memcached (--store \
             DATABASE --cache memcached://…), revoke reads the database and deletes from both"
        }
        _ => return Ok(()),
    };
    Err(UsageError(format!(
        "cannot revoke sessions on {url}: it {why}"
    )))
}

/// `"1 session"`, `"3 sessions"`.
fn sessions(n: impl TryInto<u64>) -> String {
    let n: u64 = n.try_into().unwrap_or(u64::MAX);
    if n == 1 {
        "1 session".to_owned()
    } else {
        format!("{n} sessions")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_read_as_english() {
        assert_eq!(sessions(0u64), "0 sessions");
        assert_eq!(sessions(1usize), "1 session");
        assert_eq!(sessions(2u64), "2 sessions");
    }

    #[test]
    fn stores_that_cannot_list_are_refused_and_say_why() {
        for (url, says) in [
            ("memory:", "memory of the process"),
            ("sqlite::memory:", "memory of the process"),
            ("signed-cookies:", "replacing SECRET_KEY"),
            ("memcached://127.0.0.1:11211", "--cache memcached://"),
        ] {
            let url: StoreUrl = url.parse().unwrap();
            let err = refuse_unlistable(&url).unwrap_err();
            assert!(err.0.contains(says), "{url}: {err}");
        }
        for url in [
            "sqlite://x.sqlite3",
            "postgres://u@h/db",
            "file:///tmp/s",
            "redis://127.0.0.1:6379/0",
        ] {
            let url: StoreUrl = url.parse().unwrap();
            assert!(refuse_unlistable(&url).is_ok(), "{url}");
        }
    }
}
