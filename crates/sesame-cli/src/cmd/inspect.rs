//! `sesame inspect`: the live session under a key, like Django's
//! `Session.get_decoded()`.

use anyhow::Context as _;
use serde_json::json;
use sesame::backends::SessionStore as _;
use sesame::{KeyKind, SessionKey};
use time::format_description::well_known::Rfc3339;

use crate::cli::InspectArgs;
use crate::cmd::{
    UsageError, cookie_settings_from_env, migrate_hint, require_existing_database, signer_for_store,
};
use crate::store_url::{Store, StoreUrl, Upkeep};

/// Prints the live session stored under `args.key` as one line of JSON:
/// `{"session_key": "abcd…", "expire_date": "<RFC 3339>", "session": {…}}`.
///
/// On `signed-cookies:` KEY is the cookie value, the signed session itself,
/// checked against `SECRET_KEY`, `SECRET_KEY_FALLBACKS` and
/// `SESSION_COOKIE_AGE`. On `file:///DIR` the file is found and aged with
/// `SESSION_COOKIE_NAME` and `SESSION_COOKIE_AGE`. No other setting is read.
///
/// Only the key's first four characters are printed. The session is
/// printed as `decode` prints one (UTF-8, keys in stored order, `NaN` and
/// `Infinity` as `null` with a warning).
///
/// # Errors
///
/// A [`UsageError`] (exit status 2) when the key does not have a session
/// key's shape (checked before the store is opened), the store is
/// `memory:` or `sqlite::memory:` (which only the serving process sees), or
/// `SECRET_KEY` is unset and `sesame serve` generated no key for the store
/// (`<database>.secret_key` beside an SQLite file, else `sesame.secret_key`
/// in the working directory), which is used otherwise. Other errors exit
/// with status 1: no live session under the key (absent or expired), an
/// SQLite file or a session table that does not exist (the message says to
/// run `sesame migrate`; the file is never created), a generated key file
/// that cannot be read, a store that cannot be opened or read, or stored
/// data that cannot be decoded with the keys given (where Django's
/// `get_decoded()` returns `{}`, this says why).
pub async fn run(args: &InspectArgs) -> anyhow::Result<()> {
    // On signed-cookies: the key is the cookie value, the session itself.
    let kind = match args.store.store {
        StoreUrl::SignedCookies => KeyKind::Signed,
        _ => KeyKind::Random,
    };
    let key = SessionKey::parse_kind(args.key.as_bytes(), kind).map_err(|e| {
        UsageError(format!(
            "KEY is not a session key ({e}); the sessionid cookie's value is one"
        ))
    })?;
    let url = &args.store.store;
    if url.upkeep() == Upkeep::InProcess {
        return Err(UsageError(format!(
            "{url} keeps sessions in the memory of the process serving them, where no other \
             process can see them: inspect a store that keeps them outside (a database, \
             file://, Redis, memcached)"
        ))
        .into());
    }
    // The SQL stores verify what they read with the Django project's keys.
    let signer = signer_for_store(url)?;
    require_existing_database(url)?;
    let settings = cookie_settings_from_env()?;
    let store = match Store::open_args(&args.store, &settings, signer).await? {
        // A signed cookie's validity is measured against SESSION_COOKIE_AGE.
        Store::SignedCookies(s) => Store::SignedCookies(s.with_max_age(settings.cookie_age)),
        other => other,
    };
    let record = match store.load(&key).await {
        Ok(Some(record)) => record,
        Ok(None) => anyhow::bail!("no live session under {}", key.redacted()),
        // Django's get_decoded() would return {} here; an operator is
        // better served by the reason (usually a SECRET_KEY mismatch).
        Err(sesame::Error::Corrupt(e)) => anyhow::bail!(
            "the session under {} cannot be decoded (Django would see an empty session): {e}; \
             check SECRET_KEY and SECRET_KEY_FALLBACKS",
            key.redacted()
        ),
        Err(e) => {
            let hint = migrate_hint(&e, url);
            return Err(e).with_context(|| {
                format!(
                    "cannot read the session under {} in {url}{hint}",
                    key.redacted()
                )
            });
        }
    };
    let expire_date = record
        .expires_at
        .format(&Rfc3339)
        .context("the session's expiry date cannot be written as RFC 3339")?;
    let shown = json!({
        "session_key": key.redacted().to_string(),
        "expire_date": expire_date,
        "session": &*record.data,
    });
    crate::cmd::print_json(shown)
}
