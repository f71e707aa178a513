//! The `sesame` command: serve the counter demo, create the session table,
//! remove expired sessions.
//!
//! ```text
//! sesame serve [--addr 127.0.0.1:8000] [--store URL]   # the demo, on http://127.0.0.1:8000/
//! sesame migrate --store URL                            # create django_session if missing
//! sesame clearsessions --store URL                      # Django's clearsessions
//! ```
//!
//! `--store` (or `SESAME_STORE`) takes `sqlite://PATH` (the default is
//! `sqlite://sesame.sqlite3`), `postgres://…`, `mysql://…` / `mariadb://…`
//! or `memory:`; see [`store_url`]. Session settings come from environment
//! variables named as Django's (`SESSION_COOKIE_AGE=30`, …), see
//! [`sesame::Settings::from_env`].
//!
//! The library half of this crate holds what the binary runs, so that tests
//! can drive the demo router in-process.
// The CLI's job is to print results.
#![allow(clippy::print_stdout)]

pub mod cli;
pub mod cmd;
pub mod demo;
pub mod secret_key;
pub mod store_url;

pub use cli::{Cli, Command};

/// Runs one parsed command line to completion.
///
/// # Errors
///
/// Whatever the command reports: invalid settings, an unusable store URL, a
/// store that fails, an address that cannot be bound.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => cmd::serve::run(args).await,
        Command::Migrate(args) => cmd::migrate::run(&args).await,
        Command::Clearsessions(args) => cmd::clearsessions::run(&args).await,
    }
}
