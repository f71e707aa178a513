//! `sesame migrate`: create the session table if it does not exist.

use anyhow::Context as _;

use crate::cli::StoreArgs;
use crate::store_url::Store;

/// Opens the store and creates Django's `django_session` table and its
/// index if missing; safe to run again, and on a table Django created.
///
/// # Errors
///
/// The store cannot be opened or the DDL fails.
pub async fn run(args: &StoreArgs) -> anyhow::Result<()> {
    let store = Store::open(&args.store, crate::store_url::signer_for_maintenance()).await?;
    store
        .migrate()
        .await
        .with_context(|| format!("cannot create the session table in {}", args.store))?;
    println!("{}: the session table is ready", args.store);
    Ok(())
}
