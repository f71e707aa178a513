#!/usr/bin/env bash
# Live interop with Django (issue 3): the Django peer in ../shared/django-compat/djapp
# and `sesame serve` on two loopback ports, sharing one store and one SECRET_KEY,
# checked by check.py for each backend, then again after a key rotation.
#
# .ci/run runs it after the `cargo test` step (PostgreSQL and Redis are up by then,
# the debug binary is built, and CI has its copy of shared/ beside the clone), on
# every backend: INTEROP_BACKENDS="sqlite postgres signed_cookies file cache cached_db".
#
#   tests/interop/run.sh                                  # sqlite postgres signed_cookies
#   INTEROP_BACKENDS=sqlite tests/interop/run.sh          # one backend
#
# Environment (all optional):
#   INTEROP_BACKENDS     backends to check (default: sqlite postgres signed_cookies; also file,
#                        cache and cached_db, which share INTEROP_REDIS_URL)
#   INTEROP_REDIS_URL    Redis for cache/cached_db (default: redis://127.0.0.1:6379/0); each
#                        run uses its own KEY_PREFIX, so the database may be shared
#   INTEROP_VENV         the Django venv, kept between runs (default: target/interop-venv)
#   DJAPP                the Django peer (default: ../shared/django-compat/djapp)
#   SESAME_BIN           use this `sesame` binary instead of building one
#   INTEROP_PG_URL       PostgreSQL server, no database (default: postgres://postgres@127.0.0.1:5432)
#   INTEROP_ALLOW_SKIP=1 print `SKIP interop: …` and exit 0 when python3, venv or PyPI is
#                        unavailable (without it, that is an error)
#   INTEROP_KEEP_WORK=1  keep the work directory (databases, server logs) for debugging
#   SESAME_INTEROP_STRICT_AUTH=1  a Sesame login Django flushes is a failure (check.py)
#   INTEROP_CONTROL=1    control run of the harness itself: a second Django peer stands in
#                        for sesame, so every check must pass (nothing is built)
#
# The binary: `cargo test --workspace --all-features --no-run`, i.e. the build the
# README's test command makes (a no-op right after it; `cargo build -p sesame-cli`
# would resolve features differently and rebuild three crates). Every wait is
# bounded; every process started here is stopped on exit by its PID (each server
# runs in its own process group, killed as a group). Output: check.py's PASS/FAIL
# lines and, last, `N passed, M failed`; the exit status is non-zero on any failure.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
HERE=$ROOT/tests/interop
DJAPP=${DJAPP:-$ROOT/../shared/django-compat/djapp}
VENV=${INTEROP_VENV:-$ROOT/target/interop-venv}
read -r -a BACKENDS <<<"${INTEROP_BACKENDS:-sqlite postgres signed_cookies}"
PG_URL=${INTEROP_PG_URL:-postgres://postgres@127.0.0.1:5432}
REDIS_URL=${INTEROP_REDIS_URL:-redis://127.0.0.1:6379/0}
# Django's CACHES KEY_PREFIX for this run: both sides use it, no other run sees it.
CACHE_PREFIX=sesame-interop-$$
START_TIMEOUT=60   # seconds for a server to answer /healthz
STOP_TIMEOUT=10    # seconds for a server to exit after SIGTERM
CHECK_TIMEOUT=300  # seconds for one check.py phase
started=$SECONDS
for b in "${BACKENDS[@]}"; do
    case $b in
    sqlite | postgres | signed_cookies | file | cache | cached_db) ;;
    *) echo "error: unknown backend '$b' in INTEROP_BACKENDS (sqlite, postgres, signed_cookies, file, cache, cached_db)" >&2; exit 2 ;;
    esac
done

PIDS=()      # servers still running (each the leader of its process group)
USED_REDIS="" # set once a backend used Redis: its keys are removed on exit
PG_DB=""     # the PostgreSQL database to drop on exit
WORK=""

log() { printf '==> [%3ss] %s\n' "$((SECONDS - started))" "$*"; }

stop_server() { # PID: SIGTERM to its process group, SIGKILL after STOP_TIMEOUT
    local pid=$1 left p
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 1 $((STOP_TIMEOUT * 10))); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$pid" 2>/dev/null; then
            kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
        fi
    fi
    wait "$pid" 2>/dev/null || true
    left=()
    for p in "${PIDS[@]}"; do
        [ "$p" = "$pid" ] || left+=("$p")
    done
    PIDS=("${left[@]}")
}

pg_exec() { # SQL: run on the server's maintenance database, autocommit
    timeout 30 "$PY" -c '
import sys, psycopg
with psycopg.connect(sys.argv[1], autocommit=True, connect_timeout=5) as conn:
    conn.execute(sys.argv[2])
' "$PG_URL/postgres" "$1"
}

cleanup() {
    local status=$? pid
    for pid in "${PIDS[@]}"; do
        stop_server "$pid"
    done
    if [ -n "$PG_DB" ]; then
        pg_exec "DROP DATABASE IF EXISTS $PG_DB WITH (FORCE)" || echo "warning: could not drop $PG_DB" >&2
    fi
    if [ -n "$USED_REDIS" ]; then
        "$PY" -c '
import sys, redis
r = redis.Redis.from_url(sys.argv[1], socket_timeout=5)
keys = list(r.scan_iter(match=sys.argv[2] + ":*", count=1000))
if keys:
    r.delete(*keys)
' "$REDIS_URL" "$CACHE_PREFIX" || echo "warning: could not remove the run's Redis keys" >&2
    fi
    if [ -n "$WORK" ]; then
        if [ "${INTEROP_KEEP_WORK:-}" = 1 ]; then
            echo "work directory kept: $WORK"
        else
            rm -rf "$WORK"
        fi
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

unavailable() { # WHY: skip (INTEROP_ALLOW_SKIP=1) or fail
    if [ "${INTEROP_ALLOW_SKIP:-}" = 1 ]; then
        echo "SKIP interop: $1"
        exit 0
    fi
    echo "error: $1 (INTEROP_ALLOW_SKIP=1 turns this into a skip)" >&2
    exit 1
}

# --- Python, the venv and the Django peer -----------------------------------
command -v python3 >/dev/null || unavailable "python3 not found"
if [ ! -f "$DJAPP/serve.sh" ] || [ ! -f "$DJAPP/requirements.txt" ]; then
    echo "error: no Django peer at $DJAPP (set DJAPP)" >&2
    exit 1
fi
DJAPP=$(cd "$DJAPP" && pwd)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/sesame-interop.XXXXXX")
RESULTS=$WORK/results.txt # check.py appends its PASS/FAIL lines here

# The venv is reused; pip runs again only when requirements.txt changed. A venv
# this run created is removed again if the install fails.
REQ_SUM=$(sha256sum "$DJAPP/requirements.txt" | cut -d' ' -f1)
if [ "$(cat "$VENV/.requirements.sha256" 2>/dev/null)" != "$REQ_SUM" ]; then
    log "venv: $VENV"
    NEW_VENV=""
    if [ ! -x "$VENV/bin/python" ]; then
        [ -e "$VENV" ] || NEW_VENV=1
        if ! timeout 120 python3 -m venv "$VENV" >"$WORK/venv.log" 2>&1; then
            tail -n 5 "$WORK/venv.log" >&2
            [ -z "$NEW_VENV" ] || rm -rf "$VENV"
            unavailable "python3 -m venv failed (Debian: apt-get install python3-venv)"
        fi
    fi
    if ! timeout 600 "$VENV/bin/python" -m pip install -q --disable-pip-version-check \
        -r "$DJAPP/requirements.txt" >"$WORK/pip.log" 2>&1; then
        tail -n 5 "$WORK/pip.log" >&2
        [ -z "$NEW_VENV" ] || rm -rf "$VENV"
        unavailable "pip install -r $DJAPP/requirements.txt failed (pip or PyPI unreachable?)"
    fi
    echo "$REQ_SUM" >"$VENV/.requirements.sha256"
fi
PY=$VENV/bin/python
"$PY" -c 'import django, gunicorn; print("venv: Django", django.get_version())'

# --- The sesame binary --------------------------------------------------------
if [ "${INTEROP_CONTROL:-}" = 1 ]; then
    echo "CONTROL run: a second Django peer stands in for sesame"
    BIN=/bin/true
elif [ -n "${SESAME_BIN:-}" ]; then
    BIN=$SESAME_BIN
else
    log "cargo test --workspace --all-features --no-run (the sesame binary)"
    BIN=$(cd "$ROOT" && timeout 1800 cargo test --workspace --all-features --no-run \
        --message-format=json-render-diagnostics 2>"$WORK/build.log" | python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    t = m.get("target") or {}
    if m.get("reason") == "compiler-artifact" and t.get("name") == "sesame" \
            and t.get("kind") == ["bin"] and not m["profile"]["test"]:
        print(m["executable"])
') || { tail -n 30 "$WORK/build.log" >&2; echo "error: the build failed" >&2; exit 1; }
fi
[ -x "$BIN" ] || { echo "error: no sesame binary (${BIN:-none found})" >&2; exit 1; }
echo "sesame: $BIN"

# --- Servers ------------------------------------------------------------------
# Two secret keys for this run only; never printed.
KEY_A=$(python3 -c 'import secrets; print(secrets.token_urlsafe(32))')
KEY_B=$(python3 -c 'import secrets; print(secrets.token_urlsafe(32))')

free_ports() { # prints two free loopback ports
    python3 -c '
import socket
socks = [socket.socket() for _ in range(2)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))
'
}

why_down() { # LOG: its last error line (else last line), redacted: why a server is down
    local line
    line=$({ grep -i 'error' "$1" || grep -v '^[[:space:]]*$' "$1" || true; } | tail -n 1 | cut -c1-300 |
        INTEROP_SECRETS="$KEY_A"$'\n'"$KEY_B" python3 "$HERE/check.py" redact)
    printf '%s' "${line:-no output}"
}

show_log() { # LOG: its tail, redacted, indented
    echo "    --- last lines of $(basename "$1") ---"
    tail -n 15 "$1" | INTEROP_SECRETS="$KEY_A"$'\n'"$KEY_B" python3 "$HERE/check.py" redact |
        sed 's/^/    /'
}

# wait_healthy PID PORT LOG: 0 once /healthz answers `ok`; else sets DOWN and returns 1.
wait_healthy() {
    local pid=$1 port=$2 logfile=$3 deadline=$((SECONDS + START_TIMEOUT))
    while [ "$SECONDS" -lt "$deadline" ]; do
        if ! kill -0 "$pid" 2>/dev/null; then
            local status=0
            wait "$pid" 2>/dev/null || status=$?
            DOWN="exited (status $status) before answering /healthz: $(why_down "$logfile")"
            return 1
        fi
        if python3 -c 'import sys, urllib.request
sys.exit(urllib.request.urlopen(sys.argv[1], timeout=2).read() != b"ok")' \
            "http://127.0.0.1:$port/healthz" 2>/dev/null; then
            return 0
        fi
        sleep 0.2
    done
    DOWN="no answer on /healthz within ${START_TIMEOUT}s: $(why_down "$logfile")"
    return 1
}

# start_django PORT KEY FALLBACKS LOG: the peer in the background, in its own
# process group (serve.sh execs gunicorn, so $! is gunicorn's master).
start_django() {
    setsid env -i PATH="$PATH" HOME="$WORK" LANG=C.UTF-8 PYTHONDONTWRITEBYTECODE=1 \
        PYTHON="$PY" PORT="$1" WORKERS=1 SECRET_KEY="$2" SECRET_KEY_FALLBACKS="$3" \
        DATABASE="$DJ_DATABASE" SESSION_ENGINE="$DJ_ENGINE" ${DJ_TMPDIR:+TMPDIR=$DJ_TMPDIR} \
        ${DJ_REDIS:+REDIS_URL=$DJ_REDIS} CACHE_KEY_PREFIX="$CACHE_PREFIX" \
        bash "$DJAPP/serve.sh" </dev/null >"$4" 2>&1 &
}

# start_pair NAME KEY FALLBACKS: starts Django, then (once its migrate made the
# tables) sesame. Sets DJ_PORT SE_PORT DJ_PID SE_PID DJ_DOWN SE_DOWN.
start_pair() {
    local name=$1 key=$2 fallbacks=$3
    CUR_KEY=$key CUR_FALLBACKS=$fallbacks # for `sesame revoke` in run_checks
    read -r DJ_PORT SE_PORT <<<"$(free_ports)"
    DJ_DOWN="" SE_DOWN="" DJ_PID="" SE_PID=""
    local dj_log=$WORK/$name-django.log se_log=$WORK/$name-sesame.log
    if [ -n "$SETUP_ERROR" ]; then
        DJ_DOWN=$SETUP_ERROR SE_DOWN=$SETUP_ERROR
        return
    fi
    start_django "$DJ_PORT" "$key" "$fallbacks" "$dj_log"
    DJ_PID=$!
    PIDS+=("$DJ_PID")
    DOWN=""
    wait_healthy "$DJ_PID" "$DJ_PORT" "$dj_log" || { DJ_DOWN=$DOWN; show_log "$dj_log"; }
    if [ "${INTEROP_CONTROL:-}" = 1 ]; then
        start_django "$SE_PORT" "$key" "$fallbacks" "$se_log"
    else
        setsid env -i PATH="$PATH" HOME="$WORK" RUST_LOG="${RUST_LOG:-info}" \
            SECRET_KEY="$key" SECRET_KEY_FALLBACKS="$fallbacks" \
            SESAME_CACHE_KEY_PREFIX="$CACHE_PREFIX" ${SE_CACHE:+SESAME_CACHE=$SE_CACHE} \
            "$BIN" serve --addr "127.0.0.1:$SE_PORT" --store "$SE_STORE" </dev/null >"$se_log" 2>&1 &
    fi
    SE_PID=$!
    PIDS+=("$SE_PID")
    wait_healthy "$SE_PID" "$SE_PORT" "$se_log" || { SE_DOWN=$DOWN; show_log "$se_log"; }
    log "$name: django :$DJ_PORT ${DJ_DOWN:+(down)}, sesame :$SE_PORT ${SE_DOWN:+(down)}"
}

stop_pair() {
    [ -z "$SE_PID" ] || stop_server "$SE_PID"
    [ -z "$DJ_PID" ] || stop_server "$DJ_PID"
}

# run_checks PHASE: check.py for this backend; failures are counted at the end.
run_checks() {
    local args=(run --backend "$BACKEND" --phase "$1"
        --django "http://127.0.0.1:$DJ_PORT" --sesame "http://127.0.0.1:$SE_PORT"
        --state "$WORK/$BACKEND.state.json" --results "$RESULTS")
    [ -z "$DJ_DOWN" ] || args+=(--django-down "$DJ_DOWN")
    [ -z "$SE_DOWN" ] || args+=(--sesame-down "$SE_DOWN")
    local revoke=()
    [ "${INTEROP_CONTROL:-}" = 1 ] || revoke=(REVOKE_BIN="$BIN" REVOKE_STORE="$SE_STORE"
        REVOKE_CACHE="$SE_CACHE" REVOKE_SECRET_KEY="$CUR_KEY"
        REVOKE_SECRET_KEY_FALLBACKS="$CUR_FALLBACKS" REVOKE_CACHE_KEY_PREFIX="$CACHE_PREFIX")
    env ${revoke[@]+"${revoke[@]}"} timeout "$CHECK_TIMEOUT" python3 "$HERE/check.py" "${args[@]}" ||
        [ $? -eq 1 ] || echo "FAIL $BACKEND/$1: check.py did not finish" | tee -a "$RESULTS"
}

for BACKEND in "${BACKENDS[@]}"; do
    SETUP_ERROR="" DJ_TMPDIR="" DJ_REDIS="" SE_CACHE=""
    case $BACKEND in
    sqlite)
        DJ_ENGINE=db
        DJ_DATABASE=$WORK/shared.sqlite3
        SE_STORE=sqlite://$DJ_DATABASE
        ;;
    postgres)
        DJ_ENGINE=db
        PG_DB=sesame_interop_$$
        if pg_exec "DROP DATABASE IF EXISTS $PG_DB" >"$WORK/pg.log" 2>&1 &&
            pg_exec "CREATE DATABASE $PG_DB" >>"$WORK/pg.log" 2>&1; then
            echo "postgres: database $PG_DB created"
        else
            SETUP_ERROR="PostgreSQL at ${PG_URL#*@} not usable: $(why_down "$WORK/pg.log")"
            PG_DB=""
        fi
        DJ_DATABASE=$PG_URL/sesame_interop_$$
        SE_STORE=$DJ_DATABASE
        ;;
    signed_cookies)
        DJ_ENGINE=signed_cookies
        DJ_DATABASE=$WORK/signed-cookies-users.sqlite3 # Django's users only
        SE_STORE=signed-cookies:
        ;;
    file)
        # Django's `file` engine without SESSION_FILE_PATH uses the temporary
        # directory: TMPDIR points it at the directory sesame uses.
        DJ_ENGINE=file
        DJ_DATABASE=$WORK/file-users.sqlite3 # Django's users only
        DJ_TMPDIR=$WORK/file-sessions
        mkdir -p "$DJ_TMPDIR"
        SE_STORE=file://$DJ_TMPDIR
        ;;
    cache)
        # Django's cache engine on its RedisCache; sesame's RedisStore.
        DJ_ENGINE=cache
        DJ_DATABASE=$WORK/cache-users.sqlite3 # Django's users only
        DJ_REDIS=$REDIS_URL
        SE_STORE=$REDIS_URL
        USED_REDIS=1
        ;;
    cached_db)
        # One SQLite database and one Redis, both ways.
        DJ_ENGINE=cached_db
        DJ_DATABASE=$WORK/cached-db.sqlite3
        DJ_REDIS=$REDIS_URL
        SE_STORE=sqlite://$DJ_DATABASE
        SE_CACHE=$REDIS_URL
        USED_REDIS=1
        ;;
    esac

    log "$BACKEND: SECRET_KEY=A"
    start_pair "$BACKEND-a" "$KEY_A" ""
    run_checks main
    stop_pair

    log "$BACKEND: restart with SECRET_KEY=B, SECRET_KEY_FALLBACKS=[A]"
    start_pair "$BACKEND-b" "$KEY_B" "[\"$KEY_A\"]"
    run_checks rotated
    stop_pair
    if [ -n "$PG_DB" ]; then
        pg_exec "DROP DATABASE IF EXISTS $PG_DB WITH (FORCE)" && PG_DB=""
    fi
done

log "done"
if [ "${INTEROP_KEEP_WORK:-}" = 1 ]; then
    echo "work directory kept: $WORK"
    WORK=""
fi
python3 "$HERE/check.py" summary --results "$RESULTS"
