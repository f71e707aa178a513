//! `SessionManagerLayer`: Django's `SessionMiddleware` as a tower layer.

pub(crate) mod cookie;

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::header::{COOKIE, RETRY_AFTER, SET_COOKIE, VARY};
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use time::OffsetDateTime;
use tower_layer::Layer;
use tower_service::Service;

use crate::backends::SessionStore;
use crate::session::{ConflictPolicy, Outcome, Shared};
use crate::{Error, OutagePolicy, SameSite, Session, Settings};

/// The boxed save of a response phase that needs the store.
type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Seconds a client is asked to wait (`Retry-After`) when the store is unavailable.
pub(crate) const RETRY_AFTER_SECONDS: &str = "1";

/// Adds a lazily loaded [`Session`] to every request, and saves it and sets
/// the cookie after the handler, following Django's `SessionMiddleware`
/// rules exactly.
///
/// Any tower-based server can use it: the session is in the request's
/// extensions (`req.extensions().get::<Session>()`); with axum, take it as
/// an extractor.
///
/// # Response rules
///
/// - Session accessed → `Vary: Cookie` (added to an existing `Vary`).
/// - Cookie sent and session now empty (after `flush`) → a removal cookie.
/// - Modified (or `SESSION_SAVE_EVERY_REQUEST`), not empty, status < 500 →
///   save, then `Set-Cookie` with `Max-Age` and `expires` (neither for a
///   browser-session cookie). Status ≥ 500 saves nothing.
/// - Session deleted by another request meanwhile → 400 (Django's
///   `SessionInterrupted`), never a re-created record.
/// - Store down or slower than the timeout → the [`OutagePolicy`]: by
///   default 503 with `Retry-After` and an empty body; under
///   [`OutagePolicy::FailOpen`] the handler's response with an empty,
///   unsaved session and no `Set-Cookie`. Either way an `error!` log line.
/// - A session cookie value that is not a well-formed key (no session, no
///   store call) → one `warn!` on `sesame::security` per request, without
///   the values; more than one well-formed session cookie (at most two
///   looked up) → a `debug!` there (browsers send two for good reasons).
/// - `Cookie` headers over [`Settings::cookie_header_limit`] bytes (8 KiB by
///   default) → 431 with an empty body, before the handler and without a
///   store call, and a `warn!` on `sesame::security`.
/// - A session whose JSON exceeds [`Settings::max_session_size`] (1 MiB by
///   default), or a signed cookie over 4096 bytes → 413 with an empty body;
///   nothing saved, no `Set-Cookie`.
///
/// # Examples
///
/// ```
/// use axum::{Router, routing::get};
/// use sesame::{Session, SessionManagerLayer, backends::MemoryStore};
///
/// async fn counter(session: Session) -> sesame::Result<String> {
///     let n: i64 = session.get("counter").await?.unwrap_or(0);
///     session.insert("counter", n + 1).await?;
///     Ok(format!("Counter : {n}"))
/// }
///
/// let app: Router = Router::new()
///     .route("/", get(counter))
///     .layer(SessionManagerLayer::new(MemoryStore::new()).with_cookie_age(30));
/// ```
///
/// # Panics
///
/// Building the service (`Layer::layer`) panics with a message naming the
/// setting when the settings are inconsistent (see [`Settings::validate`]),
/// so a misconfigured app fails at start-up. Call
/// [`validate`](Self::validate) first to handle that as an error.
#[doc(alias = "SessionMiddleware")]
#[derive(Clone)]
pub struct SessionManagerLayer {
    shared: Arc<Shared>,
}

impl fmt::Debug for SessionManagerLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionManagerLayer")
            .field("settings", &self.shared.settings)
            .field("policy", &self.shared.policy)
            .finish_non_exhaustive()
    }
}

macro_rules! setter {
    ($(#[$doc:meta])* $name:ident, $field:ident: $ty:ty) => {
        $(#[$doc])*
        #[must_use]
        pub fn $name(self, value: $ty) -> Self {
            self.map_settings(|s| s.$field = value.into())
        }
    };
}

impl SessionManagerLayer {
    /// A layer storing sessions in `store`, with Django's default settings.
    #[must_use]
    pub fn new(store: impl SessionStore) -> Self {
        Self {
            shared: Arc::new(Shared {
                store: Arc::new(store),
                settings: Settings::default(),
                policy: ConflictPolicy::default(),
            }),
        }
    }

    fn map_settings(self, f: impl FnOnce(&mut Settings)) -> Self {
        let mut shared = Arc::unwrap_or_clone(self.shared);
        f(&mut shared.settings);
        Self {
            shared: Arc::new(shared),
        }
    }

    /// Replaces all settings at once (for example with [`Settings::from_env`]).
    #[must_use]
    pub fn with_settings(self, settings: Settings) -> Self {
        self.map_settings(|s| *s = settings)
    }

    /// Sets what a save does when another request changed the session meanwhile.
    #[must_use]
    pub fn with_conflict_policy(self, policy: ConflictPolicy) -> Self {
        let mut shared = Arc::unwrap_or_clone(self.shared);
        shared.policy = policy;
        Self {
            shared: Arc::new(shared),
        }
    }

    setter!(
        /// `SESSION_COOKIE_NAME`.
        #[doc(alias = "SESSION_COOKIE_NAME")]
        with_cookie_name, cookie_name: &str
    );
    setter!(
        /// `SESSION_COOKIE_AGE`, in seconds.
        #[doc(alias = "SESSION_COOKIE_AGE")]
        with_cookie_age, cookie_age: i64
    );
    setter!(
        /// `SESSION_COOKIE_DOMAIN` (`None` = host-only).
        #[doc(alias = "SESSION_COOKIE_DOMAIN")]
        with_cookie_domain, cookie_domain: Option<String>
    );
    setter!(
        /// `SESSION_COOKIE_PATH`.
        #[doc(alias = "SESSION_COOKIE_PATH")]
        with_cookie_path, cookie_path: &str
    );
    setter!(
        /// `SESSION_COOKIE_SECURE`: turn on in production.
        #[doc(alias = "SESSION_COOKIE_SECURE")]
        with_cookie_secure, cookie_secure: bool
    );
    setter!(
        /// `SESSION_COOKIE_HTTPONLY`.
        #[doc(alias = "SESSION_COOKIE_HTTPONLY")]
        with_cookie_httponly, cookie_httponly: bool
    );
    setter!(
        /// `SESSION_COOKIE_SAMESITE` (`None` omits the attribute).
        #[doc(alias = "SESSION_COOKIE_SAMESITE")]
        with_cookie_samesite, cookie_samesite: Option<SameSite>
    );
    setter!(
        /// `SESSION_EXPIRE_AT_BROWSER_CLOSE`.
        #[doc(alias = "SESSION_EXPIRE_AT_BROWSER_CLOSE")]
        with_expire_at_browser_close, expire_at_browser_close: bool
    );
    setter!(
        /// `SESSION_SAVE_EVERY_REQUEST`.
        #[doc(alias = "SESSION_SAVE_EVERY_REQUEST")]
        with_save_every_request, save_every_request: bool
    );
    setter!(
        /// The longest a store call may take before the request gets the outage policy.
        with_store_timeout, store_timeout: Duration
    );
    setter!(
        /// What requests get while the store is down or too slow: see [`OutagePolicy`].
        with_outage_policy, outage_policy: OutagePolicy
    );
    setter!(
        /// The most bytes of `Cookie` header read; more is answered 431.
        with_cookie_header_limit, cookie_header_limit: usize
    );
    setter!(
        /// The most bytes of JSON a session may save; more is `Error::TooLarge` (413).
        with_max_session_size, max_session_size: usize
    );

    /// The settings in force.
    #[must_use]
    pub fn settings(&self) -> &Settings {
        &self.shared.settings
    }

    /// Checks the settings.
    ///
    /// # Errors
    ///
    /// The [`SettingsError`](crate::SettingsError) naming the first inconsistent setting.
    pub fn validate(&self) -> Result<(), crate::SettingsError> {
        self.shared.settings.validate()
    }
}

impl<S> Layer<S> for SessionManagerLayer {
    type Service = SessionManager<S>;

    fn layer(&self, inner: S) -> Self::Service {
        if let Err(e) = self.validate() {
            panic!("invalid session settings: {e}");
        }
        SessionManager {
            inner,
            shared: Arc::clone(&self.shared),
        }
    }
}

/// The service made by [`SessionManagerLayer`].
#[derive(Clone)]
pub struct SessionManager<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S: fmt::Debug> fmt::Debug for SessionManager<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionManager")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for SessionManager<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    S::Future: Send + 'static,
    ResBody: Default + Send + 'static,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        let settings = &self.shared.settings;
        let cookies = req.headers().get_all(COOKIE);
        let cookie_bytes = cookies
            .iter()
            .fold(0_usize, |sum, v| sum.saturating_add(v.len()));
        if cookie_bytes > settings.cookie_header_limit {
            tracing::warn!(
                target: "sesame::security",
                len = cookie_bytes,
                limit = settings.cookie_header_limit,
                "Cookie header over the limit; answering 431 without reading it"
            );
            return ResponseFuture {
                phase: Phase::Answered {
                    status: Some(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE),
                },
            };
        }
        let incoming = cookie::read(cookies, &settings.cookie_name, self.shared.store.key_kind());
        // Never the values: a client's bytes, perhaps another user's key.
        if incoming.malformed > 0 {
            tracing::warn!(
                target: "sesame::security",
                cookies = incoming.values,
                malformed = incoming.malformed,
                "session cookie malformed: no session, no lookup"
            );
        } else if incoming.values > 1 {
            // A browser may hold two well-formed ones for good reasons (a
            // parent domain's and the host's, or two paths) and sends both
            // on every request: recorded, not warned about.
            tracing::debug!(
                target: "sesame::security",
                cookies = incoming.values,
                "session cookie sent more than once: at most two values are looked up"
            );
        }
        let session = Session::from_shared(Arc::clone(&self.shared), incoming.candidates);
        req.extensions_mut().insert(session.clone());
        ResponseFuture {
            phase: Phase::Handler {
                future: self.inner.call(req),
                session,
                cookie_present: incoming.present,
            },
        }
    }
}

pin_project_lite::pin_project! {
    /// The response future of [`SessionManager`]: the handler's response,
    /// then the session saved and the cookie set by Django's rules.
    ///
    /// A request whose session needs no store call at the end (it was not
    /// modified) is answered without allocating a second future.
    pub struct ResponseFuture<F, B> {
        #[pin]
        phase: Phase<F, B>,
    }
}

pin_project_lite::pin_project! {
    #[project = PhaseProj]
    enum Phase<F, B> {
        /// Answered before the handler ran (431), or done.
        Answered { status: Option<StatusCode> },
        /// The handler is running.
        Handler {
            #[pin]
            future: F,
            session: Session,
            cookie_present: bool,
        },
        /// Saving the session after the handler answered.
        Saving { future: BoxFuture<'static, Response<B>> },
    }
}

impl<F, B> fmt::Debug for ResponseFuture<F, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let phase = match self.phase {
            Phase::Answered { .. } => "answered",
            Phase::Handler { .. } => "handler",
            Phase::Saving { .. } => "saving",
        };
        f.debug_struct("ResponseFuture")
            .field("phase", &phase)
            .finish()
    }
}

impl<F, B, E> Future for ResponseFuture<F, B>
where
    F: Future<Output = Result<Response<B>, E>>,
    B: Default + Send + 'static,
{
    type Output = Result<Response<B>, E>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        loop {
            let saving = match self.as_mut().project().phase.project() {
                PhaseProj::Answered { status } => {
                    // Polled again after completion: an empty 500 rather than a panic.
                    let status = status.take().unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                    return Poll::Ready(Ok(status_only(status)));
                }
                PhaseProj::Saving { future } => {
                    return future.as_mut().poll(cx).map(Ok);
                }
                PhaseProj::Handler {
                    future,
                    session,
                    cookie_present,
                } => {
                    let response = match future.poll(cx) {
                        Poll::Pending => return Poll::Pending,
                        Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                        Poll::Ready(Ok(response)) => response,
                    };
                    let session = session.clone();
                    let cookie_present = *cookie_present;
                    if session.settings().save_every_request {
                        Box::pin(finish(session, cookie_present, response)) as BoxFuture<'static, _>
                    } else {
                        match respond(&session, cookie_present, session.outcome(), response) {
                            Next::Done(response) => {
                                self.as_mut()
                                    .project()
                                    .phase
                                    .set(Phase::Answered { status: None });
                                return Poll::Ready(Ok(response));
                            }
                            Next::Save(response, outcome) => {
                                Box::pin(save_then_cookie(session, outcome, response))
                                    as BoxFuture<'static, _>
                            }
                        }
                    }
                }
            };
            self.as_mut()
                .project()
                .phase
                .set(Phase::Saving { future: saving });
        }
    }
}

/// What the response phase does next.
enum Next<B> {
    /// The response is final.
    Done(Response<B>),
    /// The session must be saved, then the cookie set.
    Save(Response<B>, Outcome),
}

/// The response phase of Django's `SessionMiddleware.process_response`,
/// with `SESSION_SAVE_EVERY_REQUEST`'s load first.
async fn finish<B: Default>(
    session: Session,
    cookie_present: bool,
    response: Response<B>,
) -> Response<B> {
    let settings = session.settings();
    let fail_open = settings.outage_policy == OutagePolicy::FailOpen;
    let outcome = session.outcome();
    if settings.save_every_request
        && !outcome.outage
        && !outcome.modified
        && !outcome.loaded
        && !outcome.empty
        && response.status().as_u16() < 500
        && let Err(e) = session.load_quietly().await
        && !(fail_open && e.is_outage())
    {
        return store_error(&e);
    }
    match respond(&session, cookie_present, session.outcome(), response) {
        Next::Done(response) => response,
        Next::Save(response, outcome) => save_then_cookie(session, outcome, response).await,
    }
}

/// Everything of the response phase but the save: `Vary`, the removal
/// cookie, the outage policy, and whether a save is due.
fn respond<B: Default>(
    session: &Session,
    cookie_present: bool,
    outcome: Outcome,
    mut response: Response<B>,
) -> Next<B> {
    let settings = session.settings();
    if outcome.outage {
        if settings.outage_policy != OutagePolicy::FailOpen {
            return Next::Done(unavailable());
        }
        // Fail open: the handler's response, and no cookie at all, so the
        // browser keeps the one it has for when the store is back.
        if outcome.accessed {
            patch_vary(response.headers_mut());
        }
        return Next::Done(response);
    }
    let headers = response.headers_mut();
    if cookie_present && outcome.empty {
        headers.append(SET_COOKIE, header_value(cookie::removal_cookie(settings)));
        patch_vary(headers);
        return Next::Done(response);
    }
    if outcome.accessed {
        patch_vary(headers);
    }
    // A rotation that failed half-way (the handler got the error): nothing
    // more is saved and no cookie is sent; the client keeps the one it has.
    if outcome.frozen {
        return Next::Done(response);
    }
    // A session the handler saved itself must still reach the client: its
    // key may be new (Django keeps `modified` set after `save()` for this).
    let needs_save = outcome.modified || settings.save_every_request;
    if !(needs_save || outcome.saved) || outcome.empty || response.status().as_u16() >= 500 {
        return Next::Done(response);
    }
    if !needs_save {
        return Next::Done(set_cookie(session, response));
    }
    Next::Save(response, outcome)
}

/// Saves the session, then sets its cookie (or answers the store's error).
async fn save_then_cookie<B: Default>(
    session: Session,
    outcome: Outcome,
    response: Response<B>,
) -> Response<B> {
    if let Err(e) = session.save().await {
        // Fail open keeps the user's cookie, unless this request already
        // moved the session to a key the client does not know (a login's
        // rotation, or a session the handler saved): then the old cookie
        // names nothing, and answering 200 would be a silent logout.
        if session.settings().outage_policy == OutagePolicy::FailOpen
            && e.is_outage()
            && !(outcome.rotated || outcome.saved)
        {
            // Already logged with its source by the session's store call.
            tracing::error!(
                target: "sesame::middleware",
                "session store unavailable at save (fail-open): changes dropped, no cookie sent"
            );
            return response;
        }
        return store_error(&e);
    }
    // Read after the save: a save that merged another request's change
    // (say `set_expiry(0)`) stored that expiry, and the cookie must agree.
    set_cookie(&session, response)
}

/// Adds the session's `Set-Cookie`, with `Max-Age` and `expires` unless it
/// is a browser-session cookie.
fn set_cookie<B>(session: &Session, mut response: Response<B>) -> Response<B> {
    let Some(key) = session.session_key() else {
        return response;
    };
    // One clock reading for the age and the date.
    let now = OffsetDateTime::now_utc();
    let (browser_close, max_age) = session.cookie_lifetime(now);
    let value = cookie::set_cookie(
        session.settings(),
        &key,
        (!browser_close).then_some(max_age),
        now,
    );
    response
        .headers_mut()
        .append(SET_COOKIE, header_value(value));
    response
}

fn header_value(value: String) -> HeaderValue {
    // Settings are validated to printable ASCII and keys are [a-z0-9], so
    // this cannot fail; an empty value is the harmless fallback. `Bytes`
    // takes the string's buffer as it is: no copy.
    HeaderValue::from_maybe_shared(bytes::Bytes::from(value))
        .unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// Adds `Cookie` to `Vary` unless it (or `*`) is already there.
fn patch_vary(headers: &mut HeaderMap) {
    let present = headers.get_all(VARY).iter().any(|v| {
        v.to_str().is_ok_and(|v| {
            v.split(',')
                .map(str::trim)
                .any(|t| t == "*" || t.eq_ignore_ascii_case("cookie"))
        })
    });
    if !present {
        headers.append(VARY, HeaderValue::from_static("Cookie"));
    }
}

/// The outcome of a failed store call, as a response with an empty body.
fn store_error<B: Default>(error: &Error) -> Response<B> {
    match error {
        Error::Missing => {
            tracing::warn!(
                target: "sesame::middleware",
                "the session was deleted before the request finished (SessionInterrupted); answering 400"
            );
            status_only(StatusCode::BAD_REQUEST)
        }
        Error::Conflict => {
            tracing::warn!(target: "sesame::middleware", "session save conflict; answering 409");
            status_only(StatusCode::CONFLICT)
        }
        // Already logged, with its source, by the session's store call.
        e if e.is_outage() => unavailable(),
        Error::TooLarge { len, limit } => {
            tracing::warn!(
                target: "sesame::middleware",
                len,
                limit,
                "session too large to save (max_session_size, or a signed cookie over 4096 bytes); nothing saved, answering 413"
            );
            status_only(StatusCode::PAYLOAD_TOO_LARGE)
        }
        Error::Unsaveable(reason) if *reason == crate::session::STORE_UNAVAILABLE => unavailable(),
        e => {
            tracing::error!(target: "sesame::middleware", error = %e, "session save failed; answering 500");
            status_only(StatusCode::INTERNAL_SERVER_ERROR)
        }
    }
}

pub(crate) fn unavailable<B: Default>() -> Response<B> {
    let mut response = status_only(StatusCode::SERVICE_UNAVAILABLE);
    response
        .headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from_static(RETRY_AFTER_SECONDS));
    response
}

fn status_only<B: Default>(status: StatusCode) -> Response<B> {
    let mut response = Response::new(B::default());
    *response.status_mut() = status;
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backends::MemoryStore;

    /// A misconfigured app fails when the layer wraps its service, at
    /// start-up, naming the setting — not at the first request.
    #[test]
    #[should_panic(expected = "invalid session settings: SESSION_COOKIE_NAME")]
    fn wrapping_a_service_with_inconsistent_settings_panics_naming_the_setting() {
        let layer = SessionManagerLayer::new(MemoryStore::new()).with_cookie_name("__Host-sid");
        assert!(layer.validate().is_err());
        let _service = layer.layer(());
    }

    #[test]
    fn vary_is_patched_not_overwritten() {
        let mut h = HeaderMap::new();
        h.insert(VARY, HeaderValue::from_static("Accept-Encoding"));
        patch_vary(&mut h);
        let all: Vec<_> = h.get_all(VARY).iter().collect();
        assert_eq!(all, ["Accept-Encoding", "Cookie"]);
        patch_vary(&mut h);
        assert_eq!(h.get_all(VARY).iter().count(), 2);
        let mut h = HeaderMap::new();
        h.insert(VARY, HeaderValue::from_static("accept, COOKIE"));
        patch_vary(&mut h);
        assert_eq!(h.get_all(VARY).iter().count(), 1);
    }
}
