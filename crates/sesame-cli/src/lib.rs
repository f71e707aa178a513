//! The `sesame` command: serve the counter demo, create the session table,
//! remove expired sessions, and read or write Django's session data.
//!
//! ```text
//! sesame serve [--addr 127.0.0.1:8000] [--store URL]   # the demo, on http://127.0.0.1:8000/
//! sesame migrate --store URL                            # create django_session if missing
//! sesame clearsessions --store URL                      # Django's clearsessions
//! sesame decode [--salt SALT] [--max-age S] [--now T]   # signed value on stdin -> session JSON
//! sesame encode [--salt SALT] [--now T]                 # session JSON on stdin -> signed value
//! sesame inspect --store URL KEY                        # Django's Session.get_decoded()
//! sesame revoke --store URL --user ID [--except KEY]     # log a user out everywhere
//! ```
//!
//! `--store` (or `SESAME_STORE`) takes `sqlite://PATH` (the default is
//! `sqlite://sesame.sqlite3`), `postgres://…`, `mysql://…` / `mariadb://…`
//! or `memory:`; see [`store_url`]. Session settings come from environment
//! variables named as Django's (`SESSION_COOKIE_AGE=30`, …), see
//! [`sesame::Settings::from_env`], and an invalid one stops `serve`,
//! `migrate` and `clearsessions`; `decode`, `encode` and `inspect` read
//! only `SECRET_KEY` and `SECRET_KEY_FALLBACKS` (`inspect` also
//! `SESSION_COOKIE_NAME` and `SESSION_COOKIE_AGE`).
//!
//! Exit status: 0 on success (including `decode` printing `{}` for a value
//! Django would read as an empty session), 2 for a usage error, found
//! before anything is created or connected (bad arguments, a malformed URL,
//! host, port or `--addr`, `SECRET_KEY` unset, input that is not a JSON
//! object for `encode`, a malformed key for `inspect`), 1 for any other
//! failure (a server that does not answer, a store that fails, no live
//! session for `inspect`).
//!
//! The library half of this crate holds what the binary runs, so that tests
//! can drive the demo router in-process.
// The CLI's job is to print results.
#![allow(clippy::print_stdout)]

pub mod cli;
pub mod cmd;
pub mod demo;
pub mod logging;
pub mod secret_key;
pub mod store_url;

pub use cli::{Cli, Command};

/// Runs one parsed command line to completion.
///
/// # Errors
///
/// Whatever the command reports: invalid settings, an unusable store URL, a
/// store that fails, an address that cannot be bound, bad input.
/// [`cmd::exit_status`] gives the status to exit with.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => cmd::serve::run(args).await,
        Command::Migrate(args) => cmd::migrate::run(&args).await,
        Command::Clearsessions(args) => cmd::clearsessions::run(&args).await,
        Command::Decode(args) => cmd::decode::run(&args),
        Command::Encode(args) => cmd::encode::run(&args),
        Command::Inspect(args) => cmd::inspect::run(&args).await,
        Command::Revoke(args) => cmd::revoke::run(&args).await,
    }
}
