//! Session keys: the validated identifier a session cookie carries.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use thiserror::Error;

/// Length of the keys Sesame mints, as Django's `get_random_string(32, …)`.
pub const KEY_LENGTH: usize = 32;

/// Shortest key accepted from a client (Django's `_validate_session_key`).
pub const MIN_KEY_LENGTH: usize = 8;

/// Longest key accepted from a client: the width of `django_session.session_key`.
pub const MAX_KEY_LENGTH: usize = 40;

const ALPHABET: &[u8; 36] = b"abcdefghijklmnopqrstuvwxyz0123456789";

/// `KEY_CHARS[b]`: whether byte `b` is in [`ALPHABET`] (one lookup a byte
/// on the hot path of every request that sends a cookie).
const KEY_CHARS: [bool; 256] = {
    let mut table = [false; 256];
    let mut i = 0;
    while i < ALPHABET.len() {
        table[ALPHABET[i] as usize] = true;
        i += 1;
    }
    table
};

/// A session key: what the session cookie carries.
///
/// For server-side stores ([`KeyKind::Random`]) a key is 8 to 40 characters
/// of `[a-z0-9]`, held inline without allocating. Only keys of this shape are
/// ever looked up in a store, so a forged cookie full of quotes, path
/// separators or control characters costs nothing. For a store that keeps the
/// session in the cookie itself ([`KeyKind::Signed`], Django's
/// `signed_cookies`) the key is the signed value, up to
/// [`MAX_SIGNED_KEY_LENGTH`] bytes of URL-safe base64, `:` and `.`.
///
/// Its `Debug` and [`redacted`](Self::redacted) forms show only the first four
/// characters, so a log line never holds a usable key.
///
/// # Examples
///
/// ```
/// use sesame::SessionKey;
///
/// let key = SessionKey::generate();
/// assert_eq!(key.as_str().len(), 32);
/// assert_eq!(key.as_str().parse::<SessionKey>().unwrap(), key);
/// assert!("../../etc/passwd".parse::<SessionKey>().is_err());
/// assert!("short".parse::<SessionKey>().is_err());
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionKey(Repr);

#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Repr {
    Random {
        len: u8,
        bytes: [u8; MAX_KEY_LENGTH],
    },
    Signed(Arc<str>),
}

/// Longest cookie value accepted as a [`KeyKind::Signed`] key: the 4096 bytes
/// browsers keep for one cookie.
pub const MAX_SIGNED_KEY_LENGTH: usize = 4096;

/// What the keys of a store look like, so the middleware knows which cookie
/// values to accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum KeyKind {
    /// Random keys of `[a-z0-9]` naming a record kept server-side.
    #[default]
    Random,
    /// The cookie value is the signed session itself (Django's `signed_cookies`).
    ///
    /// Such a key carries its expiry in its signed timestamp, so moving the
    /// expiry means re-signing: a new key. The [`Session`](crate::Session)
    /// therefore saves an unchanged session on such a store rather than
    /// calling [`touch`](crate::backends::SessionStore::touch).
    Signed,
}

/// Why a string is not a [`SessionKey`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error("a session key is 8 to 40 characters of [a-z0-9]")]
pub struct InvalidKey;

impl SessionKey {
    /// Mints a new random key: 32 characters of `[a-z0-9]` from the operating
    /// system's CSPRNG.
    ///
    /// # Panics
    ///
    /// Panics if the operating system's random source fails, as Django's
    /// `secrets` module would raise: a key must never come from a weaker source.
    #[must_use]
    pub fn generate() -> Self {
        let mut out = [0u8; MAX_KEY_LENGTH];
        let mut filled = 0;
        let mut buf = [0u8; 48];
        while filled < KEY_LENGTH {
            getrandom::fill(&mut buf).expect("the OS random source is available");
            for &b in &buf {
                // 252 = 7 * 36: rejecting the top 4 values keeps every
                // character equally likely.
                if b < 252 && filled < KEY_LENGTH {
                    out[filled] = ALPHABET[usize::from(b % 36)];
                    filled += 1;
                }
            }
        }
        Self(Repr::Random {
            #[allow(clippy::cast_possible_truncation)] // KEY_LENGTH is 32
            len: KEY_LENGTH as u8,
            bytes: out,
        })
    }

    /// Validates raw bytes (such as a cookie value) as a key.
    ///
    /// # Errors
    ///
    /// [`InvalidKey`] unless the input is 8 to 40 bytes of `[a-z0-9]`.
    pub fn from_bytes(raw: &[u8]) -> Result<Self, InvalidKey> {
        if !(MIN_KEY_LENGTH..=MAX_KEY_LENGTH).contains(&raw.len())
            || !raw
                .iter()
                .fold(true, |ok, &b| ok & KEY_CHARS[usize::from(b)])
        {
            return Err(InvalidKey);
        }
        let mut bytes = [0u8; MAX_KEY_LENGTH];
        bytes[..raw.len()].copy_from_slice(raw);
        Ok(Self(Repr::Random {
            #[allow(clippy::cast_possible_truncation)] // at most 40
            len: raw.len() as u8,
            bytes,
        }))
    }

    /// Validates raw bytes as a signed-cookie key: [`MIN_KEY_LENGTH`] to
    /// [`MAX_SIGNED_KEY_LENGTH`] bytes of URL-safe base64, `:` and `.`.
    ///
    /// Only the shape is checked here; the signature is checked by the store.
    ///
    /// # Errors
    ///
    /// [`InvalidKey`] when the input has another shape.
    ///
    /// ```
    /// use sesame::SessionKey;
    ///
    /// assert!(SessionKey::from_signed_bytes(b"eyJhIjoxfQ:1r31eq:abc_-").is_ok());
    /// assert!(SessionKey::from_signed_bytes(b"not signed; at all").is_err());
    /// ```
    pub fn from_signed_bytes(raw: &[u8]) -> Result<Self, InvalidKey> {
        // Django's `_validate_session_key` (at least 8 characters) applies
        // to every engine, `signed_cookies` included.
        if raw.len() < MIN_KEY_LENGTH
            || raw.len() > MAX_SIGNED_KEY_LENGTH
            || !raw
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b':' | b'.'))
        {
            return Err(InvalidKey);
        }
        // Checked above: ASCII only.
        let text = std::str::from_utf8(raw).map_err(|_| InvalidKey)?;
        Ok(Self(Repr::Signed(Arc::from(text))))
    }

    /// Validates a cookie value as a key of the given kind.
    ///
    /// # Errors
    ///
    /// [`InvalidKey`] when the value does not have that kind's shape.
    pub fn parse_kind(raw: &[u8], kind: KeyKind) -> Result<Self, InvalidKey> {
        match kind {
            KeyKind::Random => Self::from_bytes(raw),
            KeyKind::Signed => Self::from_signed_bytes(raw),
        }
    }

    /// Which kind of key this is.
    #[must_use]
    pub fn kind(&self) -> KeyKind {
        match self.0 {
            Repr::Random { .. } => KeyKind::Random,
            Repr::Signed(_) => KeyKind::Signed,
        }
    }

    /// The key as a string slice.
    #[must_use]
    pub fn as_str(&self) -> &str {
        match &self.0 {
            // Only ASCII bytes are ever stored, so this cannot fail.
            Repr::Random { len, bytes } => {
                std::str::from_utf8(&bytes[..usize::from(*len)]).unwrap_or_default()
            }
            Repr::Signed(text) => text,
        }
    }

    /// A form of the key safe to log: its first four characters and an ellipsis.
    ///
    /// ```
    /// let key: sesame::SessionKey = "abcdefgh12345678".parse().unwrap();
    /// assert_eq!(key.redacted().to_string(), "abcd…");
    /// ```
    #[must_use]
    pub fn redacted(&self) -> Redacted<'_> {
        let text = self.as_str();
        Redacted(text.get(..4).unwrap_or(text))
    }
}

/// A loggable prefix of a [`SessionKey`]; see [`SessionKey::redacted`].
#[derive(Debug, Clone, Copy)]
pub struct Redacted<'a>(&'a str);

impl fmt::Display for Redacted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}…", self.0)
    }
}

impl fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionKey({})", self.redacted())
    }
}

impl FromStr for SessionKey {
    type Err = InvalidKey;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::from_bytes(s.as_bytes())
    }
}

impl AsRef<str> for SessionKey {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_have_django_shape_and_differ() {
        let a = SessionKey::generate();
        let b = SessionKey::generate();
        assert_ne!(a, b);
        assert_eq!(a.as_str().len(), 32);
        assert!(a.as_str().bytes().all(|c| ALPHABET.contains(&c)));
    }

    /// 10⁵ keys: no duplicate, no shared 10-character prefix (p ≈ 10⁻⁶ by chance), and every
    /// position uniform over `[a-z0-9]` (a chi-square test per position).
    ///
    /// Taking `byte % 36` without rejecting the top four byte values makes
    /// `a`–`d` 8/7 as likely as the rest: χ² ≈ 190 per position, far above
    /// the bound of 100 (35 degrees of freedom: mean 35, p ≈ 10⁻⁸ per position
    /// for a uniform source).
    #[test]
    fn generated_keys_are_unique_and_uniform_per_position() {
        const N: usize = 100_000;
        let mut counts = [[0_u32; 36]; KEY_LENGTH];
        let mut keys = std::collections::HashSet::with_capacity(N);
        let mut prefixes = std::collections::HashSet::with_capacity(N);
        for _ in 0..N {
            let key = SessionKey::generate();
            for (position, b) in key.as_str().bytes().enumerate() {
                let index = ALPHABET
                    .iter()
                    .position(|&c| c == b)
                    .expect("a character of the alphabet");
                counts[position][index] += 1;
            }
            assert!(
                prefixes.insert(key.as_str()[..10].to_owned()),
                "shared prefix"
            );
            assert!(keys.insert(key), "duplicate key");
        }
        #[allow(clippy::cast_precision_loss)] // N is far below 2^52
        let expected = N as f64 / 36.0;
        for (position, row) in counts.iter().enumerate() {
            let chi2: f64 = row
                .iter()
                .map(|&n| (f64::from(n) - expected).powi(2) / expected)
                .sum();
            assert!(chi2 < 100.0, "position {position}: chi-square {chi2:.1}");
        }
    }

    #[test]
    fn bad_keys_are_rejected() {
        for raw in [
            "",
            "1234567",
            "ABCDEFGHIJ",
            "abc def gh",
            "abcdefgh/",
            "abcdefgh\"",
            "abcdefgh\0",
            "abcdefghé",
            "..%2f..%2fetc",
        ] {
            assert!(raw.parse::<SessionKey>().is_err(), "{raw:?}");
        }
        assert!(SessionKey::from_bytes(&[b'a'; 41]).is_err());
        assert!(SessionKey::from_bytes(&[0xff; 10]).is_err());
        assert!(SessionKey::from_bytes(&[b'a'; 40]).is_ok());
        assert!(SessionKey::from_bytes(&[b'a'; 8]).is_ok());
    }

    #[test]
    fn signed_keys_accept_only_signed_shapes() {
        let key = SessionKey::from_signed_bytes(
            b".eJyrVkrOz8lJTS7JzM9TsjLUUcpMUbIyNDA2NQQAaRoG:1r31eq:x-_y",
        )
        .unwrap();
        assert_eq!(key.kind(), KeyKind::Signed);
        assert_eq!(format!("{key:?}"), "SessionKey(.eJy…)");
        for raw in [
            &b""[..],
            b"short",
            b"abcdefg",
            b"abcd efgh",
            b"abcd;efgh",
            b"abcd\"efgh",
            b"abcd/efgh",
            b"abcdefgh\xff",
        ] {
            assert!(SessionKey::from_signed_bytes(raw).is_err(), "{raw:?}");
        }
        assert!(SessionKey::from_signed_bytes(&[b'a'; MAX_SIGNED_KEY_LENGTH]).is_ok());
        assert!(SessionKey::from_signed_bytes(&[b'a'; MAX_SIGNED_KEY_LENGTH + 1]).is_err());
        assert_eq!(
            SessionKey::parse_kind(b"abcdefgh", KeyKind::Random)
                .unwrap()
                .kind(),
            KeyKind::Random
        );
    }

    #[test]
    fn debug_never_shows_the_whole_key() {
        let key = SessionKey::generate();
        let shown = format!("{key:?} {}", key.redacted());
        assert!(!shown.contains(key.as_str()));
    }
}
