#!/usr/bin/env bash
# Issue 8's event benchmarks (never timed tests; numbers go to docs/benchmarks.md as ratios):
#  1. server CPU of manifest PUTs with 0 vs 1 matching event rule (target: at most 10% more):
#     the push path alone (an API-only `--run-jobs false` process), then the background
#     work separately (bench/events_push_cpu.py); and everything together while jobs run
#     beside the PUTs (bench/events_cpu.py);
#  2. fan-out + signed webhook delivery throughput to a local receiver (target: >= 1,000 events/s).
# Usage: bench/events.sh [PUTS [EVENTS]]   (defaults 2000, 5000). BERTH_BIN overrides the
# binary (default: target/release/berth, built if missing).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BERTH_BIN:-target/release/berth}
[ -x "$BIN" ] || cargo build -q --release -p berth
echo "== manifest PUT server CPU, push path isolated, 0 vs 1 matching rule ($BIN)"
python3 bench/events_push_cpu.py "$BIN" "${1:-2000}" 3
echo "== manifest PUT server CPU, jobs running beside the PUTs, 0 vs 1 matching rule"
python3 bench/events_cpu.py "$BIN" "${1:-2000}"
echo "== delivery throughput"
cargo bench -q -p berth-eventbus --bench delivery -- "${2:-5000}" 64 2>/dev/null
