//! `sesame serve`: the counter demo over HTTP.

use std::future::Future;

use anyhow::Context as _;
use sesame::Settings;
use tokio::net::TcpListener;

use crate::cli::ServeArgs;
use crate::cmd::UsageError;
use crate::secret_key::{self, Origin};
use crate::store_url::{Store, Upkeep};

/// Serves the demo until Ctrl-C or SIGTERM, with settings from the
/// environment ([`Settings::from_env`]).
///
/// # Errors
///
/// As [`serve`].
pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let settings = crate::cmd::settings_from_env()?;
    serve(args, settings, shutdown_signal()).await
}

/// Makes sure there is a `SECRET_KEY`, opens the store (which signs session
/// data with it, as Django does), creates its table, then serves the demo on `args.addr` until `shutdown` completes, letting
/// requests in flight finish.
///
/// Without `settings.secret_key`, a random key is read from (or, the first
/// time, written to) [`StoreUrl::secret_key_path`](crate::store_url::StoreUrl::secret_key_path),
/// so that restarts keep sessions valid: stored session data is signed with it. The
/// log says which file; it never shows the key.
///
/// # Errors
///
/// Inconsistent settings (a [`UsageError`]), a store that cannot be opened
/// or migrated, a key file that cannot be read or written, an address that
/// cannot be bound.
pub async fn serve(
    args: ServeArgs,
    mut settings: Settings,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    if let Some(policy) = args.outage_policy {
        settings.outage_policy = policy;
    }
    settings
        .validate()
        .map_err(|e| UsageError(format!("invalid settings: {e}")))?;
    let url = &args.store.store;
    // Usage errors before the key file below is created.
    Store::check_args(&args.store)?;
    if settings.secret_key.is_none() {
        let secret = secret_key::load_or_create(&url.secret_key_path())?;
        match secret.origin {
            Origin::Created => tracing::info!(
                path = %secret.path.display(),
                "SECRET_KEY is not set: generated a random one and saved it (restarts reuse it)"
            ),
            Origin::Reused => tracing::info!(
                path = %secret.path.display(),
                "SECRET_KEY is not set: using the one generated earlier"
            ),
        }
        settings.secret_key = Some(secret.key);
    }
    let signer = settings.signer().context("invalid settings")?;
    let store = Store::open_args(&args.store, &settings, signer).await?;
    crate::cmd::migrate::prepare(&store, url).await?;
    let location = store.location();
    match url.upkeep() {
        Upkeep::Table => {
            tracing::info!(store = %url, location = location.as_deref(), "session table ready");
        }
        Upkeep::Directory => tracing::info!(store = %url, "session directory ready"),
        Upkeep::ExpiresItself => {
            tracing::info!(store = %url, "sessions expire by the server's own TTL");
        }
        Upkeep::InProcess => tracing::info!(
            store = %url,
            "sessions live in this process's memory: they are lost when it stops"
        ),
        Upkeep::InCookie => tracing::info!(
            store = %url,
            "sessions live in the signed cookie (signed with SECRET_KEY; valid for SESSION_COOKIE_AGE)"
        ),
    }
    if !settings.cookie_secure {
        tracing::info!("SESSION_COOKIE_SECURE is off: turn it on in production (HTTPS)");
    }

    let settings_policy = settings.outage_policy;
    let app = store.app(settings).context("invalid settings")?;
    let listener = TcpListener::bind(&args.addr)
        .await
        .with_context(|| format!("cannot listen on {}", args.addr))?;
    let local = listener
        .local_addr()
        .context("cannot read the bound address")?;
    tracing::info!(
        engine = store.engine(),
        outage_policy = settings_policy.as_str(),
        "listening on http://{local}/"
    );
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
        .context("the server failed")?;
    tracing::info!("stopped");
    Ok(())
}

/// Completes on Ctrl-C (SIGINT) or, on Unix, SIGTERM.
///
/// If a handler cannot be installed, that signal is simply not awaited
/// (the process then stops the default way) and a warning is logged.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::warn!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                term.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
    tracing::info!("shutting down: finishing requests in flight");
}
