//! The command line, declared with clap's derive API.

use clap::{Args, Parser, Subcommand};

use crate::store_url::StoreUrl;

/// The store `--store` names when neither it nor `SESAME_STORE` is given:
/// `./sesame.sqlite3`.
pub const DEFAULT_STORE: &str = "sqlite://sesame.sqlite3";

/// The address `serve` listens on by default.
pub const DEFAULT_ADDR: &str = "127.0.0.1:8000";

/// Django's session framework in Rust: serve the counter demo, create the
/// session table, remove expired sessions.
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
    Migrate(StoreArgs),
    /// Remove expired sessions and print how many were removed (Django's
    /// clearsessions).
    Clearsessions(StoreArgs),
}

/// Arguments of `sesame serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The address to listen on (host:port).
    #[arg(long, value_name = "HOST:PORT", default_value = DEFAULT_ADDR)]
    pub addr: String,
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
                postgresql://…, mysql://…, mariadb://…, or memory:"
    )]
    pub store: StoreUrl,
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
        // SESAME_STORE may be set in the environment running the tests.
        if std::env::var_os("SESAME_STORE").is_none() {
            assert_eq!(args.store.store, DEFAULT_STORE.parse().unwrap());
        }
    }

    #[test]
    fn a_bad_store_url_is_a_usage_error() {
        let err = Cli::try_parse_from(["sesame", "migrate", "--store", "redis://x"]).unwrap_err();
        assert!(err.to_string().contains("redis://"), "{err}");
    }
}
