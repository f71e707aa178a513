#!/usr/bin/env bash
# A 3-master Redis Cluster on loopback for the tests (issue 4).
#
#   .ci/redis-cluster.sh start   # ports 7000-7002 (REDIS_CLUSTER_PORTS), no-op if one answers
#   .ci/redis-cluster.sh stop    # shuts down what `start` started
#
# Data and logs live in $REDIS_CLUSTER_DIR (default /tmp/sesame-redis-cluster);
# nothing is persisted. Prints the URL for SESAME_TEST_REDIS_CLUSTER_URL.
set -euo pipefail

ports=(${REDIS_CLUSTER_PORTS:-7000 7001 7002})
dir=${REDIS_CLUSTER_DIR:-/tmp/sesame-redis-cluster}

url() {
    local nodes=()
    for p in "${ports[@]}"; do nodes+=("127.0.0.1:$p"); done
    (IFS=,; echo "redis+cluster://${nodes[*]}")
}

cluster_ok() {
    redis-cli -h 127.0.0.1 -p "${ports[0]}" cluster info 2>/dev/null | grep -q '^cluster_state:ok'
}

start() {
    if cluster_ok; then
        echo "Redis Cluster already up on ${ports[*]}"
        url
        return 0
    fi
    mkdir -p "$dir"
    for p in "${ports[@]}"; do
        if redis-cli -h 127.0.0.1 -p "$p" ping >/dev/null 2>&1; then
            # Only a leftover node of ours (an earlier run that never formed
            # a cluster) is shut down; anything else on the port is not ours.
            if [ "$(cat "$dir/redis-$p.pid" 2>/dev/null)" = \
                "$(redis-cli -h 127.0.0.1 -p "$p" info server 2>/dev/null | tr -d '\r' | sed -n 's/^process_id://p')" ]; then
                redis-cli -h 127.0.0.1 -p "$p" shutdown nosave >/dev/null 2>&1 || true
            else
                echo "error: port $p is taken by a Redis this script did not start" >&2
                return 1
            fi
        fi
        rm -f "$dir/nodes-$p.conf"
        redis-server --bind 127.0.0.1 --port "$p" --cluster-enabled yes \
            --cluster-config-file "nodes-$p.conf" --cluster-node-timeout 2000 \
            --save '' --appendonly no --dir "$dir" --daemonize yes \
            --logfile "$dir/redis-$p.log" --pidfile "$dir/redis-$p.pid"
    done
    for p in "${ports[@]}"; do
        for _ in $(seq 1 50); do
            redis-cli -h 127.0.0.1 -p "$p" ping >/dev/null 2>&1 && break
            sleep 0.1
        done
    done
    local nodes=()
    for p in "${ports[@]}"; do nodes+=("127.0.0.1:$p"); done
    redis-cli --cluster create "${nodes[@]}" --cluster-replicas 0 --cluster-yes >"$dir/create.log"
    for _ in $(seq 1 100); do
        if cluster_ok; then
            echo "Redis Cluster up on ${ports[*]}"
            url
            return 0
        fi
        sleep 0.1
    done
    echo "error: the Redis Cluster did not reach cluster_state:ok" >&2
    cat "$dir/create.log" >&2
    return 1
}

stop() {
    # Only the nodes this script started (their pidfiles are in $dir).
    for p in "${ports[@]}"; do
        if [ -f "$dir/redis-$p.pid" ]; then
            redis-cli -h 127.0.0.1 -p "$p" shutdown nosave >/dev/null 2>&1 || true
        fi
    done
    rm -f "$dir"/nodes-*.conf "$dir"/redis-*.pid "$dir"/redis-*.log "$dir"/create.log
    rmdir "$dir" 2>/dev/null || true
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    url) url ;;
    *) echo "usage: $0 start|stop|url" >&2; exit 2 ;;
esac
