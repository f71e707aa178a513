//! A store restarted under load, measured the same way for every store:
//! clients loop on one session each, every request is timed and its status
//! kept, and [`Outage::of`] sums up what the clients saw.

use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use http::StatusCode;
use sesame::SessionKey;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// One request of the load, as its client saw it.
#[derive(Debug, Clone)]
pub(crate) struct Sample {
    pub(crate) started: Duration,
    pub(crate) latency: Duration,
    /// `None`: no answer within the client's bound (hung).
    pub(crate) status: Option<StatusCode>,
}

/// Starts one client per key, each sending `send(key)` in a loop until
/// `stop_at` after `t0` (5 ms apart, so failing fast is no busy loop), each
/// request bounded by `bound`; a new session key in a reply is used from
/// then on. The handle yields every sample once all clients stopped.
pub(crate) fn clients<F, Fut>(
    keys: Vec<SessionKey>,
    t0: Instant,
    stop_at: Duration,
    bound: Duration,
    send: F,
) -> JoinHandle<Vec<Sample>>
where
    F: Fn(SessionKey) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = (StatusCode, Option<SessionKey>)> + Send,
{
    let samples = Arc::new(Mutex::new(Vec::new()));
    let tasks: Vec<_> = keys
        .into_iter()
        .map(|mut key| {
            let send = send.clone();
            let samples = Arc::clone(&samples);
            tokio::spawn(async move {
                while t0.elapsed() < stop_at {
                    let started = t0.elapsed();
                    let answer = tokio::time::timeout(bound, send(key.clone())).await;
                    let latency = t0.elapsed() - started;
                    let status = answer.ok().map(|(status, new_key)| {
                        if let Some(new_key) = new_key {
                            key = new_key;
                        }
                        status
                    });
                    samples
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .push(Sample {
                            started,
                            latency,
                            status,
                        });
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            })
        })
        .collect();
    tokio::spawn(async move {
        for task in tasks {
            task.await.expect("a client does not panic");
        }
        let samples = samples.lock().unwrap_or_else(PoisonError::into_inner);
        samples.clone()
    })
}

/// What the clients saw of an outage that ended (the store came back) at `up`.
#[derive(Debug)]
pub(crate) struct Outage {
    pub(crate) requests: usize,
    /// Requests without an answer within the bound.
    pub(crate) hung: usize,
    /// Requests answered with anything but 200 (hung ones included).
    pub(crate) failed: usize,
    /// Failures other than the outage policy's 503.
    pub(crate) not_503: Vec<Sample>,
    pub(crate) slowest: Duration,
    /// From `up` to the end of the first successful request started after it.
    pub(crate) first_back: Option<Duration>,
    /// Requests started `recovery` or more after `up`, and how many succeeded.
    pub(crate) recovered: usize,
    pub(crate) recovered_ok: usize,
}

impl Outage {
    pub(crate) fn of(samples: &[Sample], up: Duration, recovery: Duration) -> Self {
        let ok = |s: &Sample| s.status == Some(StatusCode::OK);
        let recovered: Vec<&Sample> = samples
            .iter()
            .filter(|s| s.started >= up + recovery)
            .collect();
        Self {
            requests: samples.len(),
            hung: samples.iter().filter(|s| s.status.is_none()).count(),
            failed: samples.iter().filter(|s| !ok(s)).count(),
            not_503: samples
                .iter()
                .filter(|s| !ok(s) && s.status != Some(StatusCode::SERVICE_UNAVAILABLE))
                .cloned()
                .collect(),
            slowest: samples.iter().map(|s| s.latency).max().unwrap_or_default(),
            first_back: samples
                .iter()
                .filter(|s| s.started >= up && ok(s))
                .map(|s| s.started + s.latency - up)
                .min(),
            recovered_ok: recovered.iter().filter(|s| ok(s)).count(),
            recovered: recovered.len(),
        }
    }

    /// Percent of the requests after recovery that succeeded.
    #[allow(clippy::cast_precision_loss, reason = "a percentage of a few thousand")]
    pub(crate) fn rate(&self) -> f64 {
        100.0 * self.recovered_ok as f64 / self.recovered.max(1) as f64
    }

    /// The outage's rules: nothing hung, every failure a 503, the outage
    /// seen, and ≥ 99 % success (of ≥ 50 requests) after recovery.
    pub(crate) fn check(&self) {
        assert_eq!(self.hung, 0, "hung requests");
        assert!(
            self.not_503.is_empty(),
            "failures other than 503: {:?}",
            self.not_503
        );
        assert!(self.failed > 0, "no request saw the outage");
        assert!(
            self.recovered >= 50,
            "too few requests after recovery: {}",
            self.recovered
        );
        assert!(self.rate() >= 99.0, "{:.1} % after recovery", self.rate());
    }
}
