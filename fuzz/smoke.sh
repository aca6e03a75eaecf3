#!/usr/bin/env bash
# Runs every fuzz target for a while (issue 19): seconds per target as $1 (default 30).
# New corpus entries go to a scratch directory; the committed seeds (fuzz/seeds/<target>)
# are only read. A crash leaves its input in fuzz/artifacts/<target>/ and fails the run:
# turn it into a regression test, fix it, and add the input to fuzz/seeds/<target>.
#
# Long run (documented in docs/fuzzing.md): fuzz/smoke.sh 3600
set -euo pipefail
cd "$(dirname "$0")"
secs="${1:-30}"
# Without a sanitizer cargo-fuzz needs no nightly rustc: the stable toolchain builds it.
flags=(--sanitizer none --debug-assertions)
cargo fuzz build "${flags[@]}"
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
# One target per core at a time (libFuzzer without -jobs uses one core): CI's two cores
# halve the wall time. Each target's summary is printed when it finishes.
run_one() {
  local target="$1" rc=0
  mkdir -p "$scratch/$target" "seeds/$target"
  cargo fuzz run "${flags[@]}" "$target" "$scratch/$target" "seeds/$target" -- \
    -max_total_time="$secs" -print_final_stats=1 >"$scratch/$target.log" 2>&1 || rc=$?
  {
    echo "fuzz: $target for ${secs}s"
    grep -E 'stat::number_of_executed_units|stat::new_units_added|panicked|SUMMARY|Test unit written' \
      "$scratch/$target.log" || true
    if [ "$rc" -ne 0 ]; then
      tail -40 "$scratch/$target.log"
      echo "fuzz: $target FAILED (input in fuzz/artifacts/$target)"
    fi
  } >"$scratch/$target.summary"
  return "$rc"
}
jobs_max="${FUZZ_JOBS:-$(nproc)}"
failed=0
running=0
for target in $(cargo fuzz list); do
  if [ "$running" -ge "$jobs_max" ]; then
    wait -n || failed=1
    running=$((running - 1))
  fi
  run_one "$target" &
  running=$((running + 1))
done
while [ "$running" -gt 0 ]; do
  wait -n || failed=1
  running=$((running - 1))
done
for target in $(cargo fuzz list); do cat "$scratch/$target.summary"; done
if [ "$failed" -ne 0 ]; then
  echo "fuzz: a target failed (see above)"
  exit 1
fi
echo "fuzz: every target ran ${secs}s without a failure"
