//! SQL store behaviour the conformance suite does not reach: Django's table
//! and `expire_date` layout per database, MySQL's affected-rows semantics,
//! concurrency on one SQLite file, `migrate` on a table Django created.
//!
//! PostgreSQL and MySQL tests read `SESAME_TEST_POSTGRES_URL` and
//! `SESAME_TEST_MYSQL_URL`, skip when unset, and work on fresh tables so runs
//! can overlap.

#![cfg(any(feature = "sqlite", feature = "postgres", feature = "mysql"))]
#![allow(
    clippy::unwrap_used,
    reason = "shared cases are not #[test] fns; a failed unwrap is a failed test"
)]

mod sql_support;

use serde_json::json;
use sesame::backends::{ListSessions, Record, SessionStore, Version, sessions_of_user};
use sesame::codec::SessionMap;
use sesame::{Error, SessionKey};
use time::{Duration, OffsetDateTime};

fn map(value: serde_json::Value) -> SessionMap {
    match value {
        serde_json::Value::Object(map) => map,
        other => panic!("not an object: {other}"),
    }
}

fn in_hours(h: i64) -> OffsetDateTime {
    OffsetDateTime::now_utc() + Duration::hours(h)
}

fn assert_store_traits<S: SessionStore + Clone + std::fmt::Debug + Send + Sync>() {}

/// Cases every SQL store runs on a store with a table of its own.
mod cases {
    use super::*;

    async fn counter<S: SessionStore>(store: &S, key: &SessionKey) -> i64 {
        let record = store.load(key).await.unwrap().expect("live record");
        record.data["counter"].as_i64().unwrap()
    }

    /// The live row under `key` cannot be read: `load` is `Corrupt` (not a
    /// backend error, which would be an outage), and an unconditional save,
    /// what the session layer does next, replaces it.
    ///
    /// Reading every session (a user's sessions, `sesame revoke`) counts it
    /// as unreadable and still reads the rows around it.
    pub(crate) async fn unreadable_row_is_corrupt_until_saved_over<S: ListSessions>(
        store: &S,
        key: &SessionKey,
    ) {
        let loaded = store.load(key).await;
        assert!(matches!(loaded, Err(Error::Corrupt(_))), "{loaded:?}");
        let login = map(json!({"_auth_user_id": "lister"}));
        let theirs = store
            .create(&Record::new(login, in_hours(1)))
            .await
            .unwrap()
            .key;
        let found = sessions_of_user(store, "lister").await.unwrap();
        assert_eq!(found.sessions.len(), 1, "{found:?}");
        assert_eq!(found.sessions[0].0, theirs);
        assert_eq!((found.checked, found.unreadable), (1, 1), "{found:?}");
        store.delete(&theirs).await.unwrap();
        store
            .save(key, &Record::new(map(json!({"fresh": 1})), in_hours(1)))
            .await
            .unwrap();
        let repaired = store.load(key).await.unwrap().unwrap();
        assert_eq!(*repaired.data, map(json!({"fresh": 1})));
    }

    /// A stale version is a conflict while the row lives, missing once it is
    /// gone; a save never re-creates the row.
    pub(crate) async fn conflict_and_missing_are_told_apart<S: SessionStore>(store: &S) {
        let saved = store
            .create(&Record::new(map(json!({"n": 0})), in_hours(1)))
            .await
            .unwrap();
        let v1 = store.load(&saved.key).await.unwrap().unwrap();
        assert_eq!(v1.version.as_ref(), Some(&saved.version));

        let mut next = v1.clone();
        next.data = map(json!({"n": 1})).into();
        let v2 = store.save(&saved.key, &next).await.unwrap();

        let mut stale = v1.clone();
        stale.data = map(json!({"n": 2})).into();
        assert!(matches!(
            store.save(&saved.key, &stale).await,
            Err(Error::Conflict)
        ));
        // A version that is not even text cannot match.
        let mut binary = v1.clone();
        binary.version = Some(Version::new(vec![0xff, 0xfe]));
        assert!(matches!(
            store.save(&saved.key, &binary).await,
            Err(Error::Conflict)
        ));
        assert_eq!(
            store.load(&saved.key).await.unwrap().unwrap().data.as_ref(),
            &map(json!({"n": 1}))
        );

        store.delete(&saved.key).await.unwrap();
        let mut current = next.clone();
        current.version = Some(v2.version);
        assert!(matches!(
            store.save(&saved.key, &current).await,
            Err(Error::Missing)
        ));
        current.version = None;
        assert!(matches!(
            store.save(&saved.key, &current).await,
            Err(Error::Missing)
        ));
        assert!(store.load(&saved.key).await.unwrap().is_none());
        store.delete(&saved.key).await.unwrap();
    }

    /// Writing exactly what is stored is a success, not a missing row
    /// (MySQL counts *changed* rows unless the client asks for found rows).
    pub(crate) async fn identical_save_is_not_missing<S: SessionStore>(store: &S) {
        let saved = store
            .create(&Record::new(map(json!({"same": true})), in_hours(1)))
            .await
            .unwrap();
        let loaded = store.load(&saved.key).await.unwrap().unwrap();
        let again = store
            .save(&saved.key, &loaded)
            .await
            .expect("identical CAS save");
        assert_eq!(Some(&again.version), loaded.version.as_ref());

        let mut unconditional = loaded.clone();
        unconditional.version = None;
        store
            .save(&saved.key, &unconditional)
            .await
            .expect("identical unconditional save");
        store
            .touch(&saved.key, loaded.expires_at)
            .await
            .expect("touch to the same expiry");
    }

    /// Expired rows are invisible to every operation but `clear_expired`,
    /// which removes exactly them.
    pub(crate) async fn expired_rows_are_invisible_and_cleared<S: SessionStore>(store: &S) {
        let past = OffsetDateTime::now_utc() - Duration::minutes(5);
        let expired = store
            .create(&Record::new(map(json!({"old": 1})), past))
            .await
            .unwrap();
        let live = store
            .create(&Record::new(map(json!({"new": 1})), in_hours(1)))
            .await
            .unwrap();

        assert!(store.load(&expired.key).await.unwrap().is_none());
        assert!(!store.exists(&expired.key).await.unwrap());
        let mut record = Record::new(map(json!({"old": 2})), in_hours(1));
        record.version = Some(expired.version.clone());
        assert!(matches!(
            store.save(&expired.key, &record).await,
            Err(Error::Missing)
        ));
        assert!(matches!(
            store.touch(&expired.key, in_hours(2)).await,
            Err(Error::Missing)
        ));

        assert_eq!(store.clear_expired().await.unwrap(), 1);
        assert_eq!(store.clear_expired().await.unwrap(), 0);
        assert!(store.exists(&live.key).await.unwrap());
    }

    /// Expiry survives a round trip to the microsecond (nanoseconds are cut).
    pub(crate) async fn expiry_round_trips_to_the_microsecond<S: SessionStore>(store: &S) {
        let at = time::macros::datetime!(2099-03-04 05:06:07.123_456_789 UTC);
        let saved = store
            .create(&Record::new(SessionMap::new(), at))
            .await
            .unwrap();
        let loaded = store.load(&saved.key).await.unwrap().unwrap();
        assert_eq!(
            loaded.expires_at,
            time::macros::datetime!(2099-03-04 05:06:07.123_456 UTC)
        );
        store.touch(&saved.key, at + Duration::DAY).await.unwrap();
        let loaded = store.load(&saved.key).await.unwrap().unwrap();
        assert_eq!(
            loaded.expires_at,
            time::macros::datetime!(2099-03-05 05:06:07.123_456 UTC)
        );
        store.delete(&saved.key).await.unwrap();
    }

    /// The counter workload: `tasks` requests at once on their own sessions,
    /// then on one shared session with compare-and-swap retries. No error,
    /// no lost increment.
    pub(crate) async fn concurrent_counters_lose_nothing<S: SessionStore + Clone>(
        store: &S,
        tasks: usize,
        rounds: i64,
    ) {
        let shared = store
            .create(&Record::new(map(json!({"counter": 0})), in_hours(1)))
            .await
            .unwrap()
            .key;
        let mut handles = Vec::new();
        for _ in 0..tasks {
            let store = store.clone();
            let shared = shared.clone();
            handles.push(tokio::spawn(async move {
                let own = store
                    .create(&Record::new(map(json!({"counter": 0})), in_hours(1)))
                    .await
                    .unwrap()
                    .key;
                for key in [own.clone(), shared] {
                    for _ in 0..rounds {
                        loop {
                            let mut record = store.load(&key).await.unwrap().unwrap();
                            let n = record.data["counter"].as_i64().unwrap();
                            record.data_mut().insert("counter".into(), json!(n + 1));
                            match store.save(&key, &record).await {
                                Ok(_) => break,
                                Err(Error::Conflict) => {}
                                Err(e) => panic!("save failed: {e:?}"),
                            }
                        }
                    }
                }
                own
            }));
        }
        for handle in handles {
            let own = handle.await.unwrap();
            assert_eq!(counter(store, &own).await, rounds);
        }
        let total = i64::try_from(tasks).unwrap() * rounds;
        assert_eq!(counter(store, &shared).await, total);
    }
}

#[cfg(feature = "sqlite")]
mod sqlite {
    use std::path::{Path, PathBuf};

    use rusqlite::Connection;
    use sesame::backends::SqliteStore;

    use super::*;

    /// A database file removed (with its WAL files) when dropped.
    struct TempDb(PathBuf);

    impl TempDb {
        fn new() -> Self {
            let name = format!("sesame-test-{}.sqlite3", SessionKey::generate().as_str());
            Self(std::env::temp_dir().join(name))
        }

        fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for TempDb {
        fn drop(&mut self) {
            for suffix in ["", "-wal", "-shm"] {
                let mut path = self.0.clone().into_os_string();
                path.push(suffix);
                let _ = std::fs::remove_file(path);
            }
        }
    }

    async fn file_store(db: &TempDb) -> SqliteStore {
        let store = SqliteStore::open(db.path(), sql_support::signer()).unwrap();
        store.migrate().await.unwrap();
        store
    }

    /// Django's DDL for SQLite, verbatim (FORMAT.md §4).
    const DJANGO_DDL: &str = r#"CREATE TABLE "django_session" ("session_key" varchar(40) NOT NULL PRIMARY KEY, "session_data" text NOT NULL, "expire_date" datetime NOT NULL);
CREATE INDEX "django_session_expire_date_a5c62663" ON "django_session" ("expire_date");"#;

    #[test]
    fn store_is_send_sync_clone_debug() {
        assert_store_traits::<SqliteStore>();
    }

    #[tokio::test]
    async fn conflict_and_missing_are_told_apart() {
        let db = TempDb::new();
        cases::conflict_and_missing_are_told_apart(&file_store(&db).await).await;
    }

    #[tokio::test]
    async fn identical_save_is_not_missing() {
        let db = TempDb::new();
        cases::identical_save_is_not_missing(&file_store(&db).await).await;
    }

    #[tokio::test]
    async fn expired_rows_are_invisible_and_cleared() {
        let db = TempDb::new();
        cases::expired_rows_are_invisible_and_cleared(&file_store(&db).await).await;
    }

    #[tokio::test]
    async fn expiry_round_trips_to_the_microsecond() {
        let db = TempDb::new();
        cases::expiry_round_trips_to_the_microsecond(&file_store(&db).await).await;
    }

    #[tokio::test]
    async fn in_memory_store_keeps_the_rules() {
        let store = SqliteStore::connect("sqlite::memory:", sql_support::signer())
            .await
            .unwrap();
        store.migrate().await.unwrap();
        cases::conflict_and_missing_are_told_apart(&store).await;
        cases::expired_rows_are_invisible_and_cleared(&store).await;
        cases::concurrent_counters_lose_nothing(&store, 8, 5).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sixty_four_concurrent_writers_on_one_file_see_no_errors() {
        let db = TempDb::new();
        let store = file_store(&db).await;
        cases::concurrent_counters_lose_nothing(&store, 64, 10).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_stores_on_one_file_see_each_others_writes() {
        // Two processes (or a Django app and us) on one file: each has its
        // own writer; SQLite's lock and the busy timeout serialise them.
        let db = TempDb::new();
        let a = file_store(&db).await;
        let b = SqliteStore::open(db.path(), sql_support::signer()).unwrap();
        let saved = a
            .create(&Record::new(map(json!({"counter": 0})), in_hours(1)))
            .await
            .unwrap();
        let mut handles = Vec::new();
        for store in [a.clone(), b.clone(), a, b] {
            let saved = saved.clone();
            handles.push(tokio::spawn(async move {
                for _ in 0..25 {
                    loop {
                        let mut record = store.load(&saved.key).await.unwrap().unwrap();
                        let n = record.data["counter"].as_i64().unwrap();
                        record.data_mut().insert("counter".into(), json!(n + 1));
                        match store.save(&saved.key, &record).await {
                            Ok(_) => break,
                            Err(Error::Conflict) => {}
                            Err(e) => panic!("save failed: {e:?}"),
                        }
                    }
                }
                store
            }));
        }
        let mut last = None;
        for handle in handles {
            last = Some(handle.await.unwrap());
        }
        let record = last.unwrap().load(&saved.key).await.unwrap().unwrap();
        assert_eq!(record.data["counter"], json!(100));
    }

    #[tokio::test]
    async fn expire_date_is_stored_as_django_text() {
        let db = TempDb::new();
        let store = file_store(&db).await;
        let with_micros = store
            .create(&Record::new(
                SessionMap::new(),
                time::macros::datetime!(2099-12-09 17:33:41.313_745_5 +01:00),
            ))
            .await
            .unwrap();
        let whole = store
            .create(&Record::new(
                SessionMap::new(),
                time::macros::datetime!(2099-11-28 22:13:20 UTC),
            ))
            .await
            .unwrap();

        let conn = Connection::open(db.path()).unwrap();
        let stored = |key: &SessionKey| -> (String, String) {
            conn.query_row(
                "SELECT expire_date, typeof(expire_date) FROM django_session WHERE session_key = ?1",
                [key.as_str()],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .unwrap()
        };
        assert_eq!(
            stored(&with_micros.key),
            ("2099-12-09 16:33:41.313745".to_owned(), "text".to_owned())
        );
        assert_eq!(
            stored(&whole.key),
            ("2099-11-28 22:13:20".to_owned(), "text".to_owned())
        );
        let data: String = conn
            .query_row(
                "SELECT session_data FROM django_session WHERE session_key = ?1",
                [whole.key.as_str()],
                |row| row.get(0),
            )
            .unwrap();
        // Django's encoding of an empty session: `e30` is base64 of `{}`.
        assert!(data.starts_with("e30:"), "{data}");
        assert_eq!(
            sql_support::signer()
                .loads_session(
                    &data,
                    sesame::codec::DB_SALT,
                    None,
                    time::OffsetDateTime::now_utc()
                )
                .unwrap(),
            SessionMap::new()
        );
    }

    #[tokio::test]
    async fn table_made_with_django_ddl_is_used_unchanged() {
        let db = TempDb::new();
        let conn = Connection::open(db.path()).unwrap();
        conn.execute_batch(DJANGO_DDL).unwrap();
        // Rows as Django writes them: one live (no microseconds), one expired.
        conn.execute(
            "INSERT INTO django_session VALUES ('djangolivekey000000000000000000a', ?1, '2099-01-01 00:00:00')",
            [sql_support::DJANGO_SESSION_DATA],
        )
        .unwrap();
        conn.execute(
            "INSERT INTO django_session VALUES ('djangooldkey00000000000000000000', '{}', '2001-01-01 00:00:00.5')",
            [],
        )
        .unwrap();
        let schema = |conn: &Connection| -> Vec<String> {
            let mut stmt = conn
                .prepare("SELECT sql FROM sqlite_master WHERE sql IS NOT NULL ORDER BY name")
                .unwrap();
            stmt.query_map([], |row| row.get(0))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap()
        };
        let before = schema(&conn);

        let store = SqliteStore::open(db.path(), sql_support::signer()).unwrap();
        store.migrate().await.unwrap();
        store.migrate().await.unwrap();
        assert_eq!(schema(&conn), before, "migrate changed Django's schema");

        let live: SessionKey = "djangolivekey000000000000000000a".parse().unwrap();
        let old: SessionKey = "djangooldkey00000000000000000000".parse().unwrap();
        let record = store.load(&live).await.unwrap().unwrap();
        assert_eq!(
            *record.data,
            map(json!({"counter": 1})),
            "Django's row reads as Django wrote it"
        );
        assert_eq!(
            record.expires_at,
            time::macros::datetime!(2099-01-01 00:00:00 UTC)
        );
        assert!(store.load(&old).await.unwrap().is_none());
        assert_eq!(store.clear_expired().await.unwrap(), 1);
    }

    #[tokio::test]
    async fn migrate_creates_djangos_schema() {
        let db = TempDb::new();
        let store = file_store(&db).await;
        store.migrate().await.unwrap();

        let reference = Connection::open_in_memory().unwrap();
        reference.execute_batch(DJANGO_DDL).unwrap();
        let columns = |conn: &Connection| -> Vec<(String, String, bool, bool)> {
            let mut stmt = conn.prepare("PRAGMA table_info(django_session)").unwrap();
            stmt.query_map([], |row| {
                Ok((
                    row.get(1)?,
                    row.get(2)?,
                    row.get(3)?,
                    row.get::<_, i64>(5)? > 0,
                ))
            })
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
        };
        let indexes = |conn: &Connection| -> Vec<String> {
            let mut stmt = conn
                .prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'django_session' ORDER BY name")
                .unwrap();
            stmt.query_map([], |row| row.get(0))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap()
        };
        let ours = Connection::open(db.path()).unwrap();
        assert_eq!(columns(&ours), columns(&reference));
        assert_eq!(indexes(&ours), indexes(&reference));
        let mode: String = ours
            .query_row("PRAGMA journal_mode", [], |row| row.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
    }

    #[tokio::test]
    async fn corrupt_session_data_is_a_corrupt_error() {
        let db = TempDb::new();
        let store = file_store(&db).await;
        let conn = Connection::open(db.path()).unwrap();
        conn.execute(
            "INSERT INTO django_session VALUES ('corruptkey000000', 'not json at all', '2099-01-01 00:00:00')",
            [],
        )
        .unwrap();
        let key: SessionKey = "corruptkey000000".parse().unwrap();
        cases::unreadable_row_is_corrupt_until_saved_over(&store, &key).await;
    }

    /// Keys another app wrote as text that is not UTF-8, or as a blob, are
    /// skipped by a listing that goes on past them: every session in the
    /// pages after one is still listed (`sesame revoke` would otherwise miss
    /// them and succeed).
    #[tokio::test]
    async fn listing_goes_on_past_keys_that_are_not_utf8_text() {
        use futures_util::TryStreamExt as _;

        let db = TempDb::new();
        let store = file_store(&db).await;
        let conn = Connection::open(db.path()).unwrap();
        // `0\xff…` sorts before almost every random key; the blob after all of them.
        for key in ["CAST(X'30FF30' AS TEXT)", "X'00FF'"] {
            conn.execute(
                &format!("INSERT INTO django_session VALUES ({key}, 'x', '2999-01-01 00:00:00')"),
                [],
            )
            .unwrap();
        }
        let mut created = Vec::new();
        for _ in 0..520 {
            let login = map(json!({"_auth_user_id": "many"}));
            created.push(
                store
                    .create(&Record::new(login, in_hours(1)))
                    .await
                    .unwrap()
                    .key,
            );
        }
        created.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        let mut keys: Vec<SessionKey> = store.session_keys().try_collect().await.unwrap();
        keys.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        assert_eq!(keys.len(), created.len(), "sessions listed");
        assert!(keys == created, "the sessions created, and only those");
        let found = sessions_of_user(&store, "many").await.unwrap();
        assert_eq!(found.sessions.len(), 520);
        assert_eq!((found.checked, found.unreadable), (520, 0));
    }

    #[tokio::test]
    async fn rows_other_apps_wrote_are_corrupt_or_expired_never_a_backend_error() {
        // SQLite stores any type in any column and compares `expire_date`
        // with now as text (numbers sort first, blobs last), as Django does.
        let db = TempDb::new();
        let store = file_store(&db).await;
        let conn = Connection::open(db.path()).unwrap();
        let insert = |data: &str, expire: &str| -> SessionKey {
            let key = SessionKey::generate();
            conn.execute(
                &format!("INSERT INTO django_session VALUES (?1, {data}, {expire})"),
                [key.as_str()],
            )
            .unwrap();
            key
        };
        let django = format!("'{}'", sql_support::DJANGO_SESSION_DATA);
        let unreadable = [
            insert(&django, "'tomorrow'"),
            insert(&django, "'2099-01-01T00:00:00Z'"),
            insert(&django, "'2099-02-30 00:00:00'"),
            insert(&django, "X'32303939'"),
            insert(&django, "CAST(X'32303939FF' AS TEXT)"),
            insert("X'00'", "'2099-01-01 00:00:00'"),
        ];
        let expired = [
            insert(&django, "'10000-01-01 00:00:00'"),
            insert(&django, "4102444800"),
        ];
        let last = insert(&django, "'9999-12-31 23:59:59.999999'");

        for key in &unreadable {
            let loaded = store.load(key).await;
            assert!(matches!(loaded, Err(Error::Corrupt(_))), "{loaded:?}");
            assert!(store.exists(key).await.unwrap(), "the row is live");
        }
        for key in &expired {
            assert!(store.load(key).await.unwrap().is_none());
            assert!(!store.exists(key).await.unwrap());
        }
        assert_eq!(
            store.load(&last).await.unwrap().unwrap().expires_at,
            time::macros::datetime!(9999-12-31 23:59:59.999_999 UTC)
        );
        assert_eq!(store.clear_expired().await.unwrap(), 2);

        // What the session layer does next: an unconditional save repairs
        // the row.
        for key in &unreadable {
            store
                .save(key, &Record::new(map(json!({"fresh": 1})), in_hours(1)))
                .await
                .unwrap();
            let record = store.load(key).await.unwrap().unwrap();
            assert_eq!(*record.data, map(json!({"fresh": 1})));
        }
    }

    #[tokio::test]
    async fn custom_table_is_used() {
        let db = TempDb::new();
        let store = SqliteStore::open(db.path(), sql_support::signer())
            .unwrap()
            .with_table("my \"sessions\"");
        assert_eq!(store.table(), "my \"sessions\"");
        store.migrate().await.unwrap();
        cases::conflict_and_missing_are_told_apart(&store).await;
        let conn = Connection::open(db.path()).unwrap();
        let n: i64 = conn
            .query_row("SELECT count(*) FROM \"my \"\"sessions\"\"\"", [], |row| {
                row.get(0)
            })
            .unwrap();
        assert_eq!(n, 0);
    }

    #[tokio::test]
    async fn connect_accepts_sqlite_urls() {
        let db = TempDb::new();
        let url = format!("sqlite://{}?mode=rwc", db.path().display());
        let store = SqliteStore::connect(&url, sql_support::signer())
            .await
            .unwrap();
        store.migrate().await.unwrap();
        assert!(db.path().exists());
        assert!(format!("{store:?}").contains("SqliteStore"));
        assert!(
            SqliteStore::connect("sqlite://", sql_support::signer())
                .await
                .is_err()
        );
    }

    #[tokio::test]
    async fn memory_path_is_one_shared_database() {
        // Readers on separate ":memory:" connections would each see an
        // empty database of their own.
        let store = SqliteStore::open(":memory:", sql_support::signer()).unwrap();
        store.migrate().await.unwrap();
        let saved = store
            .create(&Record::new(SessionMap::new(), in_hours(1)))
            .await
            .unwrap();
        for _ in 0..8 {
            assert!(store.exists(&saved.key).await.unwrap());
        }
    }

    #[test]
    fn store_works_outside_a_tokio_runtime() {
        let store = SqliteStore::open_in_memory(sql_support::signer()).unwrap();
        block_on(async {
            store.migrate().await.unwrap();
            let saved = store
                .create(&Record::new(SessionMap::new(), in_hours(1)))
                .await
                .unwrap();
            assert!(store.exists(&saved.key).await.unwrap());
        });
    }

    /// A minimal executor: polls on this thread, parking between wake-ups.
    fn block_on<F: std::future::Future<Output = ()>>(future: F) {
        use std::sync::Arc;
        use std::task::{Context, Poll, Wake};

        struct Unpark(std::thread::Thread);
        impl Wake for Unpark {
            fn wake(self: Arc<Self>) {
                self.0.unpark();
            }
        }

        let waker = Arc::new(Unpark(std::thread::current())).into();
        let mut cx = Context::from_waker(&waker);
        let mut future = std::pin::pin!(future);
        while future.as_mut().poll(&mut cx) == Poll::Pending {
            std::thread::park();
        }
    }
}

#[cfg(feature = "postgres")]
mod postgres {
    use std::str::FromStr;

    use sesame::backends::PostgresStore;
    use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

    use super::sql_support::{self, postgres::*};
    use super::*;

    /// Django's DDL for PostgreSQL, verbatim (FORMAT.md §4).
    const DJANGO_DDL: &str = r#"CREATE TABLE "django_session" ("session_key" varchar(40) NOT NULL PRIMARY KEY, "session_data" text NOT NULL, "expire_date" timestamp with time zone NOT NULL);
CREATE INDEX "django_session_session_key_c0390e0f_like" ON "django_session" ("session_key" varchar_pattern_ops);
CREATE INDEX "django_session_expire_date_a5c62663" ON "django_session" ("expire_date");"#;

    #[test]
    fn store_is_send_sync_clone_debug() {
        assert_store_traits::<PostgresStore>();
    }

    #[tokio::test]
    async fn debug_never_shows_the_password() {
        let pool = PgPoolOptions::new()
            .connect_lazy("postgres://app:hunter2@127.0.0.1:1/app")
            .unwrap();
        let shown = format!("{:?}", PostgresStore::new(pool, sql_support::signer()));
        assert!(!shown.contains("hunter2"), "{shown}");
    }

    #[tokio::test]
    async fn conflict_and_missing_are_told_apart() {
        let Some(store) = store().await else { return };
        cases::conflict_and_missing_are_told_apart(&store).await;
        drop_table(&store).await;
    }

    #[tokio::test]
    async fn identical_save_is_not_missing() {
        let Some(store) = store().await else { return };
        cases::identical_save_is_not_missing(&store).await;
        drop_table(&store).await;
    }

    #[tokio::test]
    async fn expired_rows_are_invisible_and_cleared() {
        let Some(store) = store().await else { return };
        cases::expired_rows_are_invisible_and_cleared(&store).await;
        drop_table(&store).await;
    }

    #[tokio::test]
    async fn expiry_round_trips_to_the_microsecond() {
        let Some(store) = store().await else { return };
        cases::expiry_round_trips_to_the_microsecond(&store).await;
        drop_table(&store).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_counters_lose_nothing() {
        let Some(store) = store().await else { return };
        cases::concurrent_counters_lose_nothing(&store, 16, 5).await;
        drop_table(&store).await;
    }

    #[tokio::test]
    async fn migrate_is_idempotent() {
        let Some(store) = store().await else { return };
        store.migrate().await.unwrap();
        store.migrate().await.unwrap();
        drop_table(&store).await;
    }

    /// Inserts a row as another app (or an admin) would, with Django's
    /// `session_data` and `expire` cast to `timestamptz` by the server.
    async fn insert_raw(store: &PostgresStore, expire: &str) -> SessionKey {
        let key = SessionKey::generate();
        sqlx::query(&format!(
            "INSERT INTO \"{}\" VALUES ($1, $2, $3::timestamptz)",
            store.table()
        ))
        .bind(key.as_str())
        .bind(sql_support::DJANGO_SESSION_DATA)
        .bind(expire)
        .execute(store.pool())
        .await
        .unwrap();
        key
    }

    #[tokio::test]
    async fn expire_dates_past_year_9999_load_clamped_and_minus_infinity_is_expired() {
        // `timestamptz` holds 'infinity' (an admin's "never expires") and
        // years to 294276; a Rust date stops at 9999. Loading once panicked.
        let Some(store) = store().await else { return };
        let infinity = insert_raw(&store, "infinity").await;
        let far = insert_raw(&store, "12000-06-01 00:00:00+00").await;
        let minus_infinity = insert_raw(&store, "-infinity").await;

        for key in [&infinity, &far] {
            let record = store.load(key).await.unwrap().expect("a live row");
            assert_eq!(*record.data, map(json!({"counter": 1})));
            assert_eq!(
                record.expires_at,
                time::macros::datetime!(9999-12-31 23:59:59.999_999 UTC)
            );
            assert!(store.exists(key).await.unwrap());
        }
        assert!(store.load(&minus_infinity).await.unwrap().is_none());
        assert!(!store.exists(&minus_infinity).await.unwrap());
        assert!(matches!(
            store.touch(&minus_infinity, in_hours(1)).await,
            Err(Error::Missing)
        ));
        assert_eq!(store.clear_expired().await.unwrap(), 1, "only -infinity");

        // A save (guarded by the version load gave) and a touch write real
        // dates.
        let mut record = store.load(&infinity).await.unwrap().unwrap();
        record.expires_at = in_hours(1);
        store.save(&infinity, &record).await.unwrap();
        store.touch(&far, in_hours(2)).await.unwrap();
        for key in [&infinity, &far] {
            let at = store.load(key).await.unwrap().unwrap().expires_at;
            assert!(at <= in_hours(2), "{at}");
        }
        drop_table(&store).await;
    }

    #[tokio::test]
    async fn session_data_that_is_not_utf8_is_corrupt_not_an_outage() {
        // A `SQL_ASCII` database stores and returns any bytes as text: a row
        // another app wrote there need not be UTF-8. It is unreadable data
        // (an empty session, repaired by the next save), not a store outage.
        let Some(url) = sql_support::env_url("postgres") else {
            return;
        };
        let admin = PgPoolOptions::new()
            .max_connections(1)
            .connect(&url)
            .await
            .unwrap();
        let db = sql_support::fresh_name();
        sqlx::raw_sql(&format!(
            "CREATE DATABASE \"{db}\" ENCODING 'SQL_ASCII' LC_COLLATE 'C' LC_CTYPE 'C' \
             TEMPLATE template0"
        ))
        .execute(&admin)
        .await
        .unwrap();
        let options = PgConnectOptions::from_str(&url).unwrap().database(&db);
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .connect_with(options)
            .await
            .unwrap();
        let store = PostgresStore::new(pool.clone(), sql_support::signer());
        store.migrate().await.unwrap();
        let key = SessionKey::generate();
        sqlx::query(&format!(
            "INSERT INTO \"{}\" VALUES ($1, E'eyJ\\377\\376', now() + interval '1 hour')",
            store.table()
        ))
        .bind(key.as_str())
        .execute(&pool)
        .await
        .unwrap();

        cases::unreadable_row_is_corrupt_until_saved_over(&store, &key).await;

        pool.close().await;
        sqlx::raw_sql(&format!("DROP DATABASE \"{db}\""))
            .execute(&admin)
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn table_made_with_django_ddl_is_used_unchanged() {
        let Some(url) = sql_support::env_url("postgres") else {
            return;
        };
        // A schema of our own, so the table can have Django's exact name.
        let schema = sql_support::fresh_name();
        let admin = PgPoolOptions::new()
            .max_connections(1)
            .connect(&url)
            .await
            .unwrap();
        sqlx::raw_sql(&format!("CREATE SCHEMA \"{schema}\""))
            .execute(&admin)
            .await
            .unwrap();
        let options = PgConnectOptions::from_str(&url)
            .unwrap()
            .options([("search_path", schema.as_str())]);
        let pool = PgPoolOptions::new()
            .max_connections(2)
            .connect_with(options)
            .await
            .unwrap();
        sqlx::raw_sql(DJANGO_DDL).execute(&pool).await.unwrap();
        let schema_of = |pool| async move {
            let rows: Vec<(String, String)> = sqlx::query_as(
                "SELECT column_name::text, data_type::text FROM information_schema.columns \
                 WHERE table_schema = current_schema() AND table_name = 'django_session' \
                 ORDER BY column_name",
            )
            .fetch_all(pool)
            .await
            .unwrap();
            let indexes: Vec<String> = sqlx::query_scalar(
                "SELECT indexdef::text FROM pg_indexes \
                 WHERE schemaname = current_schema() AND tablename = 'django_session' \
                 ORDER BY indexname",
            )
            .fetch_all(pool)
            .await
            .unwrap();
            (rows, indexes)
        };
        let before = schema_of(&pool).await;
        assert_eq!(before.1.len(), 3);

        // A row as Django writes it.
        sqlx::query("INSERT INTO django_session VALUES ('djangolivekey000000000000000000a', $1, '2099-01-01 00:00:00+00')")
            .bind(sql_support::DJANGO_SESSION_DATA)
            .execute(&pool)
            .await
            .unwrap();

        let store = PostgresStore::new(pool.clone(), sql_support::signer());
        store.migrate().await.unwrap();
        assert_eq!(
            schema_of(&pool).await,
            before,
            "migrate changed Django's schema"
        );
        let live: SessionKey = "djangolivekey000000000000000000a".parse().unwrap();
        let record = store.load(&live).await.unwrap().unwrap();
        assert_eq!(
            *record.data,
            map(json!({"counter": 1})),
            "Django's row reads as Django wrote it"
        );
        assert_eq!(
            record.expires_at,
            time::macros::datetime!(2099-01-01 00:00:00 UTC)
        );
        cases::conflict_and_missing_are_told_apart(&store).await;

        // And migrate on an empty schema makes the same schema.
        sqlx::raw_sql("DROP TABLE django_session")
            .execute(&pool)
            .await
            .unwrap();
        store.migrate().await.unwrap();
        assert_eq!(
            schema_of(&pool).await,
            before,
            "migrate made another schema"
        );

        pool.close().await;
        sqlx::raw_sql(&format!("DROP SCHEMA \"{schema}\" CASCADE"))
            .execute(&admin)
            .await
            .unwrap();
    }
}

#[cfg(feature = "mysql")]
mod mysql {
    use std::str::FromStr;

    use sesame::backends::MySqlStore;
    use sqlx::Connection as _;
    use sqlx::mysql::{MySqlConnectOptions, MySqlConnection, MySqlPoolOptions};

    use super::sql_support::{self, mysql::*};
    use super::*;

    /// Django's DDL for MySQL and MariaDB (`sqlmigrate sessions 0001`).
    const DJANGO_DDL: &str = "CREATE TABLE `django_session` (`session_key` varchar(40) NOT NULL PRIMARY KEY, `session_data` longtext NOT NULL, `expire_date` datetime(6) NOT NULL);
CREATE INDEX `django_session_expire_date_a5c62663` ON `django_session` (`expire_date`);";

    #[test]
    fn store_is_send_sync_clone_debug() {
        assert_store_traits::<MySqlStore>();
    }

    #[tokio::test]
    async fn debug_never_shows_the_password() {
        let pool = MySqlPoolOptions::new()
            .connect_lazy("mysql://app:hunter2@127.0.0.1:1/app")
            .unwrap();
        let shown = format!("{:?}", MySqlStore::new(pool, sql_support::signer()));
        assert!(!shown.contains("hunter2"), "{shown}");
    }

    #[tokio::test]
    async fn conflict_and_missing_are_told_apart() {
        let Some(store) = store().await else { return };
        cases::conflict_and_missing_are_told_apart(&store).await;
        drop_table(&store).await;
    }

    #[tokio::test]
    async fn identical_save_is_not_missing() {
        let Some(store) = store().await else { return };
        cases::identical_save_is_not_missing(&store).await;
        drop_table(&store).await;
    }

    #[tokio::test]
    async fn expired_rows_are_invisible_and_cleared() {
        let Some(store) = store().await else { return };
        cases::expired_rows_are_invisible_and_cleared(&store).await;
        drop_table(&store).await;
    }

    #[tokio::test]
    async fn expiry_round_trips_to_the_microsecond() {
        let Some(store) = store().await else { return };
        cases::expiry_round_trips_to_the_microsecond(&store).await;
        drop_table(&store).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_counters_lose_nothing() {
        let Some(store) = store().await else { return };
        cases::concurrent_counters_lose_nothing(&store, 16, 5).await;
        drop_table(&store).await;
    }

    #[tokio::test]
    async fn migrate_is_idempotent() {
        let Some(store) = store().await else { return };
        store.migrate().await.unwrap();
        store.migrate().await.unwrap();
        drop_table(&store).await;
    }

    #[tokio::test]
    async fn version_check_is_byte_exact() {
        // MySQL's default collations compare case-insensitively; a version
        // that differs from the stored data only in case must still conflict.
        let Some(store) = store().await else { return };
        let saved = store
            .create(&Record::new(map(json!({"a": "x"})), in_hours(1)))
            .await
            .unwrap();
        let mut record = store.load(&saved.key).await.unwrap().unwrap();
        let stored = record
            .version
            .as_ref()
            .unwrap()
            .as_str()
            .unwrap()
            .to_owned();
        record.version = Some(Version::new(stored.to_uppercase()));
        assert!(matches!(
            store.save(&saved.key, &record).await,
            Err(Error::Conflict)
        ));
        record.version = Some(Version::new(format!("{stored} ")));
        assert!(matches!(
            store.save(&saved.key, &record).await,
            Err(Error::Conflict)
        ));
        drop_table(&store).await;
    }

    #[tokio::test]
    async fn expire_date_ignores_the_connection_time_zone() {
        // datetime(6) holds UTC wall-clock time; a pool whose sessions run in
        // another time zone must read and write the same instants.
        let Some(url) = sql_support::env_url("mysql") else {
            return;
        };
        let Some(store) = store().await else { return };
        let options = MySqlConnectOptions::from_str(&url)
            .unwrap()
            .timezone(Some("+05:00".to_owned()));
        let shifted = MySqlStore::new(
            MySqlPoolOptions::new()
                .max_connections(1)
                .connect_with(options)
                .await
                .unwrap(),
            sql_support::signer(),
        )
        .with_table(store.table());
        let at = time::macros::datetime!(2099-06-01 12:00:00.25 UTC);
        let saved = shifted
            .create(&Record::new(SessionMap::new(), at))
            .await
            .unwrap();
        assert_eq!(
            store.load(&saved.key).await.unwrap().unwrap().expires_at,
            at
        );
        assert_eq!(
            shifted.load(&saved.key).await.unwrap().unwrap().expires_at,
            at
        );
        let raw: String = sqlx::query_scalar(&format!(
            "SELECT CAST(expire_date AS CHAR) FROM `{}` WHERE session_key = ?",
            store.table()
        ))
        .bind(saved.key.as_str())
        .fetch_one(store.pool())
        .await
        .unwrap();
        assert_eq!(raw, "2099-06-01 12:00:00.250000");
        // A record expired five minutes ago is expired in every time zone.
        let past = shifted
            .create(&Record::new(
                SessionMap::new(),
                OffsetDateTime::now_utc() - Duration::minutes(5),
            ))
            .await
            .unwrap();
        assert!(!shifted.exists(&past.key).await.unwrap());
        drop_table(&store).await;
    }

    #[tokio::test]
    async fn session_data_that_is_not_utf8_is_corrupt_not_an_outage() {
        // A text column never returns invalid UTF-8 (MariaDB refuses or
        // replaces such bytes on insert), but a table altered to a binary
        // type returns whatever was stored.
        let Some(store) = store().await else { return };
        sqlx::raw_sql(&format!(
            "ALTER TABLE `{}` MODIFY `session_data` longblob NOT NULL",
            store.table()
        ))
        .execute(store.pool())
        .await
        .unwrap();
        let key = SessionKey::generate();
        sqlx::query(&format!(
            "INSERT INTO `{}` VALUES (?, X'65794aFFFE', NOW(6) + INTERVAL 1 HOUR)",
            store.table()
        ))
        .bind(key.as_str())
        .execute(store.pool())
        .await
        .unwrap();

        cases::unreadable_row_is_corrupt_until_saved_over(&store, &key).await;
        drop_table(&store).await;
    }

    #[tokio::test]
    async fn dates_that_do_not_exist_are_corrupt_and_zero_dates_expired() {
        let Some(url) = sql_support::env_url("mysql") else {
            return;
        };
        let Some(store) = store().await else { return };
        // Another app whose `sql_mode` lets it store dates that do not exist
        // (MariaDB's default already allows day 0).
        let mut other = MySqlConnection::connect(&url).await.unwrap();
        sqlx::raw_sql("SET SESSION sql_mode = 'ALLOW_INVALID_DATES'")
            .execute(&mut other)
            .await
            .unwrap();
        let mut keys = Vec::new();
        for expire in [
            "2099-02-30 12:00:00",
            "2099-00-00 00:00:00",
            "0000-00-00 00:00:00",
            "9999-12-31 23:59:59.999999",
        ] {
            let key = SessionKey::generate();
            sqlx::query(&format!(
                "INSERT INTO `{}` VALUES (?, ?, '{expire}')",
                store.table()
            ))
            .bind(key.as_str())
            .bind(sql_support::DJANGO_SESSION_DATA)
            .execute(&mut other)
            .await
            .unwrap();
            keys.push(key);
        }
        other.close().await.unwrap();
        let [february_30, day_0, zero, last] = <[SessionKey; 4]>::try_from(keys).unwrap();

        // MySQL compares them as later than now: live, but unreadable.
        for key in [&february_30, &day_0] {
            let loaded = store.load(key).await;
            assert!(matches!(loaded, Err(Error::Corrupt(_))), "{loaded:?}");
            assert!(store.exists(key).await.unwrap());
        }
        assert!(store.load(&zero).await.unwrap().is_none());
        assert!(!store.exists(&zero).await.unwrap());
        assert_eq!(
            store.load(&last).await.unwrap().unwrap().expires_at,
            time::macros::datetime!(9999-12-31 23:59:59.999_999 UTC)
        );
        assert_eq!(
            store.clear_expired().await.unwrap(),
            1,
            "only the zero date"
        );

        // What the session layer does next: an unconditional save repairs
        // the row.
        for key in [&february_30, &day_0] {
            store
                .save(key, &Record::new(map(json!({"fresh": 1})), in_hours(1)))
                .await
                .unwrap();
            let record = store.load(key).await.unwrap().unwrap();
            assert_eq!(*record.data, map(json!({"fresh": 1})));
        }
        drop_table(&store).await;
    }

    #[tokio::test]
    async fn table_made_with_django_ddl_is_used_unchanged() {
        let Some(url) = sql_support::env_url("mysql") else {
            return;
        };
        // A database of our own, so the table can have Django's exact name.
        let database = sql_support::fresh_name();
        let admin = MySqlPoolOptions::new()
            .max_connections(1)
            .connect(&url)
            .await
            .unwrap();
        sqlx::raw_sql(&format!("CREATE DATABASE `{database}`"))
            .execute(&admin)
            .await
            .unwrap();
        let options = MySqlConnectOptions::from_str(&url)
            .unwrap()
            .database(&database);
        let pool = MySqlPoolOptions::new()
            .max_connections(2)
            .connect_with(options)
            .await
            .unwrap();
        sqlx::raw_sql(DJANGO_DDL).execute(&pool).await.unwrap();
        let schema_of = |pool| async move {
            let (_, ddl): (String, String) = sqlx::query_as("SHOW CREATE TABLE django_session")
                .fetch_one(pool)
                .await
                .unwrap();
            ddl
        };
        let before = schema_of(&pool).await;
        assert!(
            before.contains("django_session_expire_date_a5c62663"),
            "{before}"
        );

        sqlx::query("INSERT INTO django_session VALUES ('djangolivekey000000000000000000a', ?, '2099-01-01 00:00:00.000000')")
            .bind(sql_support::DJANGO_SESSION_DATA)
            .execute(&pool)
            .await
            .unwrap();

        let store = MySqlStore::new(pool.clone(), sql_support::signer());
        store.migrate().await.unwrap();
        assert_eq!(
            schema_of(&pool).await,
            before,
            "migrate changed Django's schema"
        );
        let live: SessionKey = "djangolivekey000000000000000000a".parse().unwrap();
        let record = store.load(&live).await.unwrap().unwrap();
        assert_eq!(
            *record.data,
            map(json!({"counter": 1})),
            "Django's row reads as Django wrote it"
        );
        assert_eq!(
            record.expires_at,
            time::macros::datetime!(2099-01-01 00:00:00 UTC)
        );
        cases::conflict_and_missing_are_told_apart(&store).await;
        cases::identical_save_is_not_missing(&store).await;

        // And migrate on an empty database makes the same schema.
        sqlx::raw_sql("DROP TABLE django_session")
            .execute(&pool)
            .await
            .unwrap();
        store.migrate().await.unwrap();
        assert_eq!(
            schema_of(&pool).await,
            before,
            "migrate made another schema"
        );

        pool.close().await;
        sqlx::raw_sql(&format!("DROP DATABASE `{database}`"))
            .execute(&admin)
            .await
            .unwrap();
    }
}

/// `connect` on a server that is not there, or never answers, fails within
/// its 5 s with the cause, where sqlx's own `Pool::connect` retries for 30 s
/// and says only "pool timed out". Needs no database: a closed port and a
/// listener that never speaks stand in for them (time is paused, so the 5 s
/// pass at once).
#[cfg(any(feature = "postgres", feature = "mysql"))]
mod connect {
    use sesame::Signer;

    /// A port nothing listens on, and a listener that accepts (the kernel
    /// does) but never answers.
    fn targets() -> (u16, std::net::TcpListener) {
        let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let closed_port = closed.local_addr().expect("addr").port();
        drop(closed);
        let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        (closed_port, silent)
    }

    async fn check<T: std::fmt::Debug, F: Future<Output = sesame::Result<T>>>(
        connect: impl Fn(String) -> F,
        scheme: &str,
    ) {
        let (closed, silent) = targets();
        let err = connect(format!("{scheme}://u@127.0.0.1:{closed}/db"))
            .await
            .expect_err("nothing listens");
        let text = format!("{err:?}");
        assert!(text.contains("refused"), "{text}");

        let port = silent.local_addr().expect("addr").port();
        let started = tokio::time::Instant::now();
        let err = connect(format!("{scheme}://u@127.0.0.1:{port}/db"))
            .await
            .expect_err("never answers");
        let text = format!("{err:?}");
        assert!(text.contains("did not answer within 5 s"), "{text}");
        assert!(started.elapsed() <= std::time::Duration::from_secs(6));
    }

    #[cfg(feature = "postgres")]
    #[tokio::test(start_paused = true)]
    async fn postgres_unreachable_or_silent_fails_within_5_s_with_the_cause() {
        check(
            |url| async move { sesame::backends::PostgresStore::connect(&url, Signer::new("k")).await },
            "postgres",
        )
        .await;
    }

    #[cfg(feature = "mysql")]
    #[tokio::test(start_paused = true)]
    async fn mysql_unreachable_or_silent_fails_within_5_s_with_the_cause() {
        check(
            |url| async move { sesame::backends::MySqlStore::connect(&url, Signer::new("k")).await },
            "mysql",
        )
        .await;
    }
}
