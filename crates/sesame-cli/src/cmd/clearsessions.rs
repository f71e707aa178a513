//! `sesame clearsessions`: Django's `manage.py clearsessions`.

use anyhow::Context as _;

use crate::cli::StoreArgs;
use crate::store_url::Store;

/// Opens the store, removes every expired session and prints how many.
///
/// On `file:///DIR` it needs the project's `SECRET_KEY` (and
/// `SESSION_COOKIE_NAME`, `SESSION_COOKIE_AGE`) to read each session's own
/// expiry; without it, it warns and ages every file by its mtime, as Django
/// does with a file it cannot decode.
///
/// Stores that expire records on their own (none of the CLI's so far)
/// report 0. On `signed-cookies:` nothing is stored: it says so and succeeds,
/// as Django's `signed_cookies` `clear_expired` does nothing.
///
/// # Errors
///
/// The store cannot be opened or the delete fails.
pub async fn run(args: &StoreArgs) -> anyhow::Result<()> {
    let store = Store::open_args(args, crate::store_url::signer_for_maintenance()).await?;
    if !store.is_server_side() {
        println!(
            "{}: nothing to clear: signed-cookie sessions are stored nowhere, and each \
             expires on its own after SESSION_COOKIE_AGE",
            args.store
        );
        return Ok(());
    }
    if matches!(store, Store::File(_)) && std::env::var_os("SECRET_KEY").is_none() {
        // A file holds no expiry date: `_session_expiry` is read from the
        // signed data, which only the project's key can open.
        eprintln!(
            "warning: SECRET_KEY is not set: every session file counts as unreadable and \
             expires SESSION_COOKIE_AGE after its last write, whatever set_expiry() said"
        );
    }
    let removed = store
        .clear_expired()
        .await
        .with_context(|| format!("cannot remove expired sessions from {}", args.store))?;
    let noun = if removed == 1 { "session" } else { "sessions" };
    println!("removed {removed} expired {noun}");
    Ok(())
}
