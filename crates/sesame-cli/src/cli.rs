//! The command line, declared with clap's derive API.

use clap::{Args, Parser, Subcommand};
use sesame::codec::{DB_SALT, SIGNED_COOKIES_SALT};
use time::OffsetDateTime;

use crate::store_url::StoreUrl;

/// The store `--store` names when neither it nor `SESAME_STORE` is given:
/// `./sesame.sqlite3`.
pub const DEFAULT_STORE: &str = "sqlite://sesame.sqlite3";

/// The address `serve` listens on by default.
pub const DEFAULT_ADDR: &str = "127.0.0.1:8000";

/// Django's session framework in Rust: serve the counter demo, create the
/// session table, remove expired sessions, read and write Django's session
/// data.
///
/// Session settings are read from environment variables named as Django's
/// settings (`SECRET_KEY`, `SESSION_COOKIE_AGE`, `SESSION_COOKIE_SECURE`, …).
#[derive(Debug, Parser)]
#[command(name = "sesame", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the counter demo (the routes of the Django peer) over HTTP.
    #[command(
        long_about = "Serve the counter demo (the routes of the Django peer) over HTTP.\n\n\
        Creates the session table on start. Without SECRET_KEY, a random key is created \
        once and kept beside the SQLite database (DB.secret_key), or in ./sesame.secret_key."
    )]
    Serve(ServeArgs),
    /// Create the session table and its index if they do not exist.
    #[command(
        long_about = "Create the session table and its index if they do not exist, and say \
        where.\n\n\
        On file:///DIR: create the directory and its lock files, and check that a session file \
        can be written there. Redis, memcached, memory: and signed-cookies: have nothing to \
        create (they keep no schema). Reads the settings serve reads, and stops at an invalid one."
    )]
    Migrate(StoreArgs),
    /// Remove expired sessions and print how many were removed (Django's
    /// clearsessions).
    #[command(
        long_about = "Remove expired sessions and print how many were removed (Django's \
        clearsessions).\n\n\
        Reads the settings serve reads, and stops at an invalid one. On file:///DIR a \
        session's expiry is in its signed data: SECRET_KEY (and SECRET_KEY_FALLBACKS, \
        SESSION_COOKIE_NAME, SESSION_COOKIE_AGE) must be the ones serve runs with; without \
        SECRET_KEY, or when no session file verifies with the keys, nothing is deleted. \
        Redis, memcached, memory: and signed-cookies: have nothing to clear (they expire \
        sessions themselves, or keep none). Never creates a database."
    )]
    Clearsessions(StoreArgs),
    /// Read one signed value on stdin and print the session it holds as JSON
    /// (`{}` and a warning when Django would see an empty session).
    #[command(
        about = "Read one signed value on stdin and print the session it holds as JSON \
                 ({} and a warning when Django would see an empty session)",
        long_about = "Read one signed value on stdin (session_data, or a signed_cookies cookie) \
        and print the session it holds as one line of JSON (UTF-8, keys in stored order; \
        Python's NaN and Infinity, which JSON lacks, as null with a warning).\n\n\
        Keys come from SECRET_KEY and SECRET_KEY_FALLBACKS (a JSON array of strings, or a \
        comma-separated list). Anything Django would turn into an empty session (bad \
        signature, expired under --max-age, malformed, not an object) prints {} with a \
        one-line warning on stderr, and exits 0. Exit status 2: SECRET_KEY unset or \
        SECRET_KEY_FALLBACKS unreadable."
    )]
    Decode(DecodeArgs),
    /// Read a JSON object on stdin and print the signed value Django would
    /// store for it.
    #[command(
        long_about = "Read a JSON object on stdin and print the signed value Django would store \
        for it (signed with SECRET_KEY, compressed when that is shorter).\n\n\
        Exit status 2: the input is not a JSON object, holds a number beyond a float's range \
        (Django would store Infinity, which is not JSON), is over 16 MiB, or SECRET_KEY is unset."
    )]
    Encode(EncodeArgs),
    /// Print the live session stored under KEY as JSON (Django's
    /// `Session.get_decoded()`).
    #[command(
        about = "Print the live session stored under KEY as JSON (Django's Session.get_decoded())",
        long_about = "Print the live session stored under KEY as one line of JSON: \
        {\"session_key\": \"abcd…\", \"expire_date\": RFC 3339, \"session\": {…}}. \
        The key is never printed whole.\n\n\
        Reads SECRET_KEY and SECRET_KEY_FALLBACKS to verify the stored data (and \
        SESSION_COOKIE_NAME, SESSION_COOKIE_AGE on file:// and signed-cookies:). Not on \
        memory: or sqlite::memory:, whose sessions only the serving process sees.\n\n\
        Exit status 1: no live session under KEY (absent or expired), data that does not \
        verify with those keys, no such database or table, or a store that fails; 2: KEY \
        is not a session key, the store is memory:, or SECRET_KEY is unset."
    )]
    Inspect(InspectArgs),
    /// Delete every session of one user, except the one under --except
    /// ("log out everywhere").
    #[command(
        about = "Delete every session of one user, except the one under --except (\"log out \
                 everywhere\")",
        long_about = "Delete every live session in which --user is logged in (its _auth_user_id, \
        as Django's login() writes it), except the one under --except, and print how many. \
        --dry-run prints them instead (the key's first four characters and the expiry; \
        (kept) marks the one --except names) and deletes nothing.\n\n\
        No store keeps an index by user, Django's included: every session is read, and \
        verified with SECRET_KEY and SECRET_KEY_FALLBACKS (or the key serve generated). With \
        --cache, the database is read and each session deleted from both: give the --cache \
        (SESAME_CACHE) serve runs with, or the cache keeps serving what the database lost. A request still \
        holding a revoked session cannot save it back.\n\n\
        Exit status 1: the store fails, or some sessions could not be decoded with the keys \
        given (they are counted, and could not be checked); 2: --user is empty, --except is \
        not a session key, SECRET_KEY is unset, or the store cannot list its sessions \
        (memory:, signed-cookies:, memcached://, or --cache memory:, which lives in the serving \
        process)."
    )]
    Revoke(RevokeArgs),
}

/// Arguments of `sesame serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The address to listen on (see [`parse_addr`]).
    #[arg(
        long,
        value_name = "HOST:PORT",
        default_value = DEFAULT_ADDR,
        value_parser = parse_addr,
        help = "The address to listen on: HOST:PORT, an IPv6 host in brackets ([::1]:8000)"
    )]
    pub addr: String,
    /// The outage policy (see [`sesame::OutagePolicy`]); overrides `SESAME_OUTAGE_POLICY`.
    #[arg(
        long,
        value_name = "POLICY",
        value_parser = parse_outage_policy,
        help = "What requests get while the store is down or slower than SESAME_STORE_TIMEOUT: \
                fail-closed (503 + Retry-After, the default) or fail-open (an empty, unsaved \
                session and no Set-Cookie). Overrides SESAME_OUTAGE_POLICY"
    )]
    pub outage_policy: Option<sesame::OutagePolicy>,
    /// Where sessions are kept.
    #[command(flatten)]
    pub store: StoreArgs,
}

/// The `--store` argument every subcommand takes.
#[derive(Debug, Args)]
pub struct StoreArgs {
    /// Where sessions are kept (see [`StoreUrl`]).
    #[arg(
        long,
        value_name = "URL",
        env = "SESAME_STORE",
        default_value = DEFAULT_STORE,
        help = "Where sessions are kept: sqlite://PATH (or sqlite:PATH), postgres://…, \
                postgresql://…, mysql://…, mariadb://…, file:///DIR (one file per session), \
                redis://…, rediss://…, redis+cluster://host1:port,host2:port, memcached://HOST[:PORT], \
                memory:, or signed-cookies: (the session in the signed cookie). On Redis, \
                SESAME_REDIS_WAIT_REPLICAS makes every delete wait (at most \
                SESAME_REDIS_WAIT_TIMEOUT seconds, 0.1 by default) until that many replicas have it"
    )]
    pub store: StoreUrl,
    /// A cache in front of the `--store` database: Django's `cached_db`.
    #[arg(
        long,
        value_name = "URL",
        env = "SESAME_CACHE",
        help = "A cache in front of a database --store (Django's cached_db): redis://…, \
                redis+cluster://…, memcached://… or memory:. Keys as Django's: SESAME_CACHE_KEY_PREFIX and \
                SESAME_CACHE_VERSION are the cache's KEY_PREFIX and VERSION"
    )]
    pub cache: Option<StoreUrl>,
}

/// The salt and clock `decode` and `encode` share.
#[derive(Debug, Args)]
pub struct SigningArgs {
    /// The signing salt (see [`parse_salt`]).
    #[arg(
        long,
        value_name = "SALT",
        default_value = DB_SALT,
        value_parser = parse_salt,
        help = "The signing salt: the db engines' by default; signed-cookies for the \
                signed_cookies engine's; any other value is used as is"
    )]
    pub salt: String,
    /// The time to sign or verify at, instead of the clock.
    #[arg(
        long,
        value_name = "UNIX_SECONDS",
        value_parser = parse_unix_time,
        help = "Use this time (Unix seconds) instead of the clock"
    )]
    pub now: Option<OffsetDateTime>,
}

/// Arguments of `sesame decode`.
#[derive(Debug, Args)]
pub struct DecodeArgs {
    /// Salt and clock.
    #[command(flatten)]
    pub signing: SigningArgs,
    /// Refuse signatures older than this many seconds.
    #[arg(
        long,
        value_name = "SECONDS",
        help = "Treat values signed more than SECONDS ago as expired (Django's signed_cookies \
                engine uses SESSION_COOKIE_AGE, 1209600 by default); no limit if absent"
    )]
    pub max_age: Option<u64>,
}

/// Arguments of `sesame encode`.
#[derive(Debug, Args)]
pub struct EncodeArgs {
    /// Salt and clock.
    #[command(flatten)]
    pub signing: SigningArgs,
}

/// Arguments of `sesame inspect`.
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// Where sessions are kept.
    #[command(flatten)]
    pub store: StoreArgs,
    /// The session key (checked by the command, so a bad one is never echoed).
    #[arg(
        value_name = "KEY",
        help = "The session key (the sessionid cookie's value)"
    )]
    pub key: String,
}

/// Arguments of `sesame revoke`.
#[derive(Debug, Args)]
pub struct RevokeArgs {
    /// Where sessions are kept.
    #[command(flatten)]
    pub store: StoreArgs,
    /// The user whose sessions to revoke.
    #[arg(
        long,
        value_name = "ID",
        help = "The user's id, as Django stores it in _auth_user_id (the primary key, as text)"
    )]
    pub user: String,
    /// A session of the user's to keep.
    #[arg(
        long,
        value_name = "KEY",
        help = "A session to keep (its key, the sessionid cookie's value): \"log out my other \
                devices\""
    )]
    pub except: Option<String>,
    /// Print the sessions instead of deleting them.
    #[arg(long, help = "Print the user's sessions and delete nothing")]
    pub dry_run: bool,
}

/// Resolves a `--salt` value: `signed-cookies` is shorthand for
/// [`SIGNED_COOKIES_SALT`]; anything else is the salt itself.
///
/// # Errors
///
/// Never; the signature is clap's.
pub fn parse_salt(value: &str) -> Result<String, String> {
    Ok(match value {
        "signed-cookies" => SIGNED_COOKIES_SALT.to_owned(),
        other => other.to_owned(),
    })
}

/// Parses `--outage-policy`: `fail-closed` or `fail-open`.
///
/// # Errors
///
/// Any other value; the message names no environment variable, since the
/// flag was used.
pub fn parse_outage_policy(value: &str) -> Result<sesame::OutagePolicy, String> {
    value
        .parse()
        .map_err(|_| "expected fail-closed or fail-open".to_owned())
}

/// Checks `--addr`: `HOST:PORT`, with an IPv6 address in brackets and a
/// port from 0 to 65535 (0: any free port); the host is resolved when
/// `serve` binds.
///
/// # Errors
///
/// No port, a port that is not a number in range, or an empty host or one
/// that is an unbracketed IPv6 address.
pub fn parse_addr(value: &str) -> Result<String, String> {
    const FORM: &str = "expected HOST:PORT, e.g. 127.0.0.1:8000, localhost:8000 or [::1]:8000";
    if value.parse::<std::net::SocketAddr>().is_ok() {
        return Ok(value.to_owned());
    }
    let (host, port) = value.rsplit_once(':').ok_or(FORM)?;
    let port_ok =
        !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) && port.parse::<u16>().is_ok();
    let host_ok = !host.is_empty()
        && !host.contains([':', '[', ']', '/', ' '])
        && !host.chars().any(char::is_control);
    if port_ok && host_ok {
        Ok(value.to_owned())
    } else {
        Err(FORM.to_owned())
    }
}

/// Parses `--now`: whole Unix seconds.
///
/// # Errors
///
/// Not an integer, or outside the years `time` represents.
pub fn parse_unix_time(value: &str) -> Result<OffsetDateTime, String> {
    let secs: i64 = value
        .trim()
        .parse()
        .map_err(|_| "expected whole seconds since 1970-01-01 UTC".to_owned())?;
    OffsetDateTime::from_unix_timestamp(secs).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn serve_defaults_to_the_sqlite_file_on_port_8000() {
        let cli = Cli::try_parse_from(["sesame", "serve"]).unwrap();
        let Command::Serve(args) = cli.command else {
            panic!("expected serve");
        };
        assert_eq!(args.addr, "127.0.0.1:8000");
        assert_eq!(args.outage_policy, None);
        // SESAME_STORE may be set in the environment running the tests.
        if std::env::var_os("SESAME_STORE").is_none() {
            assert_eq!(args.store.store, DEFAULT_STORE.parse().unwrap());
        }
    }

    #[test]
    fn outage_policy_is_fail_closed_or_fail_open() {
        for (given, policy) in [
            ("fail-open", sesame::OutagePolicy::FailOpen),
            ("fail-closed", sesame::OutagePolicy::FailClosed),
        ] {
            let cli = Cli::try_parse_from(["sesame", "serve", "--outage-policy", given]).unwrap();
            let Command::Serve(args) = cli.command else {
                panic!("expected serve");
            };
            assert_eq!(args.outage_policy, Some(policy));
        }
        let err = Cli::try_parse_from(["sesame", "serve", "--outage-policy", "maybe"]).unwrap_err();
        let err = err.to_string();
        assert!(err.contains("expected fail-closed or fail-open"), "{err}");
        assert!(!err.contains("SESAME_OUTAGE_POLICY"), "{err}");
    }

    #[test]
    fn help_texts_hold_no_runs_of_spaces() {
        fn check(command: &clap::Command) {
            for arg in command.get_arguments() {
                let help = arg.get_help().map(ToString::to_string).unwrap_or_default();
                assert!(!help.contains("  "), "{}: {help:?}", arg.get_id());
            }
            for about in [command.get_about(), command.get_long_about()]
                .into_iter()
                .flatten()
            {
                assert!(
                    !about.to_string().contains("  "),
                    "{}: {about}",
                    command.get_name()
                );
            }
            command.get_subcommands().for_each(check);
        }
        check(&Cli::command());
    }

    #[test]
    fn salt_defaults_to_the_db_salt_and_has_a_signed_cookies_shorthand() {
        let salt_of = |args: &[&str]| {
            let cli = Cli::try_parse_from(args).unwrap();
            let Command::Decode(args) = cli.command else {
                panic!("expected decode");
            };
            args.signing.salt
        };
        assert_eq!(salt_of(&["sesame", "decode"]), DB_SALT);
        assert_eq!(
            salt_of(&["sesame", "decode", "--salt", "signed-cookies"]),
            SIGNED_COOKIES_SALT
        );
        assert_eq!(
            salt_of(&["sesame", "decode", "--salt", "my.salt"]),
            "my.salt"
        );
    }

    #[test]
    fn now_is_unix_seconds() {
        assert_eq!(
            parse_unix_time("1700000000").unwrap().unix_timestamp(),
            1_700_000_000
        );
        assert!(parse_unix_time("yesterday").is_err());
        assert!(parse_unix_time("99999999999999999").is_err());
    }

    #[test]
    fn addr_is_host_and_port() {
        for good in [
            "127.0.0.1:8000",
            "[::1]:0",
            "localhost:8000",
            "0.0.0.0:65535",
        ] {
            assert_eq!(parse_addr(good).as_deref(), Ok(good));
        }
        for bad in [
            "bogus",
            "127.0.0.1",
            ":8000",
            "h:99999",
            "h:x",
            "::1:80",
            "a b:1",
        ] {
            assert!(parse_addr(bad).is_err(), "{bad}");
        }
        assert!(Cli::try_parse_from(["sesame", "serve", "--addr", "bogus"]).is_err());
    }

    #[test]
    fn a_bad_store_url_is_a_usage_error() {
        let err = Cli::try_parse_from(["sesame", "migrate", "--store", "mongodb://x"]).unwrap_err();
        assert!(err.to_string().contains("redis://"), "{err}");
    }
}
