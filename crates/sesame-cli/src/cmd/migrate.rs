//! `sesame migrate`: create the session table if it does not exist.

use anyhow::Context as _;

use crate::cli::StoreArgs;
use crate::cmd::{maintenance_signer, settings_from_env};
use crate::store_url::{Store, StoreUrl, Upkeep};

/// Opens the store and creates Django's `django_session` table and its
/// index if missing; safe to run again, and on a table Django created.
/// Prints one line saying what is ready, and where.
///
/// On `file:///DIR` it creates the directory and its lock files and checks
/// that a session file can be written there. On Redis and memcached (which
/// keep no schema and expire sessions themselves), `memory:` and
/// `signed-cookies:` there is nothing to create: it says so and succeeds.
///
/// # Errors
///
/// Invalid settings (a [`UsageError`](crate::cmd::UsageError)), a store
/// that cannot be opened, DDL that fails, or a directory that cannot be
/// created or written.
pub async fn run(args: &StoreArgs) -> anyhow::Result<()> {
    let settings = settings_from_env()?;
    let signer = maintenance_signer(&settings);
    let store = Store::open_args(args, &settings, signer).await?;
    prepare(&store, &args.store).await?;
    let url = &args.store;
    let ready = match url.upkeep() {
        Upkeep::Table => match store.location() {
            Some(location) => format!("the session table is ready in {url} ({location})"),
            None => format!("the session table is ready in {url}"),
        },
        Upkeep::Directory => format!("the session directory is ready in {url}"),
        Upkeep::ExpiresItself => format!(
            "nothing to migrate: {url} keeps no schema and expires sessions itself (and the \
             server answers)"
        ),
        Upkeep::InProcess => format!(
            "nothing to migrate: {url} keeps sessions in the memory of the process serving them"
        ),
        Upkeep::InCookie => {
            format!("nothing to migrate: {url} keeps sessions in the signed cookie, stored nowhere")
        }
    };
    match &args.cache {
        Some(cache) => println!("{ready}, behind the cache {cache}"),
        None => println!("{ready}"),
    }
    Ok(())
}

/// Creates what `store`, opened from `url`, needs: the session table, or
/// the directory and its lock files (a no-op on the other stores).
///
/// # Errors
///
/// The store's error, with a message naming the table or the directory.
pub async fn prepare(store: &Store, url: &StoreUrl) -> anyhow::Result<()> {
    store.migrate().await.with_context(|| match url {
        StoreUrl::File(dir) => format!(
            "cannot make the session directory {} ready (it must exist or be creatable, and \
             be writable)",
            dir.display()
        ),
        _ => format!("cannot create the session table in {url}"),
    })
}
