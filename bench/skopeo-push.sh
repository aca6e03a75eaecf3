#!/usr/bin/env bash
# One timed unit of the skopeo benchmark (run by hyperfine from bench/run.sh):
#   skopeo-push.sh SRC HOST:PORT REPO_PREFIX COUNTER_FILE
# copies SRC (every platform of an index) into a fresh repository HOST:PORT/REPO_PREFIX-N.
# skopeo remembers where it has seen each blob (its "blob info cache") and would mount
# blobs from the previous run's repository instead of uploading them; each run gets an
# empty cache so every run uploads every blob, on both servers alike:
#   - as root the cache lives in /var/lib/containers/cache: a private tmpfs is mounted
#     over it in a throwaway mount namespace (unshare -m);
#   - otherwise it lives under $XDG_DATA_HOME: point that at a fresh temp dir.
# BENCH_DEST_CREDS, when set and not empty, is passed as --dest-creds USER:PASSWORD (from
# the environment, so that hyperfine's logs and JSON export do not record the secret).
set -euo pipefail
src=$1 host=$2 prefix=$3 counter=$4
n=$(( $(cat "$counter" 2>/dev/null || echo 0) + 1 ))
echo "$n" >"$counter"
cmd=(skopeo copy --all --quiet --retry-times 0 --dest-tls-verify=false)
[ -z "${BENCH_DEST_CREDS:-}" ] || cmd+=(--dest-creds "$BENCH_DEST_CREDS")
cmd+=("$src" "docker://$host/$prefix-$n:v1")
if [ "$(id -u)" = 0 ]; then
  mkdir -p /var/lib/containers/cache
  # shellcheck disable=SC2016 # $@ is expanded by the inner sh
  exec unshare --mount --propagation private sh -ec \
    'mount -t tmpfs -o size=16m bench-blob-info-cache /var/lib/containers/cache; exec "$@"' sh "${cmd[@]}"
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
XDG_DATA_HOME=$tmp "${cmd[@]}"
