#!/usr/bin/env bash
# Issue 19's soak and crash test: for N seconds (default 1800), mixed load from several
# concurrent clients against a `berth serve` this script starts on a free 127.0.0.1 port
# with its own data directory, while Berth is killed with SIGKILL every 10-40 s and
# restarted on the same data; then every acknowledged push must pull byte for byte, every
# acknowledged delete must hold, every push event must have reached the webhook receiver,
# no job may be stuck, no partial or stray file may be in the blob store, and memory and
# file descriptors must be back within bounds. Prints a report; exits 1 on any loss or
# violation. The driver is bench/soak.py (its docstring says what the load is).
#
# Usage: bench/soak.sh [SECONDS]      (or SOAK_SECONDS=...; the argument wins)
#   BERTH_BIN    the berth binary (default target/release/berth, built if missing)
#   SOAK_WORKERS concurrent clients (default 4)
#   SOAK_KILL_MIN, SOAK_KILL_MAX   seconds between two kills (default 10, 40)
#   SOAK_SEED    seed of the random choices (default: the time)
#   SOAK_RSS_EVERY seconds between two memory samples under load (default 30; the series
#                is WORK/memory.tsv and summarised in the report). For a leak check over
#                one long-lived process, disable the kills: SOAK_KILL_MIN=1e9 SOAK_KILL_MAX=1e9
#   SOAK_KEEP=1  keep the working directory (data dir, server log, acks.jsonl) also on success
# Needs: python3 with boto3 (the clients venv .venv-clients, from .ci/install-clients),
# skopeo. Everything runs on 127.0.0.1; the working directory is a mktemp -d, removed at
# exit unless the run failed or SOAK_KEEP=1.
set -euo pipefail
cd "$(dirname "$0")/.."

SECONDS_WANTED=${1:-${SOAK_SECONDS:-1800}}
BIN=${BERTH_BIN:-target/release/berth}
if [ ! -x "$BIN" ]; then cargo build -q --release -p berth; fi
BIN=$(realpath "$BIN")
PY=${SOAK_PYTHON:-.venv-clients/bin/python}
[ -x "$PY" ] || { echo "soak: $PY missing: run .ci/install-clients" >&2; exit 2; }
"$PY" -c 'import boto3' 2>/dev/null || { echo "soak: boto3 missing in $PY" >&2; exit 2; }
command -v skopeo >/dev/null || { echo "soak: skopeo not installed" >&2; exit 2; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/berth-soak.XXXXXX")
rc=0
"$PY" bench/soak.py --berth "$BIN" --work "$WORK" --seconds "$SECONDS_WANTED" \
  --workers "${SOAK_WORKERS:-4}" --kill-min "${SOAK_KILL_MIN:-10}" --kill-max "${SOAK_KILL_MAX:-40}" \
  --rss-every "${SOAK_RSS_EVERY:-30}" ${SOAK_SEED:+--seed "$SOAK_SEED"} || rc=$?
if [ "$rc" -ne 0 ] || [ "${SOAK_KEEP:-0}" = 1 ]; then
  echo "soak: working directory kept: $WORK (server.log, acks.jsonl, data/)" >&2
else
  rm -rf "$WORK"
fi
exit "$rc"
