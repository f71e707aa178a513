//! `sesame clearsessions`: Django's `manage.py clearsessions`.

use anyhow::Context as _;

use crate::cli::StoreArgs;
use crate::store_url::Store;

/// Opens the store, removes every expired session and prints how many.
///
/// Stores that expire records on their own (none of the CLI's so far)
/// report 0.
///
/// # Errors
///
/// The store cannot be opened or the delete fails.
pub async fn run(args: &StoreArgs) -> anyhow::Result<()> {
    let store = Store::open(&args.store, crate::store_url::signer_for_maintenance()).await?;
    let removed = store
        .clear_expired()
        .await
        .with_context(|| format!("cannot remove expired sessions from {}", args.store))?;
    let noun = if removed == 1 { "session" } else { "sessions" };
    println!("removed {removed} expired {noun}");
    Ok(())
}
