//! The listing suite: what a store that lists its sessions
//! ([`ListSessions`](sesame::backends::ListSessions)) must do, and finding
//! and revoking a user's sessions on top of it.

/// Expands to one `#[test]` per rule of
/// [`ListSessions`](sesame::backends::ListSessions), for a store that
/// implements it: listing, [`sessions_of_user`](sesame::backends::sessions_of_user)
/// and [`revoke_user_sessions`](sesame::backends::revoke_user_sessions).
///
/// Takes the same store maker as [`store_suite!`](crate::store_suite). The
/// cases mint their own keys and user ids, so they may share a store with
/// other cases and other processes.
///
/// ```
/// mod memory {
///     sesame_conformance::list_suite!(async { Some(sesame::backends::MemoryStore::new()) });
/// }
/// # fn main() {}
/// ```
#[macro_export]
macro_rules! list_suite {
    ($make_store:expr $(,)?) => {
        $crate::__list_cases! {
            ($make_store)
            listing_holds_every_live_session_and_no_deleted_one
            sessions_of_user_finds_exactly_that_users_live_sessions
            revoke_deletes_the_users_sessions_but_the_kept_one_for_good
        }
    };
}

/// Expands each case name of [`list_suite!`] into its test. Not a public API.
#[doc(hidden)]
#[macro_export]
macro_rules! __list_cases {
    (($make_store:expr) $($case:ident)+) => {
        $(
            #[test]
            fn $case() {
                $crate::__private::run(::core::stringify!($case), async {
                    if let ::core::option::Option::Some(store) = $make_store.await {
                        $crate::__private::list_cases::$case(&store).await;
                    }
                });
            }
        )+
    };
}

/// The cases of [`list_suite!`](crate::list_suite), one function per rule.
pub mod cases {
    #![allow(
        clippy::missing_panics_doc,
        reason = "a case panics exactly when the store breaks its rule"
    )]

    use std::collections::HashSet;
    use std::hash::BuildHasher as _;

    use futures_util::TryStreamExt as _;
    use serde_json::{Value, json};
    use sesame::backends::{ListSessions, Record, Saved, revoke_user_sessions, sessions_of_user};
    use sesame::codec::SessionMap;
    use sesame::{Error, SessionKey};
    use time::{Duration, OffsetDateTime};

    /// More sessions than a store lists per page (500), so that listing
    /// crosses a page boundary.
    const MANY: usize = 520;

    async fn create<S: ListSessions>(store: &S, data: Value, expires_at: OffsetDateTime) -> Saved {
        let Value::Object(data) = data else {
            panic!("session data must be a JSON object");
        };
        store
            .create(&Record::new(data, expires_at))
            .await
            .expect("create failed")
    }

    fn in_hours(hours: i64) -> OffsetDateTime {
        OffsetDateTime::now_utc() + Duration::hours(hours)
    }

    /// A user id no other case or run uses: a random number, as text.
    fn fresh_user_id() -> String {
        std::collections::hash_map::RandomState::new()
            .hash_one(SessionKey::generate().as_str())
            .to_string()
    }

    fn logged_in(user_id: impl Into<Value>) -> Value {
        json!({
            "_auth_user_id": user_id.into(),
            "_auth_user_backend": "django.contrib.auth.backends.ModelBackend",
            "_auth_user_hash": "",
        })
    }

    async fn listed<S: ListSessions>(store: &S) -> Vec<SessionKey> {
        store
            .session_keys()
            .try_collect()
            .await
            .expect("listing failed")
    }

    fn sorted(mut keys: Vec<SessionKey>) -> Vec<SessionKey> {
        keys.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        keys
    }

    /// Every session created and not deleted is listed, across pages; a
    /// deleted one is not.
    pub async fn listing_holds_every_live_session_and_no_deleted_one<S: ListSessions>(store: &S) {
        let mut created = Vec::with_capacity(MANY);
        for n in 0..MANY {
            created.push(create(store, json!({"n": n}), in_hours(1)).await.key);
        }
        let deleted = create(store, json!({"n": "deleted"}), in_hours(1))
            .await
            .key;
        store.delete(&deleted).await.expect("delete failed");

        let listed = listed(store).await;
        let set: HashSet<&str> = listed.iter().map(SessionKey::as_str).collect();
        let missing = created
            .iter()
            .filter(|key| !set.contains(key.as_str()))
            .count();
        assert_eq!(missing, 0, "{missing} of {MANY} live sessions not listed");
        assert!(
            !set.contains(deleted.as_str()),
            "a session deleted before the listing began was listed"
        );
    }

    /// `sessions_of_user` finds the user's live sessions (their id stored
    /// as text or as a number), and not another user's, an anonymous
    /// session, a deleted or an expired one.
    pub async fn sessions_of_user_finds_exactly_that_users_live_sessions<S: ListSessions>(
        store: &S,
    ) {
        let user = fresh_user_id();
        let number: u64 = user.parse().expect("a numeric id");
        let mut want = Vec::new();
        want.push(
            create(store, logged_in(user.as_str()), in_hours(1))
                .await
                .key,
        );
        want.push(
            create(store, logged_in(user.as_str()), in_hours(2))
                .await
                .key,
        );
        want.push(create(store, logged_in(number), in_hours(1)).await.key);
        // Someone else, with an id that starts like this one's.
        create(store, logged_in(format!("{user}0")), in_hours(1)).await;
        create(store, json!({"cart": [user.as_str()]}), in_hours(1)).await;
        let deleted = create(store, logged_in(user.as_str()), in_hours(1))
            .await
            .key;
        store.delete(&deleted).await.expect("delete failed");
        create(
            store,
            logged_in(user.as_str()),
            OffsetDateTime::now_utc() - Duration::hours(1),
        )
        .await;

        let found = sessions_of_user(store, &user)
            .await
            .expect("sessions_of_user failed");
        let keys = found.sessions.iter().map(|(key, _)| key.clone()).collect();
        assert_eq!(
            sorted(keys),
            sorted(want),
            "the user's live sessions, and only those"
        );
        assert!(
            found.checked >= 5,
            "checked {} sessions, created 5 live ones",
            found.checked
        );
        let now = OffsetDateTime::now_utc();
        assert!(
            found
                .sessions
                .iter()
                .all(|(_, expires_at)| *expires_at > now),
            "each found session is reported with its (future) expiry"
        );
    }

    /// `revoke_user_sessions` deletes every session of the user but the
    /// one kept, leaves other users' alone, and a request still holding a
    /// revoked session cannot bring it back by saving.
    pub async fn revoke_deletes_the_users_sessions_but_the_kept_one_for_good<S: ListSessions>(
        store: &S,
    ) {
        let user = fresh_user_id();
        let kept = create(store, logged_in(user.as_str()), in_hours(1))
            .await
            .key;
        let phone = create(store, logged_in(user.as_str()), in_hours(1))
            .await
            .key;
        let tablet = create(store, logged_in(user.as_str()), in_hours(1))
            .await
            .key;
        let other = create(store, logged_in(format!("{user}1")), in_hours(1))
            .await
            .key;
        // A request on the phone has loaded its session and will save it.
        let mut in_flight = store
            .load(&phone)
            .await
            .expect("load failed")
            .expect("the phone's session is live");

        let revoked = revoke_user_sessions(store, &user, Some(&kept))
            .await
            .expect("revoke failed");
        assert_eq!(
            sorted(revoked.revoked.clone()),
            sorted(vec![phone.clone(), tablet.clone()])
        );
        assert!(revoked.kept, "the kept session was the user's");
        for (key, what) in [(&phone, "phone"), (&tablet, "tablet")] {
            let loaded = store.load(key).await.expect("load failed");
            assert!(loaded.is_none(), "the revoked {what} session still loads");
        }
        assert!(store.exists(&kept).await.expect("exists failed"));
        assert!(store.exists(&other).await.expect("exists failed"));

        let data: &mut SessionMap = in_flight.data_mut();
        data.insert("cart".into(), json!(["book"]));
        match store.save(&phone, &in_flight).await {
            Err(Error::Missing) => {}
            other => panic!("saving a revoked session: expected Err(Missing), got {other:?}"),
        }
        assert!(
            store.load(&phone).await.expect("load failed").is_none(),
            "a save brought a revoked session back"
        );

        let again = revoke_user_sessions(store, &user, None)
            .await
            .expect("revoke failed");
        assert_eq!(again.revoked, vec![kept], "then the kept one, on its own");
        assert!(!again.kept);
    }
}
