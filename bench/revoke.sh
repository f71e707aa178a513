#!/usr/bin/env bash
# How long `sesame revoke` takes: it reads every session in the store (no
# store keeps an index by user), so its cost is the store's size.
#
#   bench/revoke.sh                      # 100000 sessions on SQLite, and on PostgreSQL
#   SESSIONS=20000 bench/revoke.sh       # and Redis when their URLs below are set
#
# Environment (all optional):
#   SESSIONS                 sessions seeded per store (default 100000); one in 10000 is user 1's
#   BENCH_POSTGRES_URL       a PostgreSQL server and database (e.g. postgres://postgres@127.0.0.1:5432/test);
#                            the schema sesame_revoke_bench is created there and dropped
#   BENCH_REDIS_URL          a test Redis without a password (e.g. redis://127.0.0.1:6379/0); keys
#                            under the prefix sesame-revoke-bench-$$ are created there and removed
#                            (by a script running KEYS: not for a Redis serving others)
#   SESAME_BIN               the sesame binary (default: cargo build --release --features full)
#
# Every seeded session is a Django-format login (signed for SQL, pickled for
# Redis) that `revoke` has to load, verify and decode. Prints one line per
# store: sessions, seconds, sessions per second, sessions revoked.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SESSIONS=${SESSIONS:-100000}
PREFIX=sesame-revoke-bench-$$
export SECRET_KEY=sesame-revoke-bench-key
WORK=$(mktemp -d "${TMPDIR:-/tmp}/sesame-revoke-bench.XXXXXX")
cleanup() {
    if [ -n "${BENCH_POSTGRES_URL:-}" ]; then
        psql -q "$BENCH_POSTGRES_URL" -c 'DROP SCHEMA IF EXISTS sesame_revoke_bench CASCADE' \
            >/dev/null 2>&1 || true
    fi
    if [ -n "${BENCH_REDIS_URL:-}" ]; then
        python3 "$WORK/seed.py" redis-clear "$BENCH_REDIS_URL" "$PREFIX" || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

if [ -z "${SESAME_BIN:-}" ]; then
    (cd "$ROOT" && cargo build -q --release -p sesame-cli --features full)
    SESAME_BIN=$ROOT/target/release/sesame
fi

login() { printf '{"_auth_user_id": "%s", "_auth_user_backend": "django.contrib.auth.backends.ModelBackend", "_auth_user_hash": ""}' "$1"; }
VICTIM=$(login 1 | "$SESAME_BIN" encode)
OTHER=$(login 2 | "$SESAME_BIN" encode)

cat >"$WORK/seed.py" <<'EOF'
"""Seeds sessions: `sqlite PATH N VICTIM OTHER`, `redis URL PREFIX N`, `redis-clear URL PREFIX`."""
import pickle, random, socket, sqlite3, string, sys
from urllib.parse import urlsplit

def key():
    return "".join(random.choices(string.ascii_lowercase + string.digits, k=32))

def resp(*args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)

def redis_conn(url):
    u = urlsplit(url)
    s = socket.create_connection((u.hostname, u.port or 6379), timeout=30)
    db = (u.path or "/0").strip("/") or "0"
    s.sendall(resp("SELECT", db))
    s.recv(64)
    return s

def drain(s, replies):
    buf = b""
    while buf.count(b"\r\n") < replies:
        buf += s.recv(1 << 20)

cmd = sys.argv[1]
if cmd == "sqlite":
    path, n, victim, other = sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
    db = sqlite3.connect(path)
    rows = ((key(), victim if i % 10000 == 0 else other) for i in range(n))
    db.executemany(
        "INSERT INTO django_session VALUES (?, ?, '2999-01-01 00:00:00')", rows)
    db.commit()
elif cmd == "redis":
    url, prefix, n = sys.argv[2], sys.argv[3], int(sys.argv[4])
    s = redis_conn(url)
    base = {"_auth_user_backend": "django.contrib.auth.backends.ModelBackend", "_auth_user_hash": ""}
    values = [pickle.dumps(dict(base, _auth_user_id=u), protocol=5) for u in ("1", "2")]
    for start in range(0, n, 1000):
        batch = range(start, min(n, start + 1000))
        s.sendall(b"".join(
            resp("SET", "%s:1:django.contrib.sessions.cache%s" % (prefix, key()),
                 values[0] if i % 10000 == 0 else values[1], "EX", 86400)
            for i in batch))
        drain(s, len(batch))
elif cmd == "redis-clear":
    url, prefix = sys.argv[2], sys.argv[3]
    s = redis_conn(url)
    s.sendall(resp("EVAL", "for _, k in ipairs(redis.call('KEYS', ARGV[1])) do "
                   "redis.call('DEL', k) end return 0", 0, prefix + ":*"))
    s.recv(64)
EOF

# run NAME ARGS...: times `sesame revoke ARGS --user 1`, prints the line.
run() {
    local name=$1 start end out
    shift
    start=$(date +%s.%N)
    out=$("$SESAME_BIN" revoke "$@" --user 1)
    end=$(date +%s.%N)
    python3 -c '
import sys
name, n, t, out = sys.argv[1], int(sys.argv[2]), float(sys.argv[4]) - float(sys.argv[3]), sys.argv[5]
print("%-10s %7d sessions  %6.2f s  %8.0f sessions/s  (%s)" % (name, n, t, n / t, out))
' "$name" "$SESSIONS" "$start" "$end" "$out"
}

DB=$WORK/revoke.sqlite3
"$SESAME_BIN" migrate --store "sqlite://$DB" >/dev/null
python3 "$WORK/seed.py" sqlite "$DB" "$SESSIONS" "$VICTIM" "$OTHER"
run sqlite --store "sqlite://$DB"

if [ -n "${BENCH_POSTGRES_URL:-}" ]; then
    # In a schema of its own, under Django's table name, which the CLI uses.
    psql -q "$BENCH_POSTGRES_URL" -v ON_ERROR_STOP=1 >/dev/null <<SQL
DROP SCHEMA IF EXISTS sesame_revoke_bench CASCADE;
CREATE SCHEMA sesame_revoke_bench;
CREATE TABLE sesame_revoke_bench.django_session (session_key varchar(40) PRIMARY KEY,
    session_data text NOT NULL, expire_date timestamptz NOT NULL);
INSERT INTO sesame_revoke_bench.django_session
    SELECT md5(i::text), CASE WHEN i % 10000 = 0 THEN '$VICTIM' ELSE '$OTHER' END,
           '2999-01-01'::timestamptz
    FROM generate_series(0, $SESSIONS - 1) AS i;
ANALYZE sesame_revoke_bench.django_session;
SQL
    sep='?'
    case $BENCH_POSTGRES_URL in *\?*) sep='&' ;; esac
    run postgres --store "${BENCH_POSTGRES_URL}${sep}options=-csearch_path%3Dsesame_revoke_bench"
fi

if [ -n "${BENCH_REDIS_URL:-}" ]; then
    python3 "$WORK/seed.py" redis "$BENCH_REDIS_URL" "$PREFIX" "$SESSIONS"
    SESAME_CACHE_KEY_PREFIX=$PREFIX run redis --store "$BENCH_REDIS_URL"
fi
