#!/usr/bin/env bash
# Online garbage collection over many blobs and manifests, and the manifest GET rate
# during a collection vs without (issue 12). Driver: bench/gc.py (starts its own
# berth serve on a free loopback port and cleans up). Usage:
#   bench/gc.sh                                  # 20,000 blobs, 4,000 manifests
#   BLOBS=100000 MANIFESTS=20000 bench/gc.sh     # the issue's size
#   BERTH=target/debug/berth bench/gc.sh         # default: target/release/berth
set -euo pipefail
BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH_DIR/.." && pwd)
export BERTH=${BERTH:-$ROOT/target/release/berth}
command -v wrk >/dev/null || { echo "bench/gc.sh needs wrk (apt-get install wrk)" >&2; exit 1; }
exec python3 "$BENCH_DIR/gc.py"
