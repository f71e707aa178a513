//! `sesame migrate`: create the session table if it does not exist.

use anyhow::Context as _;

use crate::cli::StoreArgs;
use crate::store_url::Store;

/// Opens the store and creates Django's `django_session` table and its
/// index if missing; safe to run again, and on a table Django created.
///
/// On `file:///DIR` it creates the directory. On `signed-cookies:` there is
/// no table: it says so and succeeds.
///
/// # Errors
///
/// Invalid settings (a [`UsageError`](crate::cmd::UsageError)), a store
/// that cannot be opened, or DDL that fails.
pub async fn run(args: &StoreArgs) -> anyhow::Result<()> {
    let settings = crate::cmd::settings_from_env()?;
    let signer = crate::cmd::maintenance_signer(&settings);
    let store = Store::open_args(args, &settings, signer).await?;
    if !store.is_server_side() {
        println!(
            "{}: nothing to migrate: sessions live in the signed cookie, not in a table",
            args.store
        );
        return Ok(());
    }
    #[cfg(feature = "memcached")]
    if matches!(store, Store::Memcached(_)) {
        println!(
            "{}: nothing to migrate: memcached keeps no schema (and the server answers)",
            args.store
        );
        return Ok(());
    }
    store
        .migrate()
        .await
        .with_context(|| format!("cannot create the session table in {}", args.store))?;
    let what = if matches!(store, Store::File(_)) {
        "directory"
    } else {
        "table"
    };
    println!("{}: the session {what} is ready", args.store);
    Ok(())
}
