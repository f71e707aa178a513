//! The HTTP suite: Django's `SessionMiddleware` rules, checked through a real
//! axum app on the store under test.

/// Expands to one test per middleware rule, run against an axum app whose
/// sessions live in the store under test.
///
/// `http_suite!(make_store, caps)` takes the same arguments as
/// [`store_suite!`](crate::store_suite).
///
/// # Examples
///
/// ```
/// mod memory {
///     sesame_conformance::http_suite!(
///         async { Some(sesame::backends::MemoryStore::new()) },
///         sesame_conformance::Caps::default()
///     );
/// }
/// # fn main() {}
/// ```
#[macro_export]
macro_rules! http_suite {
    ($make_store:expr, $caps:expr $(,)?) => {
        $crate::__http_cases! {
            ($make_store) ($caps)
            plain_route_costs_no_store_call_and_sets_nothing
            first_write_sets_djangos_cookie
            explicit_save_in_the_handler_still_sends_the_cookie
            cookie_brings_the_session_back
            read_only_access_varies_on_cookie_without_saving
            vary_is_patched_not_overwritten
            flush_with_cookie_sends_a_removal_cookie
            removal_cookie_keeps_every_attribute_of_the_cookie
            flush_without_cookie_sends_nothing
            emptied_session_is_saved_and_keeps_its_cookie
            server_error_saves_nothing
            client_error_still_saves
            unknown_key_is_never_adopted
            malformed_cookies_cost_no_lookup_and_never_fail
            duplicate_cookies_cost_at_most_two_lookups
            second_duplicate_cookie_is_used_when_first_is_unknown
            browser_close_sessions_get_no_max_age
            expire_at_browser_close_setting_is_honoured
            set_expiry_sets_max_age
            save_every_request_refreshes_unmodified_sessions
            save_every_request_creates_nothing_for_anonymous_requests
            session_deleted_during_request_is_interrupted
            cycle_key_issues_a_new_key_and_revokes_the_old
            expired_session_starts_over_with_a_new_key
            cookie_settings_are_applied
            store_outage_is_503_with_empty_body
            store_outage_does_not_affect_routes_without_session
            slow_store_times_out_as_503
            error_responses_never_contain_the_key
            fail_open_outage_runs_the_handler_with_an_empty_session
            fail_open_slow_store_answers_within_the_timeout
            outage_keeps_the_users_cookie_and_session_under_both_policies
            outage_at_save_drops_the_changes_under_fail_open
            oversized_cookie_header_is_431_without_a_lookup
            thousand_cookies_cost_at_most_two_lookups
            oversized_session_is_413_and_saves_nothing
        }
    };
}

/// Expands each case name of [`http_suite!`] into its test. Not a public API.
#[doc(hidden)]
#[macro_export]
macro_rules! __http_cases {
    (($make_store:expr) ($caps:expr) $($case:ident)+) => {
        $(
            #[test]
            fn $case() {
                $crate::__private::run(::core::stringify!($case), async {
                    if let ::core::option::Option::Some(store) = $make_store.await {
                        $crate::__private::http_cases::$case(store, $caps).await;
                    }
                });
            }
        )+
    };
}

/// The cases of [`http_suite!`](crate::http_suite), one function per rule.
///
/// Each takes the store under test and its [`Caps`](crate::Caps), and panics
/// exactly when the middleware on that store breaks the rule it is named for.
pub mod cases {
    #![allow(
        clippy::missing_panics_doc,
        reason = "a case panics exactly when the rule is broken"
    )]

    use std::time::Duration as StdDuration;

    use axum::Router;
    use axum::body::Body;
    use axum::extract::{Path, State};
    use axum::routing::get;
    use http::header::{COOKIE, RETRY_AFTER, SET_COOKIE, VARY};
    use http::{HeaderMap, HeaderValue, Request, StatusCode};
    use http_body_util::BodyExt;
    use sesame::backends::SessionStore;
    use sesame::{
        KeyKind, OutagePolicy, SameSite, Session, SessionKey, SessionManagerLayer, Settings,
    };
    use tower::ServiceExt;

    use crate::{Caps, CountingStore, FailingStore, SlowStore, ToggleStore};

    // ---- the app under test ------------------------------------------------

    /// The routes every case drives.
    fn routes<S: SessionStore + Clone>(store: S) -> Router {
        Router::new()
            .route("/plain", get(|| async { "plain" }))
            .route("/", get(counter))
            .route("/read", get(read))
            .route(
                "/read-vary",
                get(|s: Session| async move {
                    read(s)
                        .await
                        .map(|body| ([(VARY, "Accept-Encoding")], body))
                }),
            )
            .route(
                "/flush",
                get(|s: Session| async move { s.flush().await.map(|()| "flushed") }),
            )
            .route(
                "/empty",
                get(|s: Session| async move { s.remove("counter").await.map(|_| "emptied") }),
            )
            .route(
                "/cycle",
                get(|s: Session| async move { s.cycle_key().await.map(|()| "cycled") }),
            )
            .route(
                "/write-then/{status}",
                get(|s: Session, Path(status): Path<u16>| async move {
                    s.insert("written", true).await?;
                    Ok::<_, sesame::Error>(StatusCode::from_u16(status).unwrap_or(StatusCode::OK))
                }),
            )
            .route(
                "/read-flag",
                get(|s: Session| async move {
                    let flag: Option<bool> = s.get("saved_by_handler").await?;
                    Ok::<_, sesame::Error>(
                        flag.map_or("none", |f| if f { "true" } else { "false" }),
                    )
                }),
            )
            .route(
                "/save-now",
                get(|s: Session| async move {
                    s.insert("saved_by_handler", true).await?;
                    s.save().await.map(|()| "saved")
                }),
            )
            .route(
                "/expiry/{seconds}",
                get(|s: Session, Path(seconds): Path<i64>| async move {
                    s.set_expiry(seconds).await.map(|()| "ok")
                }),
            )
            .route(
                "/big/{bytes}",
                get(|s: Session, Path(bytes): Path<usize>| async move {
                    s.insert("big", "x".repeat(bytes)).await.map(|()| "stored")
                }),
            )
            .route(
                "/delete-then-write",
                get(|s: Session, State(store): State<S>| async move {
                    // Another request logs the user out meanwhile.
                    let key = s.session_key();
                    s.get_value("counter").await?;
                    if let Some(key) = key {
                        store.delete(&key).await?;
                    }
                    s.insert("late", 1).await?;
                    Ok::<_, sesame::Error>("late write")
                }),
            )
            .with_state(store)
    }

    async fn counter(session: Session) -> sesame::Result<String> {
        let n: i64 = session.get("counter").await?.unwrap_or(0);
        session.insert("counter", n + 1).await?;
        Ok(n.to_string())
    }

    async fn read(session: Session) -> sesame::Result<String> {
        let n: Option<i64> = session.get("counter").await?;
        Ok(n.map_or_else(|| "none".to_owned(), |n| n.to_string()))
    }

    fn app<S: SessionStore + Clone>(store: S, settings: Settings) -> Router {
        routes(store.clone()).layer(SessionManagerLayer::new(store).with_settings(settings))
    }

    /// One response, read whole.
    struct Reply {
        status: StatusCode,
        headers: HeaderMap,
        body: String,
    }

    impl Reply {
        fn set_cookies(&self) -> Vec<String> {
            self.headers
                .get_all(SET_COOKIE)
                .iter()
                .map(|v| v.to_str().expect("Set-Cookie is ASCII").to_owned())
                .collect()
        }

        fn set_cookie(&self) -> Option<String> {
            let all = self.set_cookies();
            assert!(all.len() <= 1, "more than one Set-Cookie: {all:?}");
            all.into_iter().next()
        }

        fn varies_on_cookie(&self) -> bool {
            self.headers.get_all(VARY).iter().any(|v| {
                v.to_str()
                    .is_ok_and(|v| v.to_ascii_lowercase().contains("cookie"))
            })
        }
    }

    async fn send(app: &Router, path: &str, cookie: Option<&[u8]>) -> Reply {
        let mut req = Request::get(path);
        if let Some(c) = cookie {
            req = req.header(COOKIE, HeaderValue::from_bytes(c).expect("a valid header"));
        }
        let res = app
            .clone()
            .oneshot(req.body(Body::empty()).expect("a request"))
            .await
            .expect("the router is infallible");
        let status = res.status();
        let headers = res.headers().clone();
        let body = res
            .into_body()
            .collect()
            .await
            .expect("the body can be read")
            .to_bytes();
        Reply {
            status,
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        }
    }

    /// `name=value` of a `Set-Cookie`, ready to send back.
    fn pair(set_cookie: &str) -> String {
        set_cookie
            .split(';')
            .next()
            .expect("Set-Cookie has a name=value")
            .to_owned()
    }

    /// The key a `Set-Cookie` (or `name=value` pair) carries, in the shape
    /// the store's keys have.
    fn key_of(set_cookie: &str, kind: KeyKind) -> SessionKey {
        let pair = pair(set_cookie);
        let value = pair.split_once('=').expect("name=value").1;
        SessionKey::parse_kind(value.as_bytes(), kind)
            .expect("the cookie carries a well-formed key")
    }

    fn attr<'a>(set_cookie: &'a str, name: &str) -> Option<&'a str> {
        set_cookie.split(';').skip(1).map(str::trim).find_map(|a| {
            let (k, v) = a.split_once('=').unwrap_or((a, ""));
            k.eq_ignore_ascii_case(name).then_some(v)
        })
    }

    /// Starts a session with `counter = 1`; returns the cookie pair.
    async fn started(app: &Router) -> String {
        let reply = send(app, "/", None).await;
        assert_eq!(reply.status, StatusCode::OK);
        pair(&reply.set_cookie().expect("the first write sets the cookie"))
    }

    // ---- cases -------------------------------------------------------------

    /// A route that never touches the session costs no store round trip and
    /// gets neither a cookie nor `Vary`, even when a session cookie is sent.
    pub async fn plain_route_costs_no_store_call_and_sets_nothing<S: SessionStore + Clone>(
        store: S,
        _caps: Caps,
    ) {
        let counting = CountingStore::new(store);
        let app = app(counting.clone(), Settings::default());
        let cookie = started(&app).await;
        counting.reset();
        let reply = send(&app, "/plain", Some(cookie.as_bytes())).await;
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(reply.set_cookie(), None);
        assert!(!reply.varies_on_cookie());
        assert_eq!(counting.calls().total(), 0);
    }

    /// The first write issues `sessionid=<32 [a-z0-9]>` (or, for a store
    /// of signed keys, the signed session) with Django's attributes.
    pub async fn first_write_sets_djangos_cookie<S: SessionStore + Clone>(store: S, _caps: Caps) {
        let kind = store.key_kind();
        let app = app(store, Settings::default());
        let reply = send(&app, "/", None).await;
        assert_eq!(reply.body, "0");
        let set = reply.set_cookie().expect("a cookie");
        let value = pair(&set);
        let key = value.strip_prefix("sessionid=").expect("named sessionid");
        if kind == KeyKind::Signed {
            // Django's signed_cookies: the cookie is `payload:timestamp:signature`.
            assert_eq!(key.split(':').count(), 3, "{key}");
            assert!(
                SessionKey::from_signed_bytes(key.as_bytes()).is_ok(),
                "{key}"
            );
        } else {
            assert_eq!(key.len(), 32);
            assert!(
                key.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
            );
        }
        assert_eq!(attr(&set, "Max-Age"), Some("1209600"));
        assert!(attr(&set, "expires").is_some_and(|e| e.ends_with(" GMT")));
        assert_eq!(attr(&set, "Path"), Some("/"));
        assert_eq!(attr(&set, "SameSite"), Some("Lax"));
        assert!(attr(&set, "HttpOnly").is_some());
        assert!(attr(&set, "Secure").is_none());
        assert!(attr(&set, "Domain").is_none());
        assert!(reply.varies_on_cookie());
    }

    /// A handler that saves a new session itself still gets its cookie
    /// sent: the key exists only in the store otherwise (Django keeps
    /// `modified` set after `save()` for this reason).
    pub async fn explicit_save_in_the_handler_still_sends_the_cookie<S: SessionStore + Clone>(
        store: S,
        _caps: Caps,
    ) {
        let app = app(store, Settings::default());
        let reply = send(&app, "/save-now", None).await;
        assert_eq!(
            (reply.status, reply.body.as_str()),
            (StatusCode::OK, "saved")
        );
        let set = reply.set_cookie().expect("the saved session's cookie");
        let cookie = pair(&set);
        assert_eq!(attr(&set, "Max-Age"), Some("1209600"));
        // The cookie names the session the handler saved.
        let reply = send(&app, "/read-flag", Some(cookie.as_bytes())).await;
        assert_eq!(reply.body, "true");
    }

    /// With the cookie, the session comes back and keeps counting under the
    /// same key (a store whose key is the data re-issues it on every save).
    pub async fn cookie_brings_the_session_back<S: SessionStore + Clone>(store: S, caps: Caps) {
        let app = app(store, Settings::default());
        let mut cookie = started(&app).await;
        for expected in 1..4 {
            let reply = send(&app, "/", Some(cookie.as_bytes())).await;
            assert_eq!(reply.body, expected.to_string());
            let set = reply.set_cookie().expect("every save refreshes the cookie");
            if caps.server_side {
                assert_eq!(pair(&set), cookie, "the key must not change");
            } else {
                // The key is the signed data: the browser keeps the new one.
                cookie = pair(&set);
            }
        }
    }

    /// Reading alone adds `Vary: Cookie` but neither saves nor sets a cookie.
    pub async fn read_only_access_varies_on_cookie_without_saving<S: SessionStore + Clone>(
        store: S,
        _caps: Caps,
    ) {
        let counting = CountingStore::new(store);
        let app = app(counting.clone(), Settings::default());
        let cookie = started(&app).await;
        counting.reset();
        let reply = send(&app, "/read", Some(cookie.as_bytes())).await;
        assert_eq!(reply.body, "1");
        assert_eq!(reply.set_cookie(), None);
        assert!(reply.varies_on_cookie());
        assert_eq!(counting.calls().writes(), 0);
        // Anonymous read: still no cookie.
        let reply = send(&app, "/read", None).await;
        assert_eq!(reply.body, "none");
        assert_eq!(reply.set_cookie(), None);
        assert!(reply.varies_on_cookie());
    }

    /// An existing `Vary` keeps its value and gains `Cookie`.
    pub async fn vary_is_patched_not_overwritten<S: SessionStore + Clone>(store: S, _caps: Caps) {
        let app = app(store, Settings::default());
        let reply = send(&app, "/read-vary", None).await;
        let vary: Vec<_> = reply
            .headers
            .get_all(VARY)
            .iter()
            .map(|v| v.to_str().expect("ASCII").to_owned())
            .collect();
        assert!(
            vary.iter().any(|v| v.contains("Accept-Encoding")),
            "{vary:?}"
        );
        assert!(reply.varies_on_cookie(), "{vary:?}");
    }

    /// `flush()` with the cookie sent → removal cookie, `Vary: Cookie`, and the
    /// old key no longer loads.
    pub async fn flush_with_cookie_sends_a_removal_cookie<S: SessionStore + Clone>(
        store: S,
        caps: Caps,
    ) {
        let app = app(store, Settings::default());
        let cookie = started(&app).await;
        let reply = send(&app, "/flush", Some(cookie.as_bytes())).await;
        let set = reply.set_cookie().expect("a removal cookie");
        assert!(
            set.starts_with("sessionid=\"\";") || set.starts_with("sessionid=;"),
            "{set}"
        );
        assert_eq!(attr(&set, "Max-Age"), Some("0"));
        assert!(attr(&set, "expires").is_some_and(|e| e.contains("1970")));
        assert_eq!(attr(&set, "Path"), Some("/"));
        assert_eq!(attr(&set, "SameSite"), Some("Lax"));
        assert!(reply.varies_on_cookie());
        if caps.revocable {
            let reply = send(&app, "/read", Some(cookie.as_bytes())).await;
            assert_eq!(reply.body, "none", "a flushed session must not come back");
        }
    }

    /// The removal cookie carries the `Domain`, `Path`, `SameSite`, `Secure`
    /// and `HttpOnly` of the cookie it removes (with `HttpOnly` on and off),
    /// so a browser replaces that cookie — a `__Secure-` cookie in particular,
    /// which only a `Secure` `Set-Cookie` may overwrite.
    pub async fn removal_cookie_keeps_every_attribute_of_the_cookie<S: SessionStore + Clone>(
        store: S,
        _caps: Caps,
    ) {
        for httponly in [true, false] {
            let settings = Settings {
                cookie_name: "__Secure-sid".to_owned(),
                cookie_domain: Some("example.com".to_owned()),
                cookie_path: "/app".to_owned(),
                cookie_secure: true,
                cookie_httponly: httponly,
                cookie_samesite: Some(SameSite::Strict),
                ..Settings::default()
            };
            let app = app(store.clone(), settings);
            let set = send(&app, "/", None).await.set_cookie().expect("a cookie");
            let reply = send(&app, "/flush", Some(pair(&set).as_bytes())).await;
            let removal = reply.set_cookie().expect("a removal cookie");
            assert!(removal.starts_with("__Secure-sid=\"\";"), "{removal}");
            // The cookie itself has every attribute set above, so a writer
            // that dropped one from both cookies fails here.
            assert_eq!(attr(&set, "Domain"), Some("example.com"), "{set}");
            assert_eq!(attr(&set, "Path"), Some("/app"), "{set}");
            assert_eq!(attr(&set, "SameSite"), Some("Strict"), "{set}");
            assert!(attr(&set, "Secure").is_some(), "{set}");
            assert_eq!(attr(&set, "HttpOnly").is_some(), httponly, "{set}");
            for name in ["Domain", "Path", "SameSite", "Secure", "HttpOnly"] {
                assert_eq!(
                    attr(&removal, name),
                    attr(&set, name),
                    "{name}: {set} | {removal}"
                );
            }
            assert_eq!(attr(&removal, "Max-Age"), Some("0"), "{removal}");
            assert!(
                attr(&removal, "expires").is_some_and(|e| e.contains("1970")),
                "{removal}"
            );
            assert!(reply.varies_on_cookie());
        }
    }

    /// A session whose last key is removed is emptied, not flushed: it is
    /// saved (empty) under its key and its cookie is sent again, not removed
    /// (Django's `test_empty_session_saved`).
    pub async fn emptied_session_is_saved_and_keeps_its_cookie<S: SessionStore + Clone>(
        store: S,
        caps: Caps,
    ) {
        let kind = store.key_kind();
        let app = app(store.clone(), Settings::default());
        let cookie = started(&app).await;
        let reply = send(&app, "/empty", Some(cookie.as_bytes())).await;
        assert_eq!(reply.status, StatusCode::OK);
        let set = reply.set_cookie().expect("the emptied session's cookie");
        assert_eq!(
            attr(&set, "Max-Age"),
            Some("1209600"),
            "not a removal: {set}"
        );
        assert!(reply.varies_on_cookie());
        let emptied = pair(&set);
        if caps.server_side {
            assert_eq!(emptied, cookie, "the key must not change");
            let record = store
                .load(&key_of(&cookie, kind))
                .await
                .expect("store works")
                .expect("the emptied session is still stored");
            assert!(record.data.is_empty(), "{:?}", record.data);
        }
        let reply = send(&app, "/read", Some(emptied.as_bytes())).await;
        assert_eq!(reply.body, "none");
        assert_eq!(
            reply.set_cookie(),
            None,
            "read-only: neither saved nor removed"
        );
    }

    /// `flush()` without a cookie sends no cookie at all, but still
    /// `Vary: Cookie` (Django's
    /// `test_flush_empty_without_session_cookie_doesnt_set_cookie`).
    pub async fn flush_without_cookie_sends_nothing<S: SessionStore + Clone>(
        store: S,
        _caps: Caps,
    ) {
        let app = app(store, Settings::default());
        let reply = send(&app, "/flush", None).await;
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(reply.set_cookie(), None);
        assert!(reply.varies_on_cookie());
    }

    /// A 5xx response saves nothing and sets no cookie.
    pub async fn server_error_saves_nothing<S: SessionStore + Clone>(store: S, _caps: Caps) {
        let counting = CountingStore::new(store);
        let app = app(counting.clone(), Settings::default());
        let reply = send(&app, "/write-then/500", None).await;
        assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(reply.set_cookie(), None);
        assert_eq!(counting.calls().writes(), 0);
        let reply = send(&app, "/write-then/503", None).await;
        assert_eq!(reply.set_cookie(), None);
    }

    /// A 4xx response still saves, as in Django.
    pub async fn client_error_still_saves<S: SessionStore + Clone>(store: S, _caps: Caps) {
        let app = app(store, Settings::default());
        let reply = send(&app, "/write-then/404", None).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND);
        assert!(reply.set_cookie().is_some());
    }

    /// A well-formed key the store does not know is never adopted: the first
    /// save mints a fresh key (no session fixation).
    pub async fn unknown_key_is_never_adopted<S: SessionStore + Clone>(store: S, _caps: Caps) {
        let app = app(store.clone(), Settings::default());
        let forged = "fixatedkeychosenbyattacker000000";
        let reply = send(&app, "/", Some(format!("sessionid={forged}").as_bytes())).await;
        assert_eq!(reply.body, "0");
        let set = reply.set_cookie().expect("a fresh cookie");
        assert_ne!(pair(&set), format!("sessionid={forged}"));
        let forged: SessionKey = forged.parse().expect("well-formed");
        assert!(store.load(&forged).await.expect("store works").is_none());
    }

    /// Malformed cookie values are no session: zero lookups, never a 5xx.
    pub async fn malformed_cookies_cost_no_lookup_and_never_fail<S: SessionStore + Clone>(
        store: S,
        caps: Caps,
    ) {
        let counting = CountingStore::new(store);
        let app = app(counting.clone(), Settings::default());
        // Both stay under the 8 KiB Cookie limit (over it: 431, see
        // `oversized_cookie_header_is_431_without_a_lookup`).
        let long = format!("sessionid={}", "a".repeat(7 * 1024));
        let junk = format!("{}; sessionid=abc", "x=y; ".repeat(1500));
        let cases: Vec<&[u8]> = vec![
            b"sessionid=short",
            b"sessionid=UPPERCASEKEY0000000",
            b"sessionid=../../../etc/passwd",
            b"sessionid=\"quoted\"key\"",
            b"sessionid=abcdefgh\t12345",
            b"sessionid=\xff\xfe\xfd\xfc\xfb\xfa\xf9\xf8",
            b"sessionid=abcdefgh%00ijkl",
            b"sessionid",
            b"=====",
            long.as_bytes(),
            junk.as_bytes(),
        ];
        for cookie in cases {
            counting.reset();
            let reply = send(&app, "/read", Some(cookie)).await;
            assert!(
                reply.status.is_success(),
                "{:?}: {}",
                String::from_utf8_lossy(cookie),
                reply.status
            );
            assert_eq!(reply.body, "none");
            // A client-side store's lookup is a local signature check, and
            // Django's signed_cookies checks every value of 8 characters or
            // more: only a server round trip must be saved.
            if caps.server_side {
                assert_eq!(
                    counting.calls().lookups(),
                    0,
                    "{:?}",
                    String::from_utf8_lossy(cookie)
                );
            }
            let reply = send(&app, "/plain", Some(cookie)).await;
            assert!(reply.status.is_success());
        }
    }

    /// 100 duplicate session cookies cost at most two lookups.
    pub async fn duplicate_cookies_cost_at_most_two_lookups<S: SessionStore + Clone>(
        store: S,
        _caps: Caps,
    ) {
        let counting = CountingStore::new(store);
        let app = app(counting.clone(), Settings::default());
        let header: String = (0..100)
            .map(|i| format!("sessionid=unknownkey{i:012}; "))
            .collect();
        counting.reset();
        let reply = send(&app, "/", Some(header.as_bytes())).await;
        assert_eq!(reply.status, StatusCode::OK);
        assert!(counting.calls().lookups() <= 2, "{:?}", counting.calls());
    }

    /// Of two session cookies, the second is used when the first is unknown.
    pub async fn second_duplicate_cookie_is_used_when_first_is_unknown<S: SessionStore + Clone>(
        store: S,
        _caps: Caps,
    ) {
        let app = app(store, Settings::default());
        let good = started(&app).await;
        let both = format!("sessionid=staleunknownkey000000000000000; {good}");
        let reply = send(&app, "/read", Some(both.as_bytes())).await;
        assert_eq!(reply.body, "1");
    }

    /// `set_expiry(0)` → a browser-session cookie: neither `Max-Age` nor `expires`.
    pub async fn browser_close_sessions_get_no_max_age<S: SessionStore + Clone>(
        store: S,
        _caps: Caps,
    ) {
        let app = app(store, Settings::default());
        let reply = send(&app, "/expiry/0", None).await;
        let set = reply.set_cookie().expect("a cookie");
        assert!(
            attr(&set, "Max-Age").is_none() && attr(&set, "expires").is_none(),
            "{set}"
        );
        let cookie = pair(&set);
        let reply = send(&app, "/", Some(cookie.as_bytes())).await;
        assert_eq!(reply.body, "0");
        let set = reply.set_cookie().expect("a cookie");
        assert!(attr(&set, "Max-Age").is_none(), "{set}");
    }

    /// `SESSION_EXPIRE_AT_BROWSER_CLOSE` makes browser-session cookies unless
    /// the session sets its own expiry.
    pub async fn expire_at_browser_close_setting_is_honoured<S: SessionStore + Clone>(
        store: S,
        _caps: Caps,
    ) {
        let settings = Settings {
            expire_at_browser_close: true,
            ..Settings::default()
        };
        let app = app(store, settings);
        let set = send(&app, "/", None).await.set_cookie().expect("a cookie");
        assert!(attr(&set, "Max-Age").is_none(), "{set}");
        let set = send(&app, "/expiry/60", None)
            .await
            .set_cookie()
            .expect("a cookie");
        assert_eq!(attr(&set, "Max-Age"), Some("60"), "{set}");
    }

    /// `set_expiry(n)` gives `Max-Age=n`; `SESSION_COOKIE_AGE` is the default.
    pub async fn set_expiry_sets_max_age<S: SessionStore + Clone>(store: S, _caps: Caps) {
        let app1 = app(store.clone(), Settings::default());
        let set = send(&app1, "/expiry/30", None)
            .await
            .set_cookie()
            .expect("a cookie");
        assert_eq!(attr(&set, "Max-Age"), Some("30"));
        let settings = Settings {
            cookie_age: 45,
            ..Settings::default()
        };
        let app2 = app(store, settings);
        let set = send(&app2, "/", None).await.set_cookie().expect("a cookie");
        assert_eq!(attr(&set, "Max-Age"), Some("45"));
    }

    /// `SESSION_SAVE_EVERY_REQUEST` re-sends the cookie for a read-only
    /// request (re-signed, for a store whose key is the data).
    pub async fn save_every_request_refreshes_unmodified_sessions<S: SessionStore + Clone>(
        store: S,
        caps: Caps,
    ) {
        let settings = Settings {
            save_every_request: true,
            ..Settings::default()
        };
        let app = app(store, settings);
        let mut cookie = started(&app).await;
        let reply = send(&app, "/read", Some(cookie.as_bytes())).await;
        assert_eq!(reply.body, "1");
        let set = reply.set_cookie().expect("the cookie is re-sent");
        if caps.server_side {
            assert_eq!(pair(&set), cookie);
        } else {
            // Re-signed with a fresh timestamp; the data must survive it.
            cookie = pair(&set);
        }
        // Even a route that does not read the session refreshes it.
        let reply = send(&app, "/plain", Some(cookie.as_bytes())).await;
        let resent = reply.set_cookie().map(|s| pair(&s));
        if caps.server_side {
            assert_eq!(resent, Some(cookie.clone()));
        } else {
            cookie = resent.expect("the cookie is re-sent");
        }
        let reply = send(&app, "/", Some(cookie.as_bytes())).await;
        assert_eq!(reply.body, "1", "touching must keep the data");
    }

    /// `SESSION_SAVE_EVERY_REQUEST` does not create sessions for anonymous requests.
    pub async fn save_every_request_creates_nothing_for_anonymous_requests<
        S: SessionStore + Clone,
    >(
        store: S,
        caps: Caps,
    ) {
        let settings = Settings {
            save_every_request: true,
            ..Settings::default()
        };
        let counting = CountingStore::new(store);
        let app = app(counting.clone(), settings);
        for path in ["/plain", "/read"] {
            let reply = send(&app, path, None).await;
            assert_eq!(reply.set_cookie(), None, "{path}");
        }
        let reply = send(&app, "/plain", Some(b"sessionid=unknownkeyunknownkey00")).await;
        assert_ne!(
            reply.set_cookie().map(|s| pair(&s)),
            Some("sessionid=unknownkeyunknownkey00".to_owned())
        );
        // A client-side store stores nothing: in place of a cookie that does
        // not verify it issues an empty signed session, as Django's
        // signed_cookies does, by a `save` that writes nowhere.
        if caps.server_side {
            assert_eq!(counting.calls().writes(), 0);
        }
    }

    /// A session deleted by another request before this one saves → 400
    /// (Django's `SessionInterrupted`), and the record is not re-created.
    pub async fn session_deleted_during_request_is_interrupted<S: SessionStore + Clone>(
        store: S,
        caps: Caps,
    ) {
        if !caps.server_side {
            // Nothing is stored server-side, so there is nothing to delete.
            return;
        }
        let app = app(store.clone(), Settings::default());
        let cookie = started(&app).await;
        let reply = send(&app, "/delete-then-write", Some(cookie.as_bytes())).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST);
        assert!(reply.body.is_empty());
        assert_eq!(reply.set_cookie(), None);
        let key = key_of(&cookie, store.key_kind());
        assert!(store.load(&key).await.expect("store works").is_none());
    }

    /// `cycle_key()` → a new cookie value with the same data; the old key is dead.
    pub async fn cycle_key_issues_a_new_key_and_revokes_the_old<S: SessionStore + Clone>(
        store: S,
        caps: Caps,
    ) {
        let app = app(store, Settings::default());
        let cookie = started(&app).await;
        let reply = send(&app, "/cycle", Some(cookie.as_bytes())).await;
        let new = pair(&reply.set_cookie().expect("a new cookie"));
        if caps.revocable {
            assert_ne!(new, cookie);
        }
        // Otherwise the key is the signed data: the same data signed in the
        // same second is the same value, as in Django (and it could not
        // revoke the old one anyway).
        let reply = send(&app, "/read", Some(new.as_bytes())).await;
        assert_eq!(reply.body, "1", "data survives the rotation");
        if caps.revocable {
            let reply = send(&app, "/read", Some(cookie.as_bytes())).await;
            assert_eq!(reply.body, "none", "the old key must be dead");
        }
    }

    /// A session whose record expired starts over at 0 with a new key.
    pub async fn expired_session_starts_over_with_a_new_key<S: SessionStore + Clone>(
        store: S,
        caps: Caps,
    ) {
        let app = app(store.clone(), Settings::default());
        let cookie = started(&app).await;
        let key = key_of(&cookie, store.key_kind());
        // Expire the record by writing an expiry in the past: no sleeping.
        let mut record = store
            .load(&key)
            .await
            .expect("store works")
            .expect("the session was saved");
        record.expires_at = time::OffsetDateTime::now_utc() - time::Duration::hours(1);
        record.version = None;
        let saved = store.save(&key, &record).await.expect("store works");
        if caps.server_side {
            assert_eq!(saved.key, key, "save moved the record to a new key");
        }
        // The record now lives under the key `save` returned (the same one,
        // unless the key is the data).
        let cookie = format!("sessionid={}", saved.key.as_str());
        let reply = send(&app, "/", Some(cookie.as_bytes())).await;
        assert_eq!(reply.body, "0");
        let new = pair(&reply.set_cookie().expect("a new cookie"));
        assert_ne!(new, cookie);
    }

    /// Name, domain, path, secure, httponly and samesite settings reach the cookie.
    pub async fn cookie_settings_are_applied<S: SessionStore + Clone>(store: S, _caps: Caps) {
        let settings = Settings {
            cookie_name: "sid".to_owned(),
            cookie_domain: Some("example.com".to_owned()),
            cookie_path: "/app".to_owned(),
            cookie_secure: true,
            cookie_httponly: false,
            cookie_samesite: Some(SameSite::Strict),
            ..Settings::default()
        };
        let app = app(store, settings);
        let set = send(&app, "/", None).await.set_cookie().expect("a cookie");
        assert!(set.starts_with("sid="), "{set}");
        assert_eq!(attr(&set, "Domain"), Some("example.com"));
        assert_eq!(attr(&set, "Path"), Some("/app"));
        assert!(attr(&set, "Secure").is_some());
        assert!(attr(&set, "HttpOnly").is_none());
        assert_eq!(attr(&set, "SameSite"), Some("Strict"));
        let cookie = pair(&set);
        let reply = send(&app, "/", Some(cookie.as_bytes())).await;
        assert_eq!(reply.body, "1");
        // The default name is not ours any more.
        let other = cookie.replacen("sid=", "sessionid=", 1);
        assert_eq!(
            send(&app, "/read", Some(other.as_bytes())).await.body,
            "none"
        );
    }

    /// A store that fails → 503 with `Retry-After` and an empty body.
    pub async fn store_outage_is_503_with_empty_body<S: SessionStore + Clone>(
        _store: S,
        _caps: Caps,
    ) {
        let app = app(FailingStore::new(), Settings::default());
        for path in ["/", "/read", "/flush"] {
            let reply = send(
                &app,
                path,
                Some(b"sessionid=abcdefgh12345678abcdefgh12345678"),
            )
            .await;
            assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE, "{path}");
            assert!(reply.headers.contains_key(RETRY_AFTER), "{path}");
            assert!(reply.body.is_empty(), "{path}: {}", reply.body);
            assert_eq!(reply.set_cookie(), None, "{path}");
        }
    }

    /// A store outage does not touch routes that never use the session.
    pub async fn store_outage_does_not_affect_routes_without_session<S: SessionStore + Clone>(
        _store: S,
        _caps: Caps,
    ) {
        let app = app(FailingStore::new(), Settings::default());
        let reply = send(
            &app,
            "/plain",
            Some(b"sessionid=abcdefgh12345678abcdefgh12345678"),
        )
        .await;
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(reply.body, "plain");
    }

    /// A store slower than the timeout → 503 within the timeout.
    pub async fn slow_store_times_out_as_503<S: SessionStore + Clone>(store: S, _caps: Caps) {
        let slow = SlowStore::new(store, StdDuration::from_secs(30));
        let settings = Settings {
            store_timeout: StdDuration::from_millis(50),
            ..Settings::default()
        };
        let app = app(slow, settings);
        let reply = tokio::time::timeout(StdDuration::from_secs(5), send(&app, "/", None))
            .await
            .expect("the timeout answers long before the store");
        assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(reply.headers.contains_key(RETRY_AFTER));
    }

    /// No response body or header other than `Set-Cookie` carries a session key.
    pub async fn error_responses_never_contain_the_key<S: SessionStore + Clone>(
        store: S,
        caps: Caps,
    ) {
        let kind = store.key_kind();
        let app = app(store, Settings::default());
        let cookie = started(&app).await;
        let key = key_of(&cookie, kind);
        let mut replies = vec![send(&app, "/write-then/500", Some(cookie.as_bytes())).await];
        if caps.server_side {
            replies.push(send(&app, "/delete-then-write", Some(cookie.as_bytes())).await);
        }
        for reply in replies {
            assert!(!reply.body.contains(key.as_str()));
            for (name, value) in &reply.headers {
                if name != SET_COOKIE {
                    assert!(!value.to_str().unwrap_or("").contains(key.as_str()));
                }
            }
        }
    }

    // ---- outage policy and hostile input -----------------------------------

    const SOME_COOKIE: &[u8] = b"sessionid=abcdefgh12345678abcdefgh12345678";

    fn with_policy(policy: OutagePolicy) -> Settings {
        Settings {
            outage_policy: policy,
            ..Settings::default()
        }
    }

    /// Under [`OutagePolicy::FailOpen`], a store that fails → the handler
    /// runs with an empty session: its own status and body, no `Set-Cookie`
    /// (not even a removal cookie), `Vary: Cookie`. A logout cannot happen
    /// and says so (503), rather than pretend.
    pub async fn fail_open_outage_runs_the_handler_with_an_empty_session<
        S: SessionStore + Clone,
    >(
        _store: S,
        _caps: Caps,
    ) {
        let app = app(FailingStore::new(), with_policy(OutagePolicy::FailOpen));
        for (path, body) in [("/", "0"), ("/read", "none"), ("/plain", "plain")] {
            for cookie in [Some(SOME_COOKIE), None] {
                let reply = send(&app, path, cookie).await;
                assert_eq!(reply.status, StatusCode::OK, "{path}");
                assert_eq!(reply.body, body, "{path}");
                assert_eq!(reply.set_cookie(), None, "{path}: no cookie at all");
                assert_eq!(reply.varies_on_cookie(), path != "/plain", "{path}");
            }
        }
        let reply = send(&app, "/flush", Some(SOME_COOKIE)).await;
        assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(reply.body.is_empty());
        assert_eq!(reply.set_cookie(), None);
        let reply = send(&app, "/cycle", Some(SOME_COOKIE)).await;
        assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(reply.set_cookie(), None);
    }

    /// A store slower than the timeout: under either policy the request is
    /// answered within the timeout (plus a generous margin), by the policy;
    /// a route without session never waits for the store.
    pub async fn fail_open_slow_store_answers_within_the_timeout<S: SessionStore + Clone>(
        store: S,
        _caps: Caps,
    ) {
        let slow = SlowStore::new(store, StdDuration::from_secs(60));
        for (policy, status) in [
            (OutagePolicy::FailOpen, StatusCode::OK),
            (OutagePolicy::FailClosed, StatusCode::SERVICE_UNAVAILABLE),
        ] {
            let settings = Settings {
                store_timeout: StdDuration::from_millis(100),
                ..with_policy(policy)
            };
            let app = app(slow.clone(), settings);
            let reply = tokio::time::timeout(
                StdDuration::from_secs(10),
                send(&app, "/", Some(SOME_COOKIE)),
            )
            .await
            .expect("answered within the store timeout, long before the store");
            assert_eq!(reply.status, status, "{policy:?}");
            assert_eq!(reply.set_cookie(), None, "{policy:?}");
            let reply = tokio::time::timeout(
                StdDuration::from_secs(10),
                send(&app, "/plain", Some(SOME_COOKIE)),
            )
            .await
            .expect("a route without session never waits for the store");
            assert_eq!(reply.status, StatusCode::OK);
        }
    }

    /// A session saved before an outage survives it under both policies:
    /// no removal cookie, nothing overwritten by the empty session a
    /// fail-open request saw, and the same cookie works once the store is back.
    pub async fn outage_keeps_the_users_cookie_and_session_under_both_policies<
        S: SessionStore + Clone,
    >(
        store: S,
        _caps: Caps,
    ) {
        let toggle = ToggleStore::new(store);
        for (policy, status, body) in [
            (OutagePolicy::FailOpen, StatusCode::OK, "0"),
            (
                OutagePolicy::FailClosed,
                StatusCode::SERVICE_UNAVAILABLE,
                "",
            ),
        ] {
            let app = app(toggle.clone(), with_policy(policy));
            let cookie = started(&app).await;
            toggle.stop();
            for path in ["/", "/read", "/flush"] {
                let reply = send(&app, path, Some(cookie.as_bytes())).await;
                let expected = if path == "/flush" {
                    StatusCode::SERVICE_UNAVAILABLE
                } else {
                    status
                };
                assert_eq!(reply.status, expected, "{policy:?} {path}");
                if path == "/" {
                    assert_eq!(reply.body, body, "{policy:?}");
                }
                assert_eq!(reply.set_cookie(), None, "{policy:?} {path}");
            }
            toggle.start();
            let reply = send(&app, "/read", Some(cookie.as_bytes())).await;
            assert_eq!(
                reply.body, "1",
                "{policy:?}: the session survives the outage"
            );
        }
    }

    /// The store dies between the handler's load and the save: under
    /// `FailOpen` the handler's response stands, without a cookie, and the
    /// change is dropped; under `FailClosed` it is a 503.
    pub async fn outage_at_save_drops_the_changes_under_fail_open<S: SessionStore + Clone>(
        store: S,
        _caps: Caps,
    ) {
        let toggle = ToggleStore::new(store);
        for (policy, status) in [
            (OutagePolicy::FailOpen, StatusCode::OK),
            (OutagePolicy::FailClosed, StatusCode::SERVICE_UNAVAILABLE),
        ] {
            let app = Router::new()
                .route("/", get(counter))
                .route(
                    "/read-then-outage",
                    get(
                        |s: Session, State(toggle): State<ToggleStore<S>>| async move {
                            let n: i64 = s.get("counter").await?.unwrap_or(0);
                            toggle.stop();
                            s.insert("counter", n + 10).await?;
                            Ok::<_, sesame::Error>("written")
                        },
                    ),
                )
                .with_state(toggle.clone())
                .layer(SessionManagerLayer::new(toggle.clone()).with_outage_policy(policy));
            let cookie = started(&app).await;
            let reply = send(&app, "/read-then-outage", Some(cookie.as_bytes())).await;
            toggle.start();
            assert_eq!(reply.status, status, "{policy:?}");
            assert_eq!(reply.set_cookie(), None, "{policy:?}");
            let reply = send(&app, "/", Some(cookie.as_bytes())).await;
            assert_eq!(
                reply.body, "1",
                "{policy:?}: the dropped change left no trace"
            );
        }
    }

    /// `Cookie` headers over `cookie_header_limit` (8 KiB) → 431, empty body,
    /// no store call, whatever the route; at the limit, read as usual.
    pub async fn oversized_cookie_header_is_431_without_a_lookup<S: SessionStore + Clone>(
        store: S,
        _caps: Caps,
    ) {
        let counting = CountingStore::new(store);
        let app = app(counting.clone(), Settings::default());
        let cookie = started(&app).await;
        counting.reset();
        let mebibyte = format!("{cookie}; pad={}", "x".repeat(1 << 20));
        let just_over = format!("{cookie}; pad={}", "x".repeat(8193 - cookie.len() - 6));
        assert_eq!(just_over.len(), 8193);
        for header in [&mebibyte, &just_over] {
            for path in ["/", "/read", "/plain"] {
                let reply = send(&app, path, Some(header.as_bytes())).await;
                assert_eq!(
                    reply.status,
                    StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                    "{path} {}",
                    header.len()
                );
                assert!(reply.body.is_empty());
                assert_eq!(reply.set_cookie(), None);
            }
        }
        assert_eq!(counting.calls().total(), 0);
        let at_limit = &just_over[..8192];
        let reply = send(&app, "/read", Some(at_limit.as_bytes())).await;
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(reply.body, "1");
        // The limit is a setting.
        let roomy = self::app(
            counting.clone(),
            Settings {
                cookie_header_limit: 2 << 20,
                ..Settings::default()
            },
        );
        let reply = send(&roomy, "/read", Some(mebibyte.as_bytes())).await;
        assert_eq!(reply.body, "1");
    }

    /// 1 000 cookies in one header: read in one pass, at most two lookups,
    /// the session found; 1 000 *session* cookies (over 8 KiB) → 431.
    pub async fn thousand_cookies_cost_at_most_two_lookups<S: SessionStore + Clone>(
        store: S,
        _caps: Caps,
    ) {
        let counting = CountingStore::new(store);
        let app = app(counting.clone(), Settings::default());
        let cookie = started(&app).await;
        let others: String = (0..1000).map(|i| format!("c{i}=v; ")).collect();
        counting.reset();
        let reply = send(&app, "/read", Some(format!("{others}{cookie}").as_bytes())).await;
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(reply.body, "1");
        assert!(counting.calls().lookups() <= 2, "{:?}", counting.calls());
        let sessions: String = (0..1000)
            .map(|i| format!("sessionid=unknownkey{i:012}; "))
            .collect();
        counting.reset();
        let reply = send(&app, "/", Some(sessions.as_bytes())).await;
        assert_eq!(reply.status, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
        assert_eq!(counting.calls().total(), 0);
        let roomy = self::app(
            counting.clone(),
            Settings {
                cookie_header_limit: 64 * 1024,
                ..Settings::default()
            },
        );
        let reply = send(&roomy, "/", Some(sessions.as_bytes())).await;
        assert_eq!(reply.status, StatusCode::OK);
        assert!(counting.calls().lookups() <= 2, "{:?}", counting.calls());
    }

    /// A session grown past `max_session_size` (a 16 MiB value; for a
    /// signed cookie, past 4096 bytes) → 413 with an empty body: nothing
    /// saved, no `Set-Cookie`, and the stored session unchanged.
    pub async fn oversized_session_is_413_and_saves_nothing<S: SessionStore + Clone>(
        store: S,
        _caps: Caps,
    ) {
        let counting = CountingStore::new(store);
        let app = app(counting.clone(), Settings::default());
        let cookie = started(&app).await;
        for bytes in [16 << 20, (1 << 20) + 1] {
            counting.reset();
            let reply = send(&app, &format!("/big/{bytes}"), Some(cookie.as_bytes())).await;
            assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE, "{bytes}");
            assert!(reply.body.is_empty());
            assert_eq!(reply.set_cookie(), None);
            assert_eq!(counting.calls().writes(), 0, "{bytes}");
            let reply = send(&app, "/read", Some(cookie.as_bytes())).await;
            assert_eq!(reply.body, "1");
        }
        // Anonymous: no session is created either.
        counting.reset();
        let reply = send(&app, "/big/16777216", None).await;
        assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(counting.calls().writes(), 0);
        // The limit is a setting.
        let small = self::app(
            counting,
            Settings {
                max_session_size: 100,
                ..Settings::default()
            },
        );
        let reply = send(&small, "/big/100", Some(cookie.as_bytes())).await;
        assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE);
        let reply = send(&small, "/big/10", Some(cookie.as_bytes())).await;
        assert_eq!(reply.status, StatusCode::OK);
    }
}
