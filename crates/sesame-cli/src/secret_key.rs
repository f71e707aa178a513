//! The demo's `SECRET_KEY` when none is configured: made once, kept in a
//! file, reused on every start so sessions survive restarts.

use std::fs::{self, OpenOptions};
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

use anyhow::Context as _;

/// Length of a generated key.
pub const KEY_LENGTH: usize = 64;

/// The characters of a generated key: those of Django's
/// `get_random_secret_key()`.
const ALPHABET: &[u8; 50] = b"abcdefghijklmnopqrstuvwxyz0123456789!@#$%^&*(-_=+)";

/// Where a key came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// The file did not exist: a new key was generated and written.
    Created,
    /// The key was read from the file a previous start wrote.
    Reused,
}

/// A secret key read from or written to a file. `Debug` never shows it.
pub struct SecretKey {
    /// The key itself: never log it.
    pub key: String,
    /// The file it lives in.
    pub path: PathBuf,
    /// Whether it was just created.
    pub origin: Origin,
}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretKey")
            .field("key", &"<redacted>")
            .field("path", &self.path)
            .field("origin", &self.origin)
            .finish()
    }
}

/// Reads the key stored at `path`, or, if there is none, generates a random
/// one (64 characters from the OS CSPRNG) and stores it there, readable by
/// the owner only (mode 0600).
///
/// Creation is atomic: the key is written to a temporary file which is then
/// hard-linked into place, so a crash never leaves a half-written key and
/// two processes starting at once end up with the same key.
///
/// # Errors
///
/// The file cannot be read or written, holds no key, or the OS random
/// source fails.
pub fn load_or_create(path: &Path) -> anyhow::Result<SecretKey> {
    if let Some(key) = read(path)? {
        return Ok(SecretKey {
            key,
            path: path.to_owned(),
            origin: Origin::Reused,
        });
    }
    let key = generate()?;
    let mut tmp_name = path.as_os_str().to_owned();
    tmp_name.push(format!(".{}.tmp", std::process::id()));
    let tmp = PathBuf::from(tmp_name);
    write_private(&tmp, &key).with_context(|| format!("cannot write {}", tmp.display()))?;
    let linked = fs::hard_link(&tmp, path);
    // The temporary name has done its job either way.
    let _ = fs::remove_file(&tmp);
    match linked {
        Ok(()) => Ok(SecretKey {
            key,
            path: path.to_owned(),
            origin: Origin::Created,
        }),
        // Another process created it first: use theirs.
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(SecretKey {
            key: read(path)?.with_context(|| format!("{} holds no key", path.display()))?,
            path: path.to_owned(),
            origin: Origin::Reused,
        }),
        Err(e) => Err(e).with_context(|| format!("cannot create {}", path.display())),
    }
}

/// The key stored at `path` by an earlier [`load_or_create`], `None` if
/// there is none; never creates one.
///
/// # Errors
///
/// The file exists but cannot be read or holds no key.
pub fn existing(path: &Path) -> anyhow::Result<Option<String>> {
    read(path)
}

/// The key in `path`, `None` if the file does not exist.
fn read(path: &Path) -> anyhow::Result<Option<String>> {
    match fs::read_to_string(path) {
        Ok(text) => {
            let key = text.trim();
            anyhow::ensure!(
                !key.is_empty(),
                "{} is empty: delete it to have a new SECRET_KEY made, or set SECRET_KEY",
                path.display()
            );
            Ok(Some(key.to_owned()))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// Writes `key` to a new file at `path`, owner read/write only.
fn write_private(path: &Path, key: &str) -> io::Result<()> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(key.as_bytes())?;
    file.write_all(b"\n")?;
    file.sync_all()
}

/// A new random key of [`KEY_LENGTH`] characters.
fn generate() -> anyhow::Result<String> {
    let mut out = String::with_capacity(KEY_LENGTH);
    let mut buf = [0u8; 96];
    while out.len() < KEY_LENGTH {
        getrandom::fill(&mut buf)
            .map_err(|e| anyhow::anyhow!("the OS random source failed: {e}"))?;
        // 250 = 5 * 50: dropping the top 6 byte values keeps every
        // character equally likely.
        for &b in buf.iter().filter(|&&b| b < 250) {
            if out.len() == KEY_LENGTH {
                break;
            }
            out.push(char::from(ALPHABET[usize::from(b % 50)]));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("sesame-cli-secret-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn generated_keys_are_long_random_and_from_the_alphabet() {
        let a = generate().unwrap();
        let b = generate().unwrap();
        assert_eq!(a.len(), KEY_LENGTH);
        assert_ne!(a, b);
        assert!(a.bytes().all(|c| ALPHABET.contains(&c)));
    }

    #[test]
    fn key_is_created_once_then_reused() {
        let dir = temp_dir("reuse");
        let path = dir.join("db.sqlite3.secret_key");
        let first = load_or_create(&path).unwrap();
        assert_eq!(first.origin, Origin::Created);
        assert_eq!(first.key.len(), KEY_LENGTH);
        let again = load_or_create(&path).unwrap();
        assert_eq!(again.origin, Origin::Reused);
        assert_eq!(again.key, first.key);
        // No temporary file is left behind.
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 1);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(!format!("{first:?}").contains(&first.key));
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn an_empty_key_file_is_an_error_not_an_empty_key() {
        let dir = temp_dir("empty");
        let path = dir.join("sesame.secret_key");
        fs::write(&path, "\n").unwrap();
        let err = load_or_create(&path).unwrap_err();
        assert!(err.to_string().contains("is empty"), "{err}");
        fs::remove_dir_all(dir).unwrap();
    }
}
