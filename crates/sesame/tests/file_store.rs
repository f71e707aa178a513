//! `FileStore` beyond the conformance suites: Django's files load, ours are
//! Django's, disk errors surface, and `clear_expired` cleans up leftovers.

mod sql_support;

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration as StdDuration, SystemTime};

use serde_json::{Value, json};
use sesame::backends::{FileStore, Record, SessionStore};
use sesame::codec::{DB_SALT, SessionMap};
use sesame::{Error, SessionKey};
use time::{Duration, OffsetDateTime};

use sql_support::{fresh_name, signer};

const VECTORS: &str = include_str!("../../sesame-codec/testdata/django-5.2.19-vectors.json");

/// A fresh, existing directory for one test.
fn fresh_dir() -> PathBuf {
    let dir = std::env::temp_dir()
        .join("sesame-tests-files")
        .join(fresh_name());
    fs::create_dir_all(&dir).expect("create the test directory");
    dir
}

fn map(value: Value) -> SessionMap {
    match value {
        Value::Object(map) => map,
        other => panic!("not an object: {other}"),
    }
}

/// `value` with every number as an `f64`: the vectors' text (`1.5e-07`) and
/// ours (`1.5e-7`) spell some floats differently.
fn canonical(value: Value) -> Value {
    match value {
        Value::Number(n) => n.as_f64().map_or(Value::Number(n), |f| json!(f)),
        Value::Array(items) => items.into_iter().map(canonical).collect(),
        Value::Object(map) => {
            Value::Object(map.into_iter().map(|(k, v)| (k, canonical(v))).collect())
        }
        other => other,
    }
}

fn set_mtime(path: &Path, at: SystemTime) {
    fs::File::options()
        .write(true)
        .open(path)
        .expect("open to set mtime")
        .set_modified(at)
        .expect("set mtime");
}

/// The names in `dir`, without the store's lock files (`.sesame-lock-NN`,
/// made once and kept).
fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<_> = fs::read_dir(dir)
        .expect("list the directory")
        .map(|e| e.expect("entry").file_name().into_string().expect("UTF-8"))
        .filter(|name| !name.starts_with(".sesame-lock-"))
        .collect();
    names.sort();
    names
}

/// The directory's lock files, each opened apart from the store's own
/// handles: a lock taken on one excludes the store as another process's
/// would (`flock` locks belong to an open file, not to a process).
fn lock_files(dir: &Path) -> Vec<fs::File> {
    (0..64)
        .map(|stripe| {
            fs::File::options()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(dir.join(format!(".sesame-lock-{stripe:02}")))
                .expect("open a lock file")
        })
        .collect()
}

/// `nobody`'s user and group id.
const NOBODY: u32 = 65534;

/// Runs this binary's test `name` again as `nobody`, when this process is
/// root: root's capabilities ignore mode bits, which the test is about.
/// `env` is passed on; the child's temporary directory is one it may write.
///
/// Returns `true` when the test ran (and passed) as `nobody`, `false` when
/// this process is not root and should run the test itself. Prints a SKIP
/// line and returns `true` where root cannot become `nobody` (no
/// `setpriv(1)`, or a user namespace that maps only root).
#[cfg(unix)]
fn ran_as_nobody(name: &str, env: &[(&str, &Path)]) -> bool {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    let probe = fresh_dir();
    if fs::metadata(&probe).expect("stat a fresh directory").uid() != 0 {
        return false;
    }
    fs::set_permissions(&probe, fs::Permissions::from_mode(0o777))
        .expect("open the child's temporary directory to all");
    let as_nobody = |program: &Path| {
        let mut command = std::process::Command::new("setpriv");
        command
            .args([
                format!("--reuid={NOBODY}"),
                format!("--regid={NOBODY}"),
                "--clear-groups".to_owned(),
            ])
            .arg(program);
        command
    };
    let switched = as_nobody(Path::new("true")).output();
    if !switched.as_ref().is_ok_and(|o| o.status.success()) {
        let why = match switched {
            Err(e) => e.to_string(),
            Ok(o) => String::from_utf8_lossy(&o.stderr).trim().to_owned(),
        };
        eprintln!("SKIP {name}: running as root and cannot become nobody with setpriv(1): {why}");
        return true;
    }
    let exe = std::env::current_exe().expect("this test binary");
    let output = as_nobody(&exe)
        .args(["--exact", name, "--nocapture", "--test-threads=1"])
        .env("TMPDIR", &probe)
        .envs(env.iter().copied())
        .output()
        .expect("setpriv ran a moment ago");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.contains("test result: ok. 1 passed"),
        "{name} as nobody ({}): {stdout}{stderr}",
        output.status
    );
    true
}

/// A session `{"n": 1}` created in `store`, live for an hour.
async fn seeded(store: &FileStore) -> sesame::backends::Saved {
    store
        .create(&Record::new(
            map(json!({"n": 1})),
            OffsetDateTime::now_utc() + Duration::hours(1),
        ))
        .await
        .expect("create a session")
}

fn mtime(path: &Path) -> OffsetDateTime {
    let meta = fs::metadata(path).expect("stat a session file");
    OffsetDateTime::from(meta.modified().expect("file systems here keep mtimes"))
}

#[tokio::test]
async fn files_django_wrote_load() {
    let vectors: Value = serde_json::from_str(VECTORS).unwrap();
    let secret = vectors["settings"]["SECRET_KEY"].as_str().unwrap();
    let age = vectors["settings"]["SESSION_COOKIE_AGE"].as_i64().unwrap();
    let dir = fresh_dir();
    let store = FileStore::new(&dir, sesame::Signer::new(secret)).with_max_age(age);
    let mut loaded = 0;
    for case in vectors["encode_cases"].as_array().unwrap() {
        let db = &case["db"];
        let want = map(db["decoded"].clone());
        // A dict JSON cannot show (NaN) is given as its Python repr.
        if want.contains_key("_session_expiry") || want.contains_key("$python_repr") {
            continue;
        }
        // Django's `save`: the signed `session_data`, as is, in `sessionid<key>`.
        let key = SessionKey::generate();
        let path = dir.join(format!("sessionid{}", key.as_str()));
        fs::write(&path, db["session_data"].as_str().unwrap()).unwrap();
        let record = store
            .load(&key)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("{}: a fresh Django file did not load", case["name"]));
        assert_eq!(
            canonical(Value::Object(std::sync::Arc::unwrap_or_clone(record.data))),
            canonical(Value::Object(want)),
            "{}",
            case["name"]
        );
        assert_eq!(
            record.expires_at,
            mtime(&path) + Duration::seconds(age),
            "{}: expiry is mtime + SESSION_COOKIE_AGE",
            case["name"]
        );
        loaded += 1;
    }
    assert!(loaded > 10, "only {loaded} vectors were tried");

    // Django's empty placeholder (a crash between `O_EXCL` and the rename)
    // is an empty session, as Django reads it.
    let key = SessionKey::generate();
    fs::write(dir.join(format!("sessionid{}", key.as_str())), "").unwrap();
    assert_eq!(store.load(&key).await.unwrap().unwrap().data.len(), 0);
}

#[tokio::test]
async fn a_django_file_past_its_mtime_age_is_expired() {
    let dir = fresh_dir();
    let store = FileStore::new(&dir, signer()).with_max_age(60);
    let created = store
        .create(&Record::new(
            map(json!({"n": 1})),
            OffsetDateTime::now_utc() + Duration::hours(1),
        ))
        .await
        .unwrap();
    let path = store.path_of(&created.key).unwrap();
    set_mtime(&path, SystemTime::now() - StdDuration::from_secs(61));
    assert!(store.load(&created.key).await.unwrap().is_none());
    // An idle-seconds expiry counts from the mtime too.
    let idle = store
        .create(&Record::new(
            map(json!({"_session_expiry": 3600})),
            OffsetDateTime::now_utc() + Duration::hours(1),
        ))
        .await
        .unwrap();
    let path = store.path_of(&idle.key).unwrap();
    let written = mtime(&path);
    assert!((written - OffsetDateTime::now_utc()).abs() < Duration::seconds(5));
    set_mtime(&path, SystemTime::now() - StdDuration::from_secs(3601));
    assert!(store.load(&idle.key).await.unwrap().is_none());
}

#[tokio::test]
async fn our_files_have_djangos_name_and_content() {
    let dir = fresh_dir();
    let store = FileStore::new(&dir, signer())
        .with_cookie_name("sid")
        .with_max_age(1000);
    let expires_at = OffsetDateTime::now_utc() + Duration::seconds(1000);
    let data = map(json!({"counter": 1, "user": "élève"}));
    let saved = store
        .create(&Record::new(data.clone(), expires_at))
        .await
        .unwrap();
    let path = dir.join(format!("sid{}", saved.key.as_str()));
    assert_eq!(store.path_of(&saved.key), Some(path.clone()));
    let content = fs::read_to_string(&path).unwrap();
    assert_eq!(content.split(':').count(), 3, "{content}");
    assert_eq!(
        signer()
            .loads_session(&content, DB_SALT, None, OffsetDateTime::now_utc())
            .unwrap(),
        data
    );
    // Default expiry: the mtime is the write time, as Django's files, and
    // Django's rule (mtime + SESSION_COOKIE_AGE) gives our expiry back.
    assert_eq!(mtime(&path) + Duration::seconds(1000), expires_at);
    assert_eq!(saved.version.as_bytes(), content.as_bytes());

    // Only session files and nothing else remain: no temp files (the lock
    // files are made once and kept; Django's `clear_expired` skips them).
    assert_eq!(names_in(&dir), [format!("sid{}", saved.key.as_str())]);
    let record = store.load(&saved.key).await.unwrap().unwrap();
    store.save(&saved.key, &record).await.unwrap();
    assert_eq!(names_in(&dir), [format!("sid{}", saved.key.as_str())]);
    store.delete(&saved.key).await.unwrap();
    assert_eq!(names_in(&dir), Vec::<String>::new());
    for name in fs::read_dir(&dir).unwrap() {
        let name = name.unwrap().file_name().into_string().unwrap();
        let stripe = name.strip_prefix(".sesame-lock-").expect("a lock file");
        assert!(stripe.parse::<u8>().is_ok_and(|n| n < 64), "{name}");
    }
}

#[tokio::test]
async fn a_directory_that_is_a_file_gives_backend_errors() {
    // A regular file where the directory should be fails even for root.
    let dir = fresh_dir();
    let not_a_dir = dir.join("file");
    fs::write(&not_a_dir, "").unwrap();
    let store = FileStore::new(&not_a_dir, signer());
    let record = Record::new(
        SessionMap::new(),
        OffsetDateTime::now_utc() + Duration::hours(1),
    );
    let err = store.create(&record).await.unwrap_err();
    assert!(matches!(err, Error::Backend(_)), "{err:?}");
    assert!(matches!(store.migrate().await, Err(Error::Backend(_))));
    assert!(matches!(
        store.load(&SessionKey::generate()).await,
        Err(Error::Backend(_))
    ));
    assert!(matches!(
        store.clear_expired().await,
        Err(Error::Backend(_))
    ));
}

#[cfg(unix)]
#[tokio::test]
async fn a_read_only_directory_gives_backend_errors() {
    use std::os::unix::fs::PermissionsExt;

    if ran_as_nobody("a_read_only_directory_gives_backend_errors", &[]) {
        return;
    }
    let dir = fresh_dir();
    let store = FileStore::new(&dir, signer());
    let record = Record::new(
        map(json!({"n": 1})),
        OffsetDateTime::now_utc() + Duration::hours(1),
    );
    let saved = store.create(&record).await.unwrap();
    let loaded = store.load(&saved.key).await.unwrap().unwrap();
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o555)).unwrap();
    if fs::write(dir.join("probe"), "").is_ok() {
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
        panic!("a read-only directory took a write: mode bits are ignored here");
    }
    let create = store.create(&record).await;
    let save = store.save(&saved.key, &loaded).await;
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
    assert!(matches!(create, Err(Error::Backend(_))), "{create:?}");
    assert!(matches!(save, Err(Error::Backend(_))), "{save:?}");
    // Nothing was lost or half-written.
    assert_eq!(
        store.load(&saved.key).await.unwrap().unwrap().data,
        loaded.data
    );
}

#[tokio::test]
async fn migrate_makes_the_lock_files_and_leaves_nothing_else() {
    let dir = fresh_dir().join("sessions");
    let store = FileStore::new(&dir, signer());
    for _ in 0..2 {
        store.migrate().await.unwrap();
        let mut names: Vec<String> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        let expected: Vec<String> = (0..64).map(|n| format!(".sesame-lock-{n:02}")).collect();
        assert_eq!(names, expected);
    }
}

#[tokio::test]
async fn migrate_fails_where_a_lock_file_cannot_be_opened() {
    // A directory at a lock file's path cannot be opened for writing, even by root.
    let dir = fresh_dir();
    fs::create_dir(dir.join(".sesame-lock-07")).unwrap();
    let err = FileStore::new(&dir, signer()).migrate().await.unwrap_err();
    assert!(matches!(err, Error::Backend(_)), "{err:?}");
}

/// A directory made by an earlier run, then made read-only: its lock files
/// still open, but no session file can be created, and `migrate` says so.
#[cfg(unix)]
#[tokio::test]
async fn migrate_fails_on_a_read_only_directory() {
    use std::os::unix::fs::PermissionsExt;

    if ran_as_nobody("migrate_fails_on_a_read_only_directory", &[]) {
        return;
    }
    let dir = fresh_dir();
    let store = FileStore::new(&dir, signer());
    store.migrate().await.unwrap();
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o555)).unwrap();
    if fs::write(dir.join("probe"), "").is_ok() {
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
        panic!("a read-only directory took a write: mode bits are ignored here");
    }
    let migrated = store.migrate().await;
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
    assert!(matches!(migrated, Err(Error::Backend(_))), "{migrated:?}");
}

/// Lock files another user made (`sesame migrate` run as root, the service
/// as its own user) cannot be opened for writing: they are opened read-only,
/// which is all `flock` needs, and every operation works.
#[cfg(unix)]
#[tokio::test]
async fn lock_files_another_user_made_are_opened_read_only() {
    use std::os::unix::fs::PermissionsExt;

    const NAME: &str = "lock_files_another_user_made_are_opened_read_only";
    const SHARED: &str = "SESAME_TEST_SHARED_DIR";
    let dir = if let Some(dir) = std::env::var_os(SHARED) {
        // The run as `nobody`: root made the lock files.
        PathBuf::from(dir)
    } else {
        let dir = fresh_dir();
        FileStore::new(&dir, signer()).migrate().await.unwrap();
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o777)).unwrap();
        if ran_as_nobody(NAME, &[(SHARED, &dir)]) {
            return;
        }
        // Not root: lock files without the owner's write bit stand in for
        // another user's.
        for lock in fs::read_dir(&dir).unwrap() {
            fs::set_permissions(lock.unwrap().path(), fs::Permissions::from_mode(0o444)).unwrap();
        }
        dir
    };
    assert!(
        fs::File::options()
            .write(true)
            .open(dir.join(".sesame-lock-00"))
            .is_err(),
        "the lock files must not be writable here"
    );

    let store = FileStore::new(&dir, signer());
    store.migrate().await.unwrap();
    let saved = seeded(&store).await;
    let mut record = store.load(&saved.key).await.unwrap().unwrap();
    record.data = map(json!({"n": 2})).into();
    store.save(&saved.key, &record).await.unwrap();
    store
        .touch(&saved.key, OffsetDateTime::now_utc() + Duration::hours(2))
        .await
        .unwrap();
    assert_eq!(
        *store.load(&saved.key).await.unwrap().unwrap().data,
        map(json!({"n": 2}))
    );
    store.delete(&saved.key).await.unwrap();
    assert!(store.load(&saved.key).await.unwrap().is_none());
    store.clear_expired().await.unwrap();
}

/// A full disk, for real: `SESAME_TEST_SMALL_FS_DIR` is a small file system
/// of its own (`.ci/run` mounts a 256 KiB tmpfs), filled here to the last
/// byte. Every write is an error, none is lost silently, and nothing is left
/// half-written.
#[tokio::test]
async fn a_full_disk_is_an_error_and_loses_nothing() {
    let Ok(root) = std::env::var("SESAME_TEST_SMALL_FS_DIR") else {
        eprintln!(
            "SKIP a_full_disk_is_an_error_and_loses_nothing: SESAME_TEST_SMALL_FS_DIR is unset"
        );
        return;
    };
    let dir = Path::new(&root).join(fresh_name());
    fs::create_dir(&dir).unwrap();
    let store = FileStore::new(&dir, signer());
    let in_an_hour = OffsetDateTime::now_utc() + Duration::hours(1);
    let saved = store
        .create(&Record::new(map(json!({"n": 1})), in_an_hour))
        .await
        .unwrap();
    let loaded = store.load(&saved.key).await.unwrap().unwrap();

    // Fill the file system: one file, written until the disk says no.
    let filler = dir.join("filler");
    let mut file = fs::File::create(&filler).unwrap();
    let chunk = vec![b'x'; 4096];
    let full = loop {
        if let Err(e) = std::io::Write::write_all(&mut file, &chunk) {
            break e;
        }
    };
    drop(file);
    assert_eq!(full.raw_os_error(), Some(28), "ENOSPC expected: {full}");

    let mut changed = loaded.clone();
    changed.data = map(json!({"n": 2, "pad": "y".repeat(8192)})).into();
    let save = store.save(&saved.key, &changed).await;
    let create = store.create(&changed).await;
    assert!(matches!(save, Err(Error::Backend(_))), "{save:?}");
    assert!(matches!(create, Err(Error::Backend(_))), "{create:?}");
    // The session is as it was, and no temp file is left behind.
    assert_eq!(
        store.load(&saved.key).await.unwrap().unwrap().data,
        loaded.data
    );
    let names: Vec<String> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|name| name != "filler")
        .collect();
    assert_eq!(
        names,
        [store
            .path_of(&saved.key)
            .unwrap()
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()]
    );

    // Space again: the same save lands.
    fs::remove_file(&filler).unwrap();
    store.save(&saved.key, &changed).await.unwrap();
    assert_eq!(
        store.load(&saved.key).await.unwrap().unwrap().data,
        changed.data
    );
    fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn a_file_past_the_decoders_limit_is_corrupt() {
    let dir = fresh_dir();
    let store = FileStore::new(&dir, signer());
    let saved = seeded(&store).await;
    // 64 MiB of zeros, sparse: four times what the decoder accepts.
    let path = store.path_of(&saved.key).unwrap();
    fs::File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(64 << 20)
        .unwrap();
    let err = store.load(&saved.key).await.unwrap_err();
    assert!(matches!(err, Error::Corrupt(_)), "{err:?}");
}

#[tokio::test]
async fn clear_expired_removes_expired_files_and_stale_leftovers_only() {
    let dir = fresh_dir();
    let store = FileStore::new(&dir, signer());
    let live = store
        .create(&Record::new(
            map(json!({"n": 1})),
            OffsetDateTime::now_utc() + Duration::hours(1),
        ))
        .await
        .unwrap();
    let expired = store
        .create(&Record::new(
            map(json!({"n": 2})),
            OffsetDateTime::now_utc() - Duration::hours(1),
        ))
        .await
        .unwrap();
    let two_hours_ago = SystemTime::now() - StdDuration::from_secs(2 * 3600);
    let now_secs = OffsetDateTime::now_utc().unix_timestamp();
    let k = SessionKey::generate();
    let k = k.as_str();
    let leftover = |name: String, at: SystemTime| {
        let path = dir.join(name);
        fs::write(&path, "x").unwrap();
        set_mtime(&path, at);
        path
    };
    // Stale: our temp file named an hour+ ago (whatever its mtime), a lock
    // file and a Django temp file last written two hours ago.
    let stale = [
        leftover(
            format!(".sessionid{k}.{}.abc.tmp", now_secs - 7200),
            SystemTime::now(),
        ),
        leftover(format!(".sessionid{k}.lock"), two_hours_ago),
        leftover(format!("sessionid{k}_out_a1b2c3d4"), two_hours_ago),
    ];
    // Kept: a fresh temp file (whose mtime is the session's, in the past),
    // a fresh Django temp file, and files that are not the store's.
    let kept = [
        leftover(format!(".sessionid{k}.{now_secs}.abc.tmp"), two_hours_ago),
        leftover(format!("sessionid{k}_out_e5f6g7h8"), SystemTime::now()),
        leftover("notes.txt".to_owned(), two_hours_ago),
        leftover(".sessionid.lock".to_owned(), two_hours_ago),
        // A time no clock holds: not a temp file of ours.
        leftover(format!(".sessionid{k}.{}.abc.tmp", u64::MAX), two_hours_ago),
    ];

    assert_eq!(store.clear_expired().await.unwrap(), 1);
    assert!(store.load(&live.key).await.unwrap().is_some());
    assert!(!store.path_of(&expired.key).unwrap().exists());
    assert!(store.path_of(&live.key).unwrap().exists());
    for path in &stale {
        assert!(!path.exists(), "{} was kept", path.display());
    }
    for path in &kept {
        assert!(path.exists(), "{} was removed", path.display());
    }
    assert_eq!(store.clear_expired().await.unwrap(), 0);
}

/// Another process holding the lock is waited for (at most 5 s, then a
/// backend error, the thread freed); its lock dies with it, however it
/// exits: here `flock(1)` holds every stripe and is killed.
#[cfg(unix)]
#[tokio::test]
async fn a_lock_is_waited_for_and_dies_with_its_holder() {
    let dir = fresh_dir();
    let store = FileStore::new(&dir, signer());
    let saved = seeded(&store).await;
    let mut record = store.load(&saved.key).await.unwrap().unwrap();
    record.data_mut().insert("n".into(), json!(2));
    drop(lock_files(&dir)); // all 64 exist

    // Held for a moment by another open file: the save waits, then lands.
    let held = lock_files(&dir);
    for file in &held {
        file.lock().unwrap();
    }
    let release = std::thread::spawn(move || {
        // A plain thread standing in for the other process, not a runtime worker.
        #[allow(clippy::disallowed_methods)]
        std::thread::sleep(StdDuration::from_millis(300));
        drop(held);
    });
    store
        .save(&saved.key, &record)
        .await
        .expect("saved once free");
    release.join().unwrap();
    let record = store.load(&saved.key).await.unwrap().unwrap();
    assert_eq!(record.data["n"], 2);

    // Held by a process that then dies: bounded wait, then free again.
    let has_flock = std::process::Command::new("flock")
        .arg("--version")
        .output()
        .is_ok_and(|out| out.status.success());
    if !has_flock {
        eprintln!(
            "SKIP a_lock_is_waited_for_and_dies_with_its_holder (second half): \
             flock(1) from util-linux is not installed"
        );
        return;
    }
    let mut script = String::from("exec 3>/dev/null");
    for stripe in 0..64 {
        script.push_str(&format!(
            " && exec {}<>.sesame-lock-{stripe:02} && flock -x {}",
            10 + stripe,
            10 + stripe
        ));
    }
    script.push_str(" && echo held && exec sleep 60");
    let mut holder = std::process::Command::new("bash")
        .args(["-c", &script])
        .current_dir(&dir)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("bash and flock(1)");
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(holder.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    assert_eq!(line.trim(), "held");
    // The store waits 5 s at most; the guard only turns a hang into a failure.
    let err = tokio::time::timeout(StdDuration::from_secs(30), store.save(&saved.key, &record))
        .await
        .expect("the wait for another process's lock is bounded")
        .unwrap_err();
    assert!(matches!(err, Error::Backend(_)), "{err:?}");
    assert!(
        format!("{err:?}").contains("held by another process"),
        "{err:?}"
    );
    holder.kill().unwrap();
    holder.wait().unwrap();
    store
        .save(&saved.key, &record)
        .await
        .expect("the dead holder's lock is gone");
}

/// A per-session lock file left by a crash of an earlier build (which
/// locked with `O_EXCL` files) blocks nothing and is cleaned up later.
#[tokio::test]
async fn a_lock_file_of_an_earlier_build_blocks_nothing() {
    let dir = fresh_dir();
    let store = FileStore::new(&dir, signer());
    let saved = seeded(&store).await;
    let lock = dir.join(format!(".sessionid{}.lock", saved.key.as_str()));
    fs::write(&lock, "").unwrap();
    let mut record = store.load(&saved.key).await.unwrap().unwrap();
    record.data_mut().insert("n".into(), json!(2));
    store.save(&saved.key, &record).await.unwrap();
    assert_eq!(store.load(&saved.key).await.unwrap().unwrap().data["n"], 2);
    set_mtime(
        &lock,
        SystemTime::now() - StdDuration::from_secs(2 * 60 * 60),
    );
    store.clear_expired().await.unwrap();
    assert!(!lock.exists());
}

/// A lock file that cannot be opened (a directory in its place) is an
/// immediate backend error, not a spin; a FIFO at a session's path is an
/// error too, never a read that waits for a writer.
#[cfg(unix)]
#[tokio::test]
async fn odd_files_in_the_directory_are_errors_not_hangs() {
    let dir = fresh_dir();
    let store = FileStore::new(&dir, signer());
    let saved = seeded(&store).await;
    let record = store.load(&saved.key).await.unwrap().unwrap();
    for stripe in 0..64 {
        fs::create_dir(dir.join(format!(".sesame-lock-{stripe:02}"))).unwrap();
    }
    // An error, not a wait (5 s) or a spin: the guard is well below the wait.
    let guard = StdDuration::from_secs(3);
    let err = tokio::time::timeout(guard, store.save(&saved.key, &record))
        .await
        .expect("no wait, no spin")
        .unwrap_err();
    assert!(matches!(err, Error::Backend(_)), "{err:?}");
    let err = tokio::time::timeout(guard, store.delete(&saved.key))
        .await
        .expect("no wait, no spin")
        .unwrap_err();
    assert!(matches!(err, Error::Backend(_)), "{err:?}");
    assert_eq!(store.load(&saved.key).await.unwrap().unwrap().data["n"], 1);

    let fifo_key = SessionKey::generate();
    let fifo = store.path_of(&fifo_key).unwrap();
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo");
    assert!(made.success());
    let load = tokio::time::timeout(StdDuration::from_secs(5), store.load(&fifo_key))
        .await
        .expect("a FIFO never holds a read");
    assert!(
        matches!(&load, Err(Error::Backend(e)) if e.to_string().contains("not a regular file")),
        "{load:?}"
    );
}

/// A session kept for millennia (`set_expiry` with a huge age) is stored,
/// not refused: its expiry is capped at year 9999 and its mtime is the time
/// of writing.
#[tokio::test]
async fn an_age_of_millennia_is_stored_with_a_capped_expiry() {
    let dir = fresh_dir();
    let store = FileStore::new(&dir, signer());
    for age in [1_000_000_000_000_i64, i64::MAX] {
        let data = map(json!({"_session_expiry": age}));
        let expires_at = OffsetDateTime::now_utc().saturating_add(Duration::seconds(age));
        let saved = store
            .create(&Record::new(data.clone(), expires_at))
            .await
            .unwrap();
        let record = store.load(&saved.key).await.unwrap().expect("live");
        assert_eq!(record.expires_at.year(), 9999);
        store.save(&saved.key, &record).await.expect("saved");
        let path = store.path_of(&saved.key).unwrap();
        assert!((mtime(&path) - OffsetDateTime::now_utc()).abs() < Duration::minutes(1));
    }
}

#[test]
fn file_store_is_send_sync_clone_debug_without_secrets() {
    fn check<T: Send + Sync + Clone + std::fmt::Debug + 'static>() {}
    check::<FileStore>();
    let store = FileStore::new("/srv/sessions", sesame::Signer::new("hunter2-secret"));
    let debug = format!("{store:?}");
    assert!(debug.contains("/srv/sessions"), "{debug}");
    assert!(!debug.contains("hunter2"), "{debug}");
}

/// Two stores whose paths differ (`d` and `d/../d`) share no in-process
/// lock stripe, so they exclude each other through the lock files alone, as
/// two processes would.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn writers_excluded_only_by_lock_files_lose_nothing() {
    const WRITERS: usize = 24;
    let dir = fresh_dir();
    let stores = [
        FileStore::new(&dir, signer()),
        FileStore::new(dir.join("..").join(dir.file_name().unwrap()), signer()),
    ];
    let created = stores[0]
        .create(&Record::new(
            map(json!({"seed": true})),
            OffsetDateTime::now_utc() + Duration::hours(1),
        ))
        .await
        .unwrap();
    let writers: Vec<_> = (0..WRITERS)
        .map(|i| {
            let store = stores[i % 2].clone();
            let key = created.key.clone();
            tokio::spawn(async move {
                for _ in 0..WRITERS * 10 {
                    let mut record = store.load(&key).await.unwrap().unwrap();
                    record.data_mut().insert(format!("writer-{i}"), json!(i));
                    match store.save(&key, &record).await {
                        Ok(_) => return,
                        Err(Error::Conflict) => {}
                        Err(e) => panic!("writer {i}: {e:?}"),
                    }
                }
                panic!("writer {i}: still conflicting");
            })
        })
        .collect();
    for writer in writers {
        writer.await.unwrap();
    }
    let record = stores[1].load(&created.key).await.unwrap().unwrap();
    for i in 0..WRITERS {
        assert_eq!(record.data.get(&format!("writer-{i}")), Some(&json!(i)));
    }
    // Every lock was released, and no temp file is left.
    assert_eq!(
        names_in(&dir),
        [format!("sessionid{}", created.key.as_str())]
    );
    for file in lock_files(&dir) {
        file.try_lock().expect("released");
    }
}
