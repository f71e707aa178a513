#!/usr/bin/env bash
# Load test: our `sesame serve` under ../shared/peer-bench, next to the peers it
# is compared with, and the ratios the issues set as targets.
#
#   bench/peer-bench.sh                 # both passes, default knobs (10 s per row)
#   DURATION=5s REPEAT=2 bench/peer-bench.sh
#
# Pass 1: axum-bare, tower-sessions MemoryStore and `sesame serve --store memory:`.
# Pass 2: tower-sessions' SQLite store and `sesame serve --store sqlite://…`.
# Each ratio compares systems measured in the same pass. Every run is bounded
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
(cd "$ROOT" && cargo build --release -q -p sesame-cli)
BIN=$ROOT/target/release/sesame
if [ ! -x "$WORK/target/release/axum-bare" ]; then
    (cd "$WORK" && cargo build --release --locked -q)
fi
[ -x "$WORK/.venv/bin/python" ] || python3 -m venv "$WORK/.venv"

run() { # NAME SYSTEMS STORE_URL PRE -> prints the results file
    local name=$1 systems=$2 store=$3 pre=$4
    (cd "$WORK" && SKIP_BUILD=1 SYSTEMS="$systems" EXTRA_NAME="$name" \
        EXTRA_CMD="$pre RUST_LOG=warn exec $BIN serve --addr 127.0.0.1:\$PORT --store $store" \
        ./run.sh >&2)
    ls -t "$WORK"/results/*.md | head -n 1
}

DB=$WORK/sesame-bench.sqlite3
memory=$(run sesame-memory "axum-bare ts-memory" "memory:" "")
sqlite=$(run sesame-sqlite "ts14-sqlite" "sqlite://$DB" "rm -f $DB $DB-wal $DB-shm $DB.secret_key;")

python3 - "$memory" "$sqlite" <<'PY'
import re, sys
rows = {}
for path in sys.argv[1:]:
    for line in open(path):
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 6 and re.match(r"[\d /]+$", cells[2]):
            reps = [float(x) for x in cells[2].split("/")]
            rows[(cells[0], cells[1])] = sum(reps) / len(reps)
    print(open(path).read())
def ratio(label, a, b, target):
    if a in rows and b in rows:
        r = rows[a] / rows[b]
        print(f"{label}: {rows[a]:.0f} / {rows[b]:.0f} = {r:.2f} (target >= {target})")
print("## Ratios (same pass)")
ratio("/plain with cookie vs axum-bare", ("sesame-memory", "/plain (cookie sent)"), ("axum-bare", "/plain"), 0.97)
for n in ("64", "1000"):
    ratio(f"/ memory vs ts-memory ({n} sessions)", ("sesame-memory", f"/ ({n} sessions)"), ("ts-memory", f"/ ({n} sessions)"), 1.3)
    ratio(f"/ SQLite vs ts14-sqlite ({n} sessions)", ("sesame-sqlite", f"/ ({n} sessions)"), ("ts14-sqlite", f"/ ({n} sessions)"), 10)
PY
