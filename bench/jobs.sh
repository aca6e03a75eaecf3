#!/usr/bin/env bash
# Trivial-job throughput on the embedded default (DESIGN.md: at least 2,000 jobs/s).
# Usage: bench/jobs.sh [JOBS [CONCURRENCY]]   (defaults 20000, 64)
# Prints enqueue rates and the claimed+run+completed rate; exits 1 below TARGET (2000).
set -euo pipefail
cd "$(dirname "$0")/.."
TARGET=${TARGET:-2000}
out=$(cargo bench -q -p berth-jobs --bench throughput -- "${1:-20000}" "${2:-64}" 2>/dev/null)
echo "$out"
rate=$(echo "$out" | sed -n 's/.* = \([0-9]*\) jobs\/s.*/\1/p')
if [ -z "$rate" ] || [ "$rate" -lt "$TARGET" ]; then
  echo "below target: ${rate:-?} < $TARGET jobs/s" >&2
  exit 1
fi
echo "target met: $rate >= $TARGET jobs/s"
