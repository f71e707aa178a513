//! Loopback ports for the servers tests start themselves.

use std::net::TcpListener;
use std::sync::{Mutex, PoisonError};

/// The ports handed out from: below Linux's ephemeral range (32768–60999
/// by default), which the kernel gives to outgoing connections and to
/// `bind` on port 0. A port from that range, free when a test picks it,
/// can become some connection's local port before the test's server binds
/// it; one below the range cannot.
const FIRST: u16 = 20_000;
const END: u16 = 32_000;

/// The next port to try, once this process has started handing them out.
static NEXT: Mutex<Option<u16>> = Mutex::new(None);

/// A loopback port nothing listens on, outside the range the kernel gives
/// to outgoing connections, and not handed out before in this process (the
/// range holds 12 000: no test process uses that many).
///
/// ```
/// let [a, b] = sesame_conformance::free_ports();
/// assert_ne!(a, b);
/// assert_ne!(sesame_conformance::free_port(), a);
/// ```
///
/// # Panics
///
/// Panics when every port of the range has been tried.
#[must_use]
pub fn free_port() -> u16 {
    let [port] = free_ports();
    port
}

/// `N` ports as [`free_port`] gives them, distinct from each other.
///
/// # Panics
///
/// Panics when every port of the range has been tried.
#[must_use]
pub fn free_ports<const N: usize>() -> [u16; N] {
    let mut next = NEXT.lock().unwrap_or_else(PoisonError::into_inner);
    // Processes started together (test binaries, doc-tests) start at
    // different places.
    let mut port = next.unwrap_or_else(|| {
        let span = u32::from(END - FIRST);
        FIRST + u16::try_from(std::process::id() * 97 % span).unwrap_or(0)
    });
    let mut ports = [0; N];
    let mut tried = 0;
    for slot in &mut ports {
        loop {
            assert!(
                tried < END - FIRST,
                "no free loopback port in {FIRST}..{END}"
            );
            tried += 1;
            let candidate = port;
            port = if port + 1 >= END { FIRST } else { port + 1 };
            if TcpListener::bind(("127.0.0.1", candidate)).is_ok() {
                *slot = candidate;
                break;
            }
        }
    }
    *next = Some(port);
    ports
}
