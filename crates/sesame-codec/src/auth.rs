//! Django's `_auth_user_hash`: the session's proof of the user's password.

use subtle::ConstantTimeEq;

use crate::{AUTH_HASH_SALT, salted_hmac};

/// Computes the `_auth_user_hash` Django stores at login, as 64 lowercase hex digits.
///
/// `password_field` is the user's stored password hash (the `password`
/// column, e.g. `pbkdf2_sha256$1000000$salt$…=`), not the clear-text
/// password; `secret` is `SECRET_KEY`.
///
/// # Examples
///
/// ```
/// let hash = sesame_codec::session_auth_hash("pbkdf2_sha256$1$salt$hash=", "secret");
/// assert_eq!(hash.len(), 64);
/// assert!(hash.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
/// ```
///
/// # Django
///
/// `AbstractBaseUser.get_session_auth_hash` in
/// `django/contrib/auth/base_user.py`: `salted_hmac(key_salt, self.password,
/// secret=secret, algorithm="sha256").hexdigest()` with key salt
/// [`AUTH_HASH_SALT`].
#[doc(alias = "get_session_auth_hash")]
#[must_use]
pub fn session_auth_hash(password_field: &str, secret: impl AsRef<[u8]>) -> String {
    let mac = salted_hmac(AUTH_HASH_SALT, password_field.as_bytes(), secret.as_ref());
    let mut hex = String::with_capacity(64);
    for byte in mac {
        hex.push(hex_digit(byte >> 4));
        hex.push(hex_digit(byte & 0x0f));
    }
    hex
}

fn hex_digit(nibble: u8) -> char {
    char::from(b"0123456789abcdef"[usize::from(nibble & 0x0f)])
}

/// Compares a stored `_auth_user_hash` with the expected one in constant time.
pub(crate) fn hash_matches(stored: &str, expected: &str) -> bool {
    bool::from(stored.as_bytes().ct_eq(expected.as_bytes()))
}
