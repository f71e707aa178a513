//! One module per subcommand, and what several of them share.

pub mod clearsessions;
pub mod decode;
pub mod encode;
pub mod inspect;
pub mod migrate;
pub mod revoke;
pub mod serve;

use std::fmt;
use std::io::Read as _;

use sesame::Settings;
use sesame::codec::{MAX_SESSION_DATA_LEN, Signer};

use crate::store_url::{StoreUrl, Upkeep};

/// An error in what the user gave (arguments, environment, stdin) rather
/// than in the store: the command exits with status 2, as for clap's usage
/// errors, where other failures exit with 1.
#[derive(Debug)]
pub struct UsageError(pub String);

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// The exit status for a failed command: 2 when a [`UsageError`] is in its
/// chain, else 1.
#[must_use]
pub fn exit_status(error: &anyhow::Error) -> u8 {
    if error.chain().any(|e| e.is::<UsageError>()) {
        2
    } else {
        1
    }
}

/// The one line `main` prints for a failed command: each error of the
/// chain once, joined by `: ` (as `{:#}` joins them), except that a source
/// whose text the error before it already holds is left out: sqlx's and
/// redis's errors repeat their source in their own message.
#[must_use]
pub fn error_message(error: &anyhow::Error) -> String {
    let mut message = String::new();
    let mut previous = String::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if text.is_empty() || previous.contains(&text) {
            continue;
        }
        if !message.is_empty() {
            message.push_str(": ");
        }
        message.push_str(&text);
        previous = text;
    }
    message
}

/// Every setting from the environment ([`Settings::from_env`]), as `serve`,
/// `migrate` and `clearsessions` read them.
///
/// # Errors
///
/// A [`UsageError`] naming the first setting that is invalid: a command
/// never runs with settings other than the ones given.
pub fn settings_from_env() -> Result<Settings, UsageError> {
    Settings::from_env().map_err(|e| UsageError(format!("invalid settings: {e}")))
}

/// The signer of `migrate`, and of `clearsessions` on a store that keeps
/// its own expiry dates (a database): `settings`' keys when set, else a
/// placeholder, since those commands only run DDL and deletes by date.
#[must_use]
pub fn maintenance_signer(settings: &Settings) -> Signer {
    settings
        .signer()
        .unwrap_or_else(|_| Signer::new("sesame: maintenance commands never sign session data"))
}

/// `SESSION_COOKIE_NAME` and `SESSION_COOKIE_AGE` from the environment
/// (Django's defaults when unset), the settings `inspect` and `revoke` read besides the
/// keys: where a file store's files are, how long a session lives.
///
/// # Errors
///
/// A [`UsageError`] when `SESSION_COOKIE_AGE` is invalid.
pub fn cookie_settings_from_env() -> Result<Settings, UsageError> {
    let mut settings = Settings::from_lookup(|name| match name {
        "SESSION_COOKIE_AGE" => std::env::var(name).ok(),
        _ => None,
    })
    .map_err(|e| UsageError(e.to_string()))?;
    if let Ok(name) = std::env::var("SESSION_COOKIE_NAME") {
        settings.cookie_name = name;
    }
    Ok(settings)
}

/// Fails when `url` names an SQLite file that does not exist, so that a
/// command that only reads or deletes never creates an empty database.
///
/// # Errors
///
/// The file does not exist; the message says to run `sesame migrate`.
pub fn require_existing_database(url: &StoreUrl) -> anyhow::Result<()> {
    match url {
        StoreUrl::Sqlite(path) if url.upkeep() == Upkeep::Table && !path.exists() => {
            anyhow::bail!(
                "there is no SQLite database at {}: create it and its session table with \
                 `sesame migrate --store {url}`",
                path.display()
            )
        }
        _ => Ok(()),
    }
}

/// `": the session table does not exist: …"` when `error` says that
/// Django's table (or a file store's directory) is missing, naming the
/// command that creates it; else `""`.
#[must_use]
pub fn migrate_hint(error: &sesame::Error, url: &StoreUrl) -> String {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = cause {
        let text = e.to_string();
        let no_table = text.contains(sesame::codec::DB_TABLE)
            && ["no such table", "does not exist", "doesn't exist"]
                .iter()
                .any(|says| text.contains(says));
        let no_dir = matches!(url, StoreUrl::File(_))
            && e.downcast_ref::<std::io::Error>()
                .is_some_and(|e| e.kind() == std::io::ErrorKind::NotFound);
        if no_table || no_dir {
            let what = if no_dir { "directory" } else { "table" };
            return format!(
                ": the session {what} does not exist: create it with `sesame migrate --store {url}`"
            );
        }
        cause = e.source();
    }
    String::new()
}

/// The keys `SECRET_KEY` and `SECRET_KEY_FALLBACKS` name, read as
/// [`Settings::from_env`] reads them; other settings are not read, so a bad
/// `SESSION_*` variable does not stop `decode` or `encode`.
///
/// # Errors
///
/// A [`UsageError`] when `SECRET_KEY` is unset or empty, or
/// `SECRET_KEY_FALLBACKS` cannot be parsed. Neither message holds a key.
pub fn signer_from_env() -> anyhow::Result<Signer> {
    signer_from_lookup(|name| std::env::var(name).ok())
}

/// The signer for a command that reads `url`'s sessions: `SECRET_KEY` (and
/// `SECRET_KEY_FALLBACKS`) from the environment or, when `SECRET_KEY` is
/// unset, the key `sesame serve` generated for that store, as `serve`
/// itself would use it (never created here; a note on stderr says so).
///
/// # Errors
///
/// As [`signer_from_env`], when neither is there.
pub fn signer_for_store(url: &StoreUrl) -> anyhow::Result<Signer> {
    let unset = std::env::var("SECRET_KEY").map_or(true, |key| key.is_empty());
    if unset && let Some(key) = generated_secret_key(url)? {
        return signer_from_lookup(|name| match name {
            "SECRET_KEY" => Some(key.clone()),
            _ => std::env::var(name).ok(),
        });
    }
    signer_from_env()
}

/// The key `sesame serve` generated for `url` when it ran without
/// `SECRET_KEY`, if there is one (with a note on stderr); never creates it.
///
/// # Errors
///
/// The key file exists but cannot be read or is empty.
pub fn generated_secret_key(url: &StoreUrl) -> anyhow::Result<Option<String>> {
    let path = url.secret_key_path();
    let key = crate::secret_key::existing(&path)?;
    if key.is_some() {
        eprintln!(
            "note: SECRET_KEY is not set: using the one sesame serve generated ({})",
            path.display()
        );
    }
    Ok(key)
}

fn signer_from_lookup(lookup: impl Fn(&str) -> Option<String>) -> anyhow::Result<Signer> {
    let settings = Settings::from_lookup(|name| match name {
        "SECRET_KEY" | "SECRET_KEY_FALLBACKS" => lookup(name),
        _ => None,
    })
    .map_err(|e| UsageError(e.to_string()))?;
    let Some(secret_key) = settings.secret_key else {
        return Err(UsageError(
            "SECRET_KEY is not set: set it (and SECRET_KEY_FALLBACKS if keys were rotated) \
             to the Django project's"
                .to_owned(),
        )
        .into());
    };
    Ok(Signer::new(secret_key).with_fallbacks(settings.secret_key_fallbacks))
}

/// Most bytes read from stdin: the longest value the codec accepts, plus
/// room for surrounding whitespace.
const STDIN_LIMIT: usize = MAX_SESSION_DATA_LEN + 4096;

/// Reads stdin to its end, at most 4 KiB beyond the longest value the codec
/// accepts (`MAX_SESSION_DATA_LEN`), without the whitespace (such as a final
/// newline) around it.
///
/// A longer input is returned cut just past the limit and untrimmed, so it
/// is always longer than `MAX_SESSION_DATA_LEN`, which the callers reject
/// as too large (whitespace included: it is never read whole).
///
/// # Errors
///
/// Reading stdin fails.
pub fn read_stdin() -> anyhow::Result<Vec<u8>> {
    read_limited(std::io::stdin().lock())
}

fn read_limited(input: impl std::io::Read) -> anyhow::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    input
        .take(STDIN_LIMIT as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| anyhow::anyhow!("cannot read stdin: {e}"))?;
    if bytes.len() > STDIN_LIMIT {
        return Ok(bytes);
    }
    let trimmed = bytes.trim_ascii();
    if trimmed.len() != bytes.len() {
        bytes = trimmed.to_vec();
    }
    Ok(bytes)
}

/// Prints `value` as one line of JSON on stdout. Python's `NaN`,
/// `Infinity` and `-Infinity` (which Django's JSON reads and writes, and
/// JSON has no spelling for) are printed as `null`, and a one-line warning
/// on stderr says how many were.
///
/// # Errors
///
/// Never in practice: writing JSON to a string does not fail.
pub fn print_json(mut value: serde_json::Value) -> anyhow::Result<()> {
    let replaced = null_non_finite(&mut value);
    println!("{}", serde_json::to_string(&value)?);
    if replaced > 0 {
        eprintln!(
            "warning: printed {replaced} NaN or Infinity value(s) as null: JSON has no such \
             numbers (Python's json, and so Django, reads and writes them)"
        );
    }
    Ok(())
}

/// Replaces every non-finite number in `value` with `null`; returns how many.
fn null_non_finite(value: &mut serde_json::Value) -> usize {
    use serde_json::Value;

    match value {
        Value::Number(n) if matches!(n.as_str(), "NaN" | "Infinity" | "-Infinity") => {
            *value = Value::Null;
            1
        }
        Value::Array(items) => items.iter_mut().map(null_non_finite).sum(),
        Value::Object(map) => map.values_mut().map(null_non_finite).sum(),
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use sesame::codec::DB_SALT;
    use time::OffsetDateTime;

    use super::*;

    fn signer(pairs: &[(&str, &str)]) -> anyhow::Result<Signer> {
        signer_from_lookup(|name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        })
    }

    #[test]
    fn fallbacks_may_hold_commas_in_a_json_array() {
        let now = OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap();
        let old = Signer::new("old,with,commas").dumps_session(&Default::default(), DB_SALT, now);
        let rotated = signer(&[
            ("SECRET_KEY", "new"),
            ("SECRET_KEY_FALLBACKS", r#"["x", "old,with,commas"]"#),
        ])
        .unwrap();
        assert!(rotated.loads_session(&old, DB_SALT, None, now).is_ok());
    }

    #[test]
    fn a_missing_key_or_bad_fallbacks_are_usage_errors() {
        for pairs in [
            &[][..],
            &[("SECRET_KEY", "")][..],
            &[("SECRET_KEY", "k"), ("SECRET_KEY_FALLBACKS", "[1, 2]")][..],
        ] {
            let err = signer(pairs).unwrap_err();
            assert_eq!(exit_status(&err), 2, "{err}");
        }
        let err = signer(&[]).unwrap_err();
        assert!(err.to_string().contains("SECRET_KEY"), "{err}");
    }

    #[test]
    fn other_settings_are_not_read() {
        signer(&[("SECRET_KEY", "k"), ("SESSION_COOKIE_AGE", "two weeks")]).unwrap();
    }

    /// An error that, as sqlx's and redis's, repeats its source's text.
    #[derive(Debug)]
    struct Repeats(std::io::Error);

    impl fmt::Display for Repeats {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "error with configuration: {}", self.0)
        }
    }

    impl std::error::Error for Repeats {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn the_error_message_says_each_cause_once() {
        let err = anyhow::Error::new(Repeats(std::io::Error::other("invalid IPv6 address")))
            .context("cannot open the session store postgres://[::1");
        assert_eq!(
            error_message(&err),
            "cannot open the session store postgres://[::1: error with configuration: \
             invalid IPv6 address"
        );
        // Distinct causes are all kept, in order.
        let err = anyhow::anyhow!("no such table")
            .context("cannot read")
            .context("inspect");
        assert_eq!(error_message(&err), "inspect: cannot read: no such table");
    }

    #[test]
    fn a_missing_table_or_directory_gets_a_hint_to_migrate() {
        let pg: StoreUrl = "postgres://u@h/db".parse().unwrap();
        for says in [
            "error returned from database: relation \"django_session\" does not exist",
            "error returned from database: 1146 (42S02): Table 'x.django_session' doesn't exist",
            "no such table: django_session",
        ] {
            let hint = migrate_hint(&sesame::Error::backend(says), &pg);
            assert!(
                hint.contains("`sesame migrate --store postgres://u@h/db`"),
                "{says}"
            );
        }
        let other = sesame::Error::backend("database \"db\" does not exist");
        assert_eq!(migrate_hint(&other, &pg), "");
        let dir: StoreUrl = "file:///nowhere".parse().unwrap();
        let gone = sesame::Error::backend(std::io::Error::from(std::io::ErrorKind::NotFound));
        assert!(migrate_hint(&gone, &dir).contains("session directory does not exist"));
    }

    #[test]
    fn non_finite_numbers_become_null() {
        let mut value =
            sesame::codec::json_loads(b"{\"a\":Infinity,\"b\":[NaN,1.5,-Infinity],\"c\":\"NaN\"}")
                .unwrap();
        assert_eq!(null_non_finite(&mut value), 3);
        assert_eq!(
            serde_json::to_string(&value).unwrap(),
            r#"{"a":null,"b":[null,1.5,null],"c":"NaN"}"#
        );
    }

    #[test]
    fn stdin_past_the_limit_is_never_trimmed_below_it() {
        let spaces = vec![b' '; STDIN_LIMIT + 10];
        assert!(read_limited(&spaces[..]).unwrap().len() > MAX_SESSION_DATA_LEN);
        assert_eq!(read_limited(&b" {} \n"[..]).unwrap(), b"{}");
    }

    #[test]
    fn other_errors_exit_with_1() {
        assert_eq!(exit_status(&anyhow::anyhow!("store down")), 1);
        let wrapped = anyhow::Error::new(UsageError("bad".into())).context("while decoding");
        assert_eq!(exit_status(&wrapped), 2);
    }
}
