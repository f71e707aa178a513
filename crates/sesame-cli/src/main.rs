//! The `sesame` command; see the `sesame_cli` library for what each
//! subcommand does.

use std::io::IsTerminal as _;
use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

use sesame_cli::Cli;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(sesame_cli::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // The whole chain, each cause once: "invalid settings: SESSION_COOKIE_AGE: …".
            eprintln!("error: {}", sesame_cli::cmd::error_message(&e));
            ExitCode::from(sesame_cli::cmd::exit_status(&e))
        }
    }
}

/// Logs to stderr, filtered by `RUST_LOG` (default `info`; see
/// [`sesame_cli::logging::filter`]).
fn init_logging() {
    let rust_log = std::env::var("RUST_LOG").ok();
    let filter = EnvFilter::try_new(sesame_cli::logging::filter(rust_log.as_deref()))
        .unwrap_or_else(|_| EnvFilter::new(sesame_cli::logging::filter(None)));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}
