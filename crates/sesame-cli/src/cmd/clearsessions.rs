//! `sesame clearsessions`: Django's `manage.py clearsessions`.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use sesame::codec::{DB_SALT, Error as CodecError, MAX_SESSION_DATA_LEN, Signer};
use sesame::{SessionKey, Settings};
use time::OffsetDateTime;

use crate::cli::StoreArgs;
use crate::cmd::{
    UsageError, generated_secret_key, maintenance_signer, migrate_hint, require_existing_database,
    settings_from_env,
};
use crate::store_url::{Store, StoreUrl, Upkeep, file_prefix};

/// Opens the store, removes every expired session and prints how many.
///
/// It reads every setting as `serve` does and stops at an invalid one, so
/// that it never judges expiry with settings other than the ones given.
///
/// On `file:///DIR` a session's expiry is in its signed data
/// (`_session_expiry`), so it needs the project's `SECRET_KEY` (and
/// `SESSION_COOKIE_NAME`, `SESSION_COOKIE_AGE`), or the key `sesame serve`
/// generated when it ran without one (`sesame.secret_key` in the working
/// directory): without a key it refuses to run, and when the directory
/// holds session files of which none verifies with `SECRET_KEY` or
/// `SECRET_KEY_FALLBACKS` (the wrong key) it refuses too. Either way every
/// file would count as unreadable and be aged by its mtime alone, as Django
/// does, deleting live sessions whose `set_expiry()` outlasts
/// `SESSION_COOKIE_AGE`.
///
/// Redis and memcached expire sessions themselves (by TTL), `memory:` keeps
/// them in the serving process, `signed-cookies:` in the cookie: there it
/// says that there is nothing to clear, and succeeds, as Django's
/// `clear_expired` does nothing for its `cache` and `signed_cookies`
/// engines. With `--cache`, the database is cleared; the cache's copies
/// expire by its TTL.
///
/// It never creates a database: an SQLite file that does not exist, or a
/// table that does not, is an error that says to run `sesame migrate`.
///
/// # Errors
///
/// A [`UsageError`] for invalid settings, or for `file:///DIR` without
/// `SECRET_KEY`; a directory whose files none verifies; a database or table
/// that does not exist; a store that cannot be opened; a delete that fails.
pub async fn run(args: &StoreArgs) -> anyhow::Result<()> {
    let mut settings = settings_from_env()?;
    let url = &args.store;
    let signer = match url {
        StoreUrl::File(dir) => {
            if settings.secret_key.is_none() {
                settings.secret_key = generated_secret_key(url)?;
            }
            let signer = settings.signer().map_err(|_| {
                UsageError(
                    "SECRET_KEY is not set: on file:// each session's expiry is in its signed \
                     data, and without the key every file would be aged by its mtime alone, \
                     deleting sessions whose set_expiry() outlasts SESSION_COOKIE_AGE; set \
                     SECRET_KEY (and SECRET_KEY_FALLBACKS) to the ones serve runs with"
                        .to_owned(),
                )
            })?;
            check_the_keys_open_the_files(dir, &settings, &signer).await?;
            signer
        }
        _ => maintenance_signer(&settings),
    };
    require_existing_database(url)?;
    let store = Store::open_args(args, &settings, signer).await?;
    let nothing_to_clear = match url.upkeep() {
        Upkeep::Table | Upkeep::Directory => None,
        Upkeep::ExpiresItself => Some("expires sessions itself (by their TTL)"),
        Upkeep::InProcess => Some("keeps sessions in the memory of the process serving them"),
        Upkeep::InCookie => Some(
            "keeps sessions in the signed cookie, stored nowhere, and each expires on its own \
             after SESSION_COOKIE_AGE",
        ),
    };
    if let Some(why) = nothing_to_clear {
        println!("nothing to clear: {url} {why}");
        return Ok(());
    }
    let removed = store.clear_expired().await.map_err(|e| {
        let hint = migrate_hint(&e, url);
        anyhow::Error::new(e).context(format!("cannot remove expired sessions from {url}{hint}"))
    })?;
    let noun = if removed == 1 { "session" } else { "sessions" };
    println!("removed {removed} expired {noun}");
    Ok(())
}

/// Fails when `dir` holds session files and none of them verifies with
/// `signer`'s keys: the keys are not the ones the files were written with.
///
/// Files that verify with a key that has since been dropped from
/// `SECRET_KEY_FALLBACKS` are dead to the app; they are cleared (aged by
/// mtime) as soon as one file in the directory verifies.
async fn check_the_keys_open_the_files(
    dir: &Path,
    settings: &Settings,
    signer: &Signer,
) -> anyhow::Result<()> {
    let dir = dir.to_owned();
    let prefix = file_prefix(settings).to_owned();
    let signer = signer.clone();
    let unverified =
        tokio::task::spawn_blocking(move || count_unverified(&dir, &prefix, &signer)).await??;
    match unverified {
        Some((count, dir)) => anyhow::bail!(
            "none of the {count} session files in {} verifies with SECRET_KEY or \
             SECRET_KEY_FALLBACKS: not clearing, since each would be aged by its mtime alone \
             and live sessions deleted; set the keys serve runs with",
            dir.display()
        ),
        None => Ok(()),
    }
}

/// How many session files in `dir` fail to verify, when none verifies;
/// `None` once one does, or when there is no directory or no signed file.
fn count_unverified(
    dir: &Path,
    prefix: &str,
    signer: &Signer,
) -> anyhow::Result<Option<(usize, PathBuf)>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        // `clear_expired` reports a missing directory itself.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("cannot list {}", dir.display())),
    };
    let now = OffsetDateTime::now_utc();
    let mut unverified = 0;
    for entry in entries {
        let entry = entry.with_context(|| format!("cannot list {}", dir.display()))?;
        let name = entry.file_name();
        let is_session = name
            .to_str()
            .and_then(|n| n.strip_prefix(prefix))
            .is_some_and(|key| SessionKey::from_bytes(key.as_bytes()).is_ok());
        // Only regular files: a FIFO is never opened.
        if !is_session || !entry.file_type().is_ok_and(|t| t.is_file()) {
            continue;
        }
        let Some(text) = read_small(&entry.path()) else {
            continue;
        };
        match signer.loads_session(&text, DB_SALT, None, now) {
            Ok(_) => return Ok(None),
            Err(CodecError::BadSignature) => unverified += 1,
            // Empty (Django's placeholder), malformed, too large: no
            // evidence about the keys either way.
            Err(_) => {}
        }
    }
    Ok((unverified > 0).then(|| (unverified, dir.to_owned())))
}

/// A session file's text, if it can be read and is non-empty text no longer
/// than the decoder accepts.
fn read_small(path: &Path) -> Option<String> {
    use std::io::Read as _;

    let mut text = String::new();
    std::fs::File::open(path)
        .ok()?
        .take(MAX_SESSION_DATA_LEN as u64)
        .read_to_string(&mut text)
        .ok()?;
    (!text.is_empty()).then_some(text)
}
