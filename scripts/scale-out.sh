#!/usr/bin/env bash
# Scale-out on one machine: a Redis with append-only persistence, two gateways and
# three backtest workers, as in the README's "Scale out with Redis".
#
#   bash scripts/scale-out.sh            # ports: Redis 6390, gateways 8001 and 8002
#
# Watch the runs on either gateway while it runs, for example:
#   cargo run --release --bin watch -- ws://127.0.0.1:8001/ws ws://127.0.0.1:8002/ws
# Everything it started is stopped when it ends (Ctrl-C too).
set -euo pipefail
cd "$(dirname "$0")/.."

REDIS_PORT=${REDIS_PORT:-6390}
REDIS_URL="redis://127.0.0.1:${REDIS_PORT}"
DATA=$(mktemp -d)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$DATA"
}
trap cleanup EXIT INT TERM

command -v redis-server >/dev/null || { echo "redis-server is needed (apt-get install redis-server)" >&2; exit 1; }
cargo build --release -q --bin gateway
cargo build --release -q --features redis --example backtest

redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$DATA" --appendonly yes --appendfsync always --save "" >/dev/null &
PIDS+=($!)
until redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1; do sleep 0.1; done
echo "Redis:     $REDIS_URL (append-only file in $DATA)"

for port in 8001 8002; do
  target/release/gateway --redis "$REDIS_URL" --addr "127.0.0.1:$port" > "$DATA/gateway-$port.log" 2>&1 &
  PIDS+=($!)
  until grep -q '^ws://' "$DATA/gateway-$port.log" 2>/dev/null; do sleep 0.1; done
  echo "Gateway:   $(head -1 "$DATA/gateway-$port.log")"
done

WORKERS=()
for n in 1 2 3; do
  target/release/examples/backtest --redis "$REDIS_URL" --id "worker-$n" --bars 20000 \
    --bar-delay-us 500 --seed "$n" > "$DATA/worker-$n.jsonl" 2> "$DATA/worker-$n.log" &
  WORKERS+=($!)
  echo "Worker $n:  run worker-$n (20,000 bars at 0.5 ms a bar)"
done
for pid in "${WORKERS[@]}"; do wait "$pid"; done
for n in 1 2 3; do tail -1 "$DATA/worker-$n.log"; done
echo "Every run is in Redis; the gateways serve it (since, snapshot) until you stop this."
sleep "${LINGER:-5}"
