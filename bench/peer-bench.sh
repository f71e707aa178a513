#!/usr/bin/env bash
# Load test: our `sesame serve` under ../shared/peer-bench, next to the peers it
# is compared with, and the ratios the issues set as targets.
#
#   bench/peer-bench.sh                 # both passes, default knobs (10 s per row)
#   DURATION=5s REPEAT=2 bench/peer-bench.sh
#
# Each pass runs peers and one Sesame server; each ratio compares systems
# measured in the same pass. The Sesame server is the `bench_server` example
# (the peers' exact workload: `counter=<n>` bodies, two routes) except in
# pass 2, which runs the demo itself (`sesame serve`, the seed's HTML page).
# Pass 1: axum-bare, tower-sessions MemoryStore, Sesame on MemoryStore.
# Pass 2: tower-sessions MemoryStore, `sesame serve --store memory:`.
# Pass 3: tower-sessions' SQLite store, Sesame on SqliteStore.
# Pass 4: actix-session and tower-sessions on Redis, Sesame on RedisStore
#         (tokio's multi-threaded runtime, as axum::serve and tower-sessions).
# Pass 5: actix-session and tower-sessions on Redis, Sesame on RedisStore with
#         one single-threaded runtime per core (RUNTIME=per-core: actix-web's
#         own model).
# Pass 6: as pass 5, with the peers' guarantee: CONFLICT=last-write-wins (a
#         save is a plain `SET XX`, no compare-and-swap), like for like.
#   PASSES="1 4" bench/peer-bench.sh   # only some passes Every run is bounded
# by peer-bench's DURATION; the harness stops every server it started.
# Needs wrk, redis-server, curl, python3 (Debian: apt-get install -y wrk redis-server curl).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SRC=${PEER_BENCH:-$ROOT/../shared/peer-bench}
WORK=${WORK:-${TMPDIR:-/tmp}/sesame-peer-bench}
export DURATION=${DURATION:-10s} REPEAT=${REPEAT:-1} CEILINGS=${CEILINGS:-0}

# shared/ is read-only: run a copy (its target/ is kept between runs).
mkdir -p "$WORK"
cp -r "$SRC"/. "$WORK"/ 2>/dev/null || true
chmod -R u+w "$WORK"
(cd "$ROOT" && cargo build --release -q -p sesame-cli &&
    cargo build --release -q -p sesame --features full --example bench_server)
BIN=$ROOT/target/release/sesame
BENCH=$ROOT/target/release/examples/bench_server
PASSES=${PASSES:-1 2 3 4 5 6}
if [ ! -x "$WORK/target/release/axum-bare" ]; then
    (cd "$WORK" && cargo build --release --locked -q)
fi
[ -x "$WORK/.venv/bin/python" ] || python3 -m venv "$WORK/.venv"

run() { # NAME SYSTEMS CMD -> prints the results file
    local name=$1 systems=$2 cmd=$3
    (cd "$WORK" && SKIP_BUILD=1 SYSTEMS="$systems" EXTRA_NAME="$name" EXTRA_CMD="$cmd" \
        ./run.sh >&2)
    ls -t "$WORK"/results/*.md | head -n 1
}
wants() { [[ " $PASSES " == *" $1 "* ]]; }

DB=$WORK/sesame-bench.sqlite3
results=()
wants 1 && results+=("$(run sesame-memory "axum-bare ts-memory" "STORE=memory: exec $BENCH")")
wants 2 && results+=("$(run sesame-demo-memory "ts-memory" \
    "RUST_LOG=warn exec $BIN serve --addr 127.0.0.1:\$PORT --store memory:")")
wants 3 && results+=("$(run sesame-sqlite "ts14-sqlite" \
    "rm -f $DB $DB-wal $DB-shm; STORE=sqlite://$DB exec $BENCH")")
wants 4 && results+=("$(run sesame-redis "actix-redis ts14-redis" "STORE=\$REDIS_URL exec $BENCH")")
wants 5 && results+=("$(run sesame-redis-per-core "actix-redis ts14-redis" \
    "RUNTIME=per-core STORE=\$REDIS_URL exec $BENCH")")
wants 6 && results+=("$(run sesame-redis-per-core-lww "actix-redis ts14-redis" \
    "RUNTIME=per-core CONFLICT=last-write-wins STORE=\$REDIS_URL exec $BENCH")")

python3 - "${results[@]}" <<'PY'
import re, sys
passes = []
for path in sys.argv[1:]:
    rows = {}
    for line in open(path):
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 6 and re.match(r"[\d /]+$", cells[2]):
            reps = [float(x) for x in cells[2].split("/")]
            rows[(cells[0], cells[1])] = sum(reps) / len(reps)
    passes.append(rows)
    print(open(path).read())
def ratio(label, a, b, target):
    for rows in passes:  # both systems measured in the same pass
        if a in rows and b in rows:
            r = rows[a] / rows[b]
            print(f"{label}: {rows[a]:.0f} / {rows[b]:.0f} = {r:.2f} (target >= {target})")
print("## Ratios (same pass)")
ratio("/plain with cookie vs axum-bare", ("sesame-memory", "/plain (cookie sent)"), ("axum-bare", "/plain"), 0.97)
for n in ("64", "1000"):
    ratio(f"/ memory vs ts-memory ({n} sessions)", ("sesame-memory", f"/ ({n} sessions)"), ("ts-memory", f"/ ({n} sessions)"), 1.3)
    ratio(f"/ demo (sesame serve) memory vs ts-memory ({n} sessions)", ("sesame-demo-memory", f"/ ({n} sessions)"), ("ts-memory", f"/ ({n} sessions)"), 1.3)
    ratio(f"/ SQLite vs ts14-sqlite ({n} sessions)", ("sesame-sqlite", f"/ ({n} sessions)"), ("ts14-sqlite", f"/ ({n} sessions)"), 10)
    ratio(f"/ Redis vs actix-redis ({n} sessions)", ("sesame-redis", f"/ ({n} sessions)"), ("actix-redis", f"/ ({n} sessions)"), 1.1)
    ratio(f"/ Redis vs ts14-redis ({n} sessions)", ("sesame-redis", f"/ ({n} sessions)"), ("ts14-redis", f"/ ({n} sessions)"), 2.5)
    ratio(f"/ Redis, per-core runtimes, vs actix-redis ({n} sessions)", ("sesame-redis-per-core", f"/ ({n} sessions)"), ("actix-redis", f"/ ({n} sessions)"), 1.1)
    ratio(f"/ Redis, per-core runtimes, vs ts14-redis ({n} sessions)", ("sesame-redis-per-core", f"/ ({n} sessions)"), ("ts14-redis", f"/ ({n} sessions)"), 2.5)
    ratio(f"/ Redis, per-core, last write wins (the peers' guarantee), vs actix-redis ({n} sessions)", ("sesame-redis-per-core-lww", f"/ ({n} sessions)"), ("actix-redis", f"/ ({n} sessions)"), 1.1)
    ratio(f"/ Redis, per-core, last write wins, vs ts14-redis ({n} sessions)", ("sesame-redis-per-core-lww", f"/ ({n} sessions)"), ("ts14-redis", f"/ ({n} sessions)"), 2.5)
PY
