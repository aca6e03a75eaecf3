#!/usr/bin/env bash
# Berth vs CNCF distribution 2.8, side by side in one run on the same data.
# Writes docs/benchmarks.md; raw logs stay in a temp dir whose path is printed.
# See bench/README.md. Usage:
#   bench/run.sh                      # full run (about 4 minutes)
#   QUICK=1 bench/run.sh              # shortened run (under a minute)
#   BERTH=/path/to/berth bench/run.sh # default: target/release/berth
#   BERTH_SIDE=distribution bench/run.sh  # plumbing check: the "berth" side is a second distribution
set -euo pipefail
# The Berth under test requires authentication; only the "anon" instance is started with
# --allow-anonymous. The flag's environment form must not turn it on behind our back.
unset BERTH_ALLOW_ANONYMOUS

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH_DIR/.." && pwd)
# shellcheck source=bench/lib.sh
. "$BENCH_DIR/lib.sh"

BERTH=${BERTH:-$ROOT/target/release/berth}
DISTRIBUTION=${DISTRIBUTION:-/usr/bin/docker-registry}
BERTH_SIDE=${BERTH_SIDE:-berth}
QUICK=${QUICK:-0}
REPORT=${REPORT:-$ROOT/docs/benchmarks.md}
STRICT=${STRICT:-0}
WAIT_IDLE=${WAIT_IDLE:-0}     # wait up to this many seconds for a quiet machine (≥ 80% CPU idle)
if [ "$QUICK" = 1 ]; then
  LOAD_SECS=${LOAD_SECS:-3} BLOB_MIB=${BLOB_MIB:-256} IPERF_SECS=${IPERF_SECS:-2}
  SKOPEO_RUNS=${SKOPEO_RUNS:-3} SHA_SECS=${SHA_SECS:-1} DOWNLOAD_RUNS=${DOWNLOAD_RUNS:-1}
  AUTH_ROUNDS=${AUTH_ROUNDS:-1} POLICY_BENCH_ARGS=${POLICY_BENCH_ARGS:---warm-up-time 1 --measurement-time 2}
else
  LOAD_SECS=${LOAD_SECS:-10} BLOB_MIB=${BLOB_MIB:-1024} IPERF_SECS=${IPERF_SECS:-5}
  SKOPEO_RUNS=${SKOPEO_RUNS:-5} SHA_SECS=${SHA_SECS:-3} DOWNLOAD_RUNS=${DOWNLOAD_RUNS:-3}
  AUTH_ROUNDS=${AUTH_ROUNDS:-2} POLICY_BENCH_ARGS=${POLICY_BENCH_ARGS:-}
fi
POLICY_BENCH=${POLICY_BENCH:-1}  # 0: skip `cargo bench -p berth-iam --bench policy`
WARMUP_SECS=1
CONNS=32
BLOB_BYTES=$((BLOB_MIB * 1048576))
GIB=1073741824
SIDES=(dist berth)           # measurement order within each step
# "anon": a second Berth, same binary, started with --allow-anonymous and seeded with the
# same image; only its manifest GET is measured, against "berth" (which requires auth).
declare -A LABEL=([dist]=distribution [berth]=berth [anon]="berth --allow-anonymous")

case $BERTH_SIDE in
  berth) [ -x "$BERTH" ] || die "no Berth binary at $BERTH (cargo build --release -p berth, or set BERTH=..., or BERTH_SIDE=distribution for a plumbing check)" ;;
  distribution) ;;
  *) die "BERTH_SIDE must be berth or distribution" ;;
esac
[ -x "$DISTRIBUTION" ] || die "no distribution binary at $DISTRIBUTION (apt-get install docker-registry)"
for t in curl python3 openssl; do have "$t" || die "$t is required"; done

# ---------------------------------------------------------------------------
WORK=$(mktemp -d "${TMPDIR:-/tmp}/berth-bench.XXXXXX")
LOG_DIR=$(mktemp -d "${TMPDIR:-/tmp}/berth-bench-logs.XXXXXX")
EXTRA_PIDS=()
cleanup() {
  local rc=$? p
  trap - EXIT INT TERM
  for s in "${!SRV_PID[@]}"; do stop_server "$s"; done
  for p in "${EXTRA_PIDS[@]}"; do stop_bg "$p"; done
  rm -rf "$WORK"
  log "raw logs kept in $LOG_DIR"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
log "work dir $WORK (removed at exit), logs $LOG_DIR"

declare -A R=()               # results, R[key,side] or R[key]
NOTES=()                      # free-text remarks for the report
note() { NOTES+=("$*"); log "note: $*"; }

# Run a private copy of the Berth binary: a `cargo build` during the run must not swap it.
if [ "$BERTH_SIDE" = berth ]; then
  R[berth_built]=$(date -u -r "$BERTH" '+%Y-%m-%d %H:%M UTC')
  cp "$BERTH" "$WORK/berth"
  R[berth_sha]=$(sha256_file "$WORK/berth" | cut -c1-12)
  BERTH_SRC=$BERTH
  BERTH="$WORK/berth"
fi

missing=()
for t in wrk ab hyperfine iperf3 skopeo umoci; do have "$t" || missing+=("$t"); done
[ ${#missing[@]} -eq 0 ] || note "not installed, measurements using them are skipped: ${missing[*]}"

if [ "$WAIT_IDLE" -gt 0 ]; then
  log "waiting up to ${WAIT_IDLE}s for the machine to be quiet (>= 80% CPU idle over 1 s)"
  deadline=$((SECONDS + WAIT_IDLE))
  while [ "$(cpu_idle_pct 1)" -lt 80 ] && [ "$SECONDS" -lt "$deadline" ]; do :; done
fi

# ---------------------------------------------------------------------------
# Policy evaluation in isolation: berth-iam's criterion benchmark (issue 3: evaluation must
# not be a measurable share of a manifest GET). Built and run before anything else is
# measured, so its compilation competes with nothing. It builds the berth-iam of the
# working tree, which is the source of the binary under test only if the tree is unchanged.
POLICY_SKIPPED=
if [ "$BERTH_SIDE" != berth ]; then POLICY_SKIPPED="BERTH_SIDE=$BERTH_SIDE"
elif [ "$POLICY_BENCH" != 1 ]; then POLICY_SKIPPED="POLICY_BENCH=$POLICY_BENCH"
elif ! have cargo; then POLICY_SKIPPED="cargo is not installed"
elif [ ! -f "$ROOT/crates/berth-iam/benches/policy.rs" ]; then POLICY_SKIPPED="crates/berth-iam/benches/policy.rs does not exist"
fi
if [ -z "$POLICY_SKIPPED" ]; then
  log "policy evaluation: cargo bench -p berth-iam --bench policy${POLICY_BENCH_ARGS:+ -- $POLICY_BENCH_ARGS} (builds it first)"
  # shellcheck disable=SC2086 # POLICY_BENCH_ARGS is a list of criterion options
  if (cd "$ROOT" && cargo bench -p berth-iam --bench policy -- $POLICY_BENCH_ARGS) >"$LOG_DIR/policy-bench.log" 2>&1; then
    # criterion prints "NAME time: [low mid high]" (NAME on the line before when long);
    # keep the middle estimate, in µs.
    python3 - "$LOG_DIR/policy-bench.log" >"$WORK/policy.tsv" <<'PY' || true
import re, sys
unit = {"ps": 1e-6, "ns": 1e-3, "us": 1.0, "\u00b5s": 1.0, "\u03bcs": 1.0, "ms": 1e3, "s": 1e6}
prev = ""
for line in open(sys.argv[1], encoding="utf-8", errors="replace"):
    line = line.rstrip("\n")
    m = re.search(r"time:\s*\[\s*\S+ \S+\s+(\S+) (\S+)\s+\S+ \S+\s*\]", line)
    if m:
        name = line[:line.index("time:")].strip() or prev
        if m.group(2) in unit:
            print("%s\t%.4f" % (name, float(m.group(1)) * unit[m.group(2)]))
    elif line.strip() and not line.startswith(" "):
        prev = line.strip()
PY
    # The figure compared with a manifest GET: the slowest of the evaluate/* cases.
    read -r "R[pol_us]" "R[pol_name]" < <(awk -F'\t' '$1 ~ /^evaluate/ && $2 + 0 > max {max = $2 + 0; name = $1} END {if (name != "") print max, name}' "$WORK/policy.tsv") || true
    [ -n "${R[pol_us]:-}" ] || note "cargo bench -p berth-iam --bench policy printed no evaluate/* timing (see $LOG_DIR/policy-bench.log)"
  else
    note "cargo bench -p berth-iam --bench policy failed (see $LOG_DIR/policy-bench.log)"
  fi
fi

# ---------------------------------------------------------------------------
# Machine and its limits (measured before any server runs).
R[date]=$(date -u '+%Y-%m-%d %H:%M UTC')
R[nproc]=$(nproc)
R[cpu]=$(LC_ALL=C lscpu 2>/dev/null | awk -F': *' '/^Model name/ {print $2; exit}')
[ -n "${R[cpu]}" ] || R[cpu]=$(awk -F': *' '/^model name/ {print $2; exit}' /proc/cpuinfo)
R[kernel]=$(uname -r)
R[mem]=$(awk '/^MemTotal:/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)
R[fs]=$(df -PT "$WORK" | awk 'NR==2 {print $2 " on " $1}')
R[dist_version]=$("$DISTRIBUTION" --version 2>/dev/null | awk '{print $NF}')
R[load]=$(cut -d' ' -f1-3 /proc/loadavg)
R[idle_before]=$(cpu_idle_pct 1)
[ "${R[idle_before]}" -ge 80 ] || note "the machine was busy before the run (${R[idle_before]}% CPU idle over 1 s, load ${R[load]}): other processes compete with the servers and the load generators, so these numbers and even the ratios are less reliable"

log "SHA-256 speed (openssl speed, ${SHA_SECS}s)"
openssl speed -evp sha256 -bytes 1048576 -seconds "$SHA_SECS" >"$LOG_DIR/openssl-speed.log" 2>&1 || true
R[sha_Bps]=$(awk '/^sha256 / {v=$NF; sub(/k$/, "", v); print v * 1000}' "$LOG_DIR/openssl-speed.log" | tail -n1)
R[sha_MBps]=$(fmt "$(calc "${R[sha_Bps]:-nan} / 1e6")" 0)

log "disk: dd ${BLOB_MIB} MiB with fdatasync into the data dirs' filesystem"
dd if=/dev/zero of="$WORK/dd.tmp" bs=1M count="$BLOB_MIB" conv=fdatasync 2>"$LOG_DIR/dd.log" || true
rm -f "$WORK/dd.tmp"
dd_secs=$(awk '/copied/ {for (i = 1; i <= NF; i++) if ($i == "copied,") print $(i+1)}' "$LOG_DIR/dd.log")
R[dd_MBps]=$(fmt "$(calc "$BLOB_BYTES / ${dd_secs:-nan} / 1e6")" 0)

if have iperf3; then
  log "loopback TCP: iperf3 single stream, ${IPERF_SECS}s"
  ip_port=$(free_port)
  iperf3 -s -B 127.0.0.1 -p "$ip_port" -1 >"$LOG_DIR/iperf3-server.log" 2>&1 &
  EXTRA_PIDS+=($!)
  for _ in $(seq 100); do port_listening "$ip_port" && break; sleep 0.1; done
  iperf3 -c 127.0.0.1 -p "$ip_port" -t "$IPERF_SECS" -J >"$LOG_DIR/iperf3.json" 2>&1 || note "iperf3 failed (see $LOG_DIR/iperf3.json)"
  stop_bg "${EXTRA_PIDS[-1]}"
  R[iperf_MBps]=$(python3 -c 'import json,sys; print(round(json.load(open(sys.argv[1]))["end"]["sum_received"]["bits_per_second"] / 8e6))' "$LOG_DIR/iperf3.json" 2>/dev/null || echo nan)
fi

# ---------------------------------------------------------------------------
# Test data, identical for both servers.
log "making test data: a small image, a ${BLOB_MIB} MiB random blob, a 2-platform OCI layout"
S="$WORK/small"
mkdir -p "$S/l1" "$S/l2"
head -c 16384 /dev/urandom >"$S/l1/app.bin"
head -c 4096 /dev/urandom >"$S/l2/etc.bin"
SMALL_BLOBS=()                # files; digests in SMALL_DIGEST[file], sizes in SMALL_SIZE[file]
declare -A SMALL_DIGEST=() SMALL_SIZE=()
diff_ids=()
for l in l1 l2; do
  tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -cf "$S/$l.tar" -C "$S/$l" .
  diff_ids+=("\"sha256:$(sha256_file "$S/$l.tar")\"")
  gzip -n -c "$S/$l.tar" >"$S/$l.tar.gz"
done
printf '{"architecture":"amd64","os":"linux","config":{},"rootfs":{"type":"layers","diff_ids":[%s]}}' \
  "$(IFS=,; echo "${diff_ids[*]}")" >"$S/config.json"
for f in "$S/config.json" "$S/l1.tar.gz" "$S/l2.tar.gz"; do
  SMALL_BLOBS+=("$f"); SMALL_DIGEST[$f]="sha256:$(sha256_file "$f")"; SMALL_SIZE[$f]=$(stat -c %s "$f")
done
desc() { printf '{"mediaType":"%s","digest":"%s","size":%s}' "$1" "${SMALL_DIGEST[$2]}" "${SMALL_SIZE[$2]}"; }
printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":%s,"layers":[%s,%s]}' \
  "$(desc application/vnd.oci.image.config.v1+json "$S/config.json")" \
  "$(desc application/vnd.oci.image.layer.v1.tar+gzip "$S/l1.tar.gz")" \
  "$(desc application/vnd.oci.image.layer.v1.tar+gzip "$S/l2.tar.gz")" >"$S/manifest.json"
SMALL_MANIFEST_DIGEST="sha256:$(sha256_file "$S/manifest.json")"
HEAD_BLOB=${SMALL_DIGEST[$S/l1.tar.gz]}
HEAD_BLOB_SIZE=${SMALL_SIZE[$S/l1.tar.gz]}

BIG="$WORK/big.bin"
openssl enc -aes-128-ctr -pass pass:berth-bench -nosalt -pbkdf2 -in /dev/zero 2>/dev/null | head -c "$BLOB_BYTES" >"$BIG" || true
[ "$(stat -c %s "$BIG")" = "$BLOB_BYTES" ] || die "could not make the ${BLOB_MIB} MiB test blob"
BIG_DIGEST="sha256:$(sha256_file "$BIG")"

# timed_get TAG URL PID: one download to /dev/null; appends "MB/s cpu_ticks" to $WORK/TAG.runs
# (cpu_ticks of PID, or 0 without a PID) and fails unless it got 200 and the whole blob.
# TAG is a side (whose credentials the request carries) or "sendfile".
timed_get() {
  local tag=$1 url=$2 pid=${3:-} c0=0 c1=0 out code size secs
  [ -z "$pid" ] || c0=$(cpu_ticks "$pid")
  out=$(scurl "$tag" -sS -o /dev/null -w '%{http_code} %{size_download} %{time_total}' "$url") || out="000 0 0"
  [ -z "$pid" ] || c1=$(cpu_ticks "$pid")
  read -r code size secs <<<"$out"
  echo "download: HTTP $code, $size bytes, $secs s${pid:+, server cpu $((c1 - c0)) ticks}" >>"$LOG_DIR/blob-$tag.log"
  if [ "$code" != 200 ] || [ "$size" != "$BLOB_BYTES" ]; then log "$tag: GET $url -> HTTP $code, $size bytes"; return 1; fi
  echo "$(calc "$BLOB_BYTES / $secs / 1e6") $((c1 - c0))" >>"$WORK/$tag.runs"
}
# runs_summary TAG -> "median_MBps cpu_s_per_GiB" over the runs recorded by timed_get
runs_summary() {
  python3 - "$WORK/$1.runs" "$CLK_TCK" "$BLOB_BYTES" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
mbps = statistics.median(float(r[0]) for r in rows)
cpu = sum(int(r[1]) for r in rows) / int(sys.argv[2]) / (len(rows) * int(sys.argv[3]) / 2**30)
print("%.0f %.2f" % (mbps, cpu))
PY
}

log "download reference: curl from a minimal sendfile(2) server, $DOWNLOAD_RUNS run(s)"
python3 "$BENCH_DIR/sendfile_server.py" "$BIG" "$WORK/sendfile.port" >"$LOG_DIR/sendfile-server.log" 2>&1 &
EXTRA_PIDS+=($!)
for _ in $(seq 50); do [ -s "$WORK/sendfile.port" ] && break; sleep 0.1; done
if [ -s "$WORK/sendfile.port" ]; then
  ok=1
  for ((i = 0; i < DOWNLOAD_RUNS; i++)); do timed_get sendfile "http://127.0.0.1:$(cat "$WORK/sendfile.port")/big" || ok=0; done
  if [ "$ok" = 1 ]; then read -r "R[ref_MBps]" _ < <(runs_summary sendfile); fi
fi
stop_bg "${EXTRA_PIDS[-1]}"

LAYOUT="$WORK/layout"
INDEX_DIGEST=
if have umoci && have skopeo; then
  (
    set -e
    cd "$WORK"
    umoci init --layout "$LAYOUT"
    for arch in amd64 arm64; do
      umoci new --image "$LAYOUT:$arch"
      # two layers per platform (2 MiB + 1 MiB of random bytes), each from a fresh unpack
      for part in 2:a 1:b; do
        umoci unpack --rootless --image "$LAYOUT:$arch" "$WORK/bundle"
        head -c "${part%%:*}M" /dev/urandom >"$WORK/bundle/rootfs/${part#*:}.bin"
        umoci repack --image "$LAYOUT:$arch" "$WORK/bundle"
        rm -rf "$WORK/bundle"
      done
      umoci config --image "$LAYOUT:$arch" --architecture "$arch" --os linux
    done
    umoci gc --layout "$LAYOUT"
  ) >"$LOG_DIR/umoci.log" 2>&1 || die "umoci failed, see $LOG_DIR/umoci.log"
  INDEX_DIGEST=$(python3 "$BENCH_DIR/mkindex.py" "$LAYOUT" multi amd64 arm64)
  R[layout_MiB]=$(du -sm "$LAYOUT" | cut -f1)
fi

# ---------------------------------------------------------------------------
# Servers: both run for the whole benchmark (an idle server costs nothing) and each
# measurement runs on one server, then on the other, back to back.
declare -A UP=()              # UP[side]=1 once the server answered its readiness check
if start_server dist distribution "$WORK"; then UP[dist]=1; else note "distribution did not start (log: ${SRV_LOG[dist]})"; fi
if [ "$BERTH_SIDE" = berth ]; then
  R[berth_version]=$("$BERTH" --version 2>/dev/null | head -n1 || true)
  if start_server berth berth "$WORK"; then
    if load_admin_creds berth; then UP[berth]=1
    else note "berth: could not read the admin access key from ${SRV_DATA[berth]}/admin-credentials, so nothing was measured on it"; fi
  else note "berth did not start, or GET /readyz never answered 200 (log: ${SRV_LOG[berth]})"; fi
  if have wrk; then
    if start_server anon berth "$WORK" --allow-anonymous; then UP[anon]=1
    else note "berth --allow-anonymous did not start (log: ${SRV_LOG[anon]})"; fi
  fi
else
  if start_server berth distribution "$WORK"; then UP[berth]=1; else note "the second distribution did not start"; fi
  note "PLUMBING CHECK: the berth column is a second distribution instance (BERTH_SIDE=distribution)"
fi

seed_small() {
  local side=$1 base=${SRV_URL[$1]} f hdr code dgst body
  for f in "${SMALL_BLOBS[@]}"; do push_blob "$side" bench/small "$f" "${SMALL_DIGEST[$f]}" || return 1; done
  push_manifest "$side" bench/small latest "$S/manifest.json" application/vnd.oci.image.manifest.v1+json || return 1
  hdr="$WORK/seed-$side.hdr" body="$WORK/seed-$side.body"
  code=$(scurl "$side" -sS -D "$hdr" -o "$body" -w '%{http_code}' -H "Accept: $ACCEPT_MANIFESTS" "$base/v2/bench/small/manifests/latest")
  dgst=$(header Docker-Content-Digest "$hdr")
  [ "$code" = 200 ] || { log "$side: GET manifest by tag -> $code"; return 1; }
  [ "sha256:$(sha256_file "$body")" = "$SMALL_MANIFEST_DIGEST" ] || { log "$side: manifest body differs from what was pushed"; return 1; }
  [ "$dgst" = "$SMALL_MANIFEST_DIGEST" ] || note "${LABEL[$side]}: manifest GET by tag has Docker-Content-Digest '$dgst', expected $SMALL_MANIFEST_DIGEST"
  code=$(scurl "$side" -sS -I -D "$hdr" -o /dev/null -w '%{http_code}' "$base/v2/bench/small/blobs/$HEAD_BLOB")
  [ "$code" = 200 ] || { log "$side: HEAD blob -> $code"; return 1; }
  [ "$(header Content-Length "$hdr")" = "$HEAD_BLOB_SIZE" ] || { log "$side: HEAD blob Content-Length is '$(header Content-Length "$hdr")', expected $HEAD_BLOB_SIZE"; return 1; }
  if [ -n "${SRV_CREDS[$side]:-}" ]; then
    # The server really requires authentication: the same GET without credentials is a 401.
    code=$(curl -sS -o /dev/null -w '%{http_code}' -H "Accept: $ACCEPT_MANIFESTS" "$base/v2/bench/small/manifests/latest") || code=000
    R[anon_refused,$side]=$code
    [ "$code" = 401 ] || note "${LABEL[$side]}: a manifest GET without credentials got HTTP $code, not 401: this server does not require authentication"
  fi
}
for side in "${SIDES[@]}" anon; do
  [ "$side" != anon ] || [ -n "${UP[anon]:-}" ] || continue
  if [ -z "${UP[$side]:-}" ]; then R[seed,$side]=error; continue; fi
  if seed_small "$side"; then R[seed,$side]=ok; else R[seed,$side]=error; note "${LABEL[$side]}: seeding the small image failed (see log above / ${SRV_LOG[$side]})"; fi
done

# ---------------------------------------------------------------------------
# 1. Manifest GET by tag (wrk) and blob HEAD (ab).
# bench_get SIDE [TAG]: results in R[get_*,TAG] (TAG defaults to SIDE; the auth rounds use
# SIDE.N). Requests carry SIDE's credentials, if any, via accept.lua.
bench_get() {
  local side=$1 tag=${2:-$1} url="${SRV_URL[$1]}/v2/bench/small/manifests/latest" line c0 c1 l0 l1 authz
  local out="$LOG_DIR/wrk-$tag.log"
  authz=$(basic_auth "$side")
  BENCH_AUTHORIZATION=$authz wrk -t2 -c"$CONNS" -d"${WARMUP_SECS}s" -s "$BENCH_DIR/accept.lua" "$url" >"$LOG_DIR/wrk-warmup-$tag.log" 2>&1 || true
  c0=$(cpu_ticks "${SRV_PID[$side]}") l0=$(stat -c %s "${SRV_LOG[$side]}")
  BENCH_AUTHORIZATION=$authz wrk -t2 -c"$CONNS" -d"${LOAD_SECS}s" --latency -s "$BENCH_DIR/accept.lua" "$url" >"$out" 2>&1 || { log "$tag: wrk failed"; return 1; }
  c1=$(cpu_ticks "${SRV_PID[$side]}") l1=$(stat -c %s "${SRV_LOG[$side]}")
  line=$(grep '^WRKSUMMARY' "$out") || return 1
  local requests duration_us err_connect err_read err_write err_status err_timeout p50_us p99_us bytes
  eval "$(sed 's/^WRKSUMMARY //' <<<"$line")"
  R[get_req,$tag]=$requests R[get_ticks,$tag]=$((c1 - c0)) R[get_secs,$tag]=$(calc "$duration_us / 1e6")
  R[get_rps,$tag]=$(fmt "$(calc "$requests / ($duration_us / 1e6)")" 0)
  R[get_p50,$tag]=$(fmt "$(calc "$p50_us / 1000")" 2)
  R[get_p99,$tag]=$(fmt "$(calc "$p99_us / 1000")" 2)
  R[get_err,$tag]=$((err_connect + err_read + err_write + err_status + err_timeout))
  R[get_non2xx,$tag]=$err_status
  R[get_core,$tag]=$(fmt "$(calc "100 * ($c1 - $c0) / $CLK_TCK / ($duration_us / 1e6)")" 0)
  R[get_us,$tag]=$(fmt "$(calc "1e6 * ($c1 - $c0) / $CLK_TCK / $requests")" 0)
  R[get_logB,$tag]=$(fmt "$(calc "($l1 - $l0) / $requests")" 0)   # server log written per request
  [ "$err_status" = 0 ] || note "${LABEL[$side]}: $err_status of $requests manifest GETs under load got a 4xx/5xx"
  [ $((err_connect + err_read + err_write + err_timeout)) = 0 ] || note "${LABEL[$side]}: wrk socket errors under load: connect $err_connect, read $err_read, write $err_write, timeout $err_timeout"
}
bench_head() {
  local side=$1 url="${SRV_URL[$1]}/v2/bench/small/blobs/$HEAD_BLOB" out="$LOG_DIR/ab-$1.log" c0 c1 secs
  local auth=()
  [ -z "${SRV_CREDS[$side]:-}" ] || auth=(-A "${SRV_CREDS[$side]}")   # HTTP Basic
  ab "${auth[@]}" -i -k -r -c"$CONNS" -t"$WARMUP_SECS" -n 1000000 "$url" >"$LOG_DIR/ab-warmup-$side.log" 2>&1 || true
  # -t implies -n 50000 unless -n comes after it; size -n for the fastest plausible server.
  c0=$(cpu_ticks "${SRV_PID[$side]}")
  ab "${auth[@]}" -i -k -r -c"$CONNS" -t"$LOAD_SECS" -n $((LOAD_SECS * 150000)) "$url" >"$out" 2>&1 || { log "$side: ab failed"; return 1; }
  c1=$(cpu_ticks "${SRV_PID[$side]}")
  R[head_rps,$side]=$(awk '/^Requests per second:/ {printf "%.0f", $4}' "$out")
  R[head_complete,$side]=$(awk '/^Complete requests:/ {print $3}' "$out")
  R[head_failed,$side]=$(awk '/^Failed requests:/ {print $3}' "$out")
  R[head_non2xx,$side]=$(awk '/^Non-2xx responses:/ {print $3}' "$out")
  R[head_keepalive,$side]=$(awk '/^Keep-Alive requests:/ {print $3}' "$out")
  [ -n "${R[head_rps,$side]}" ] || return 1
  secs=$(awk '/^Time taken for tests:/ {print $5}' "$out")
  R[head_core,$side]=$(fmt "$(calc "100 * ($c1 - $c0) / $CLK_TCK / $secs")" 0)
  R[head_us,$side]=$(fmt "$(calc "1e6 * ($c1 - $c0) / $CLK_TCK / ${R[head_complete,$side]}")" 0)
  [ "${R[head_non2xx,$side]:-0}" = 0 ] || note "${LABEL[$side]}: ${R[head_non2xx,$side]} blob HEADs under load were not 2xx"
  [ "${R[head_failed,$side]:-0}" = 0 ] || note "${LABEL[$side]}: ab counted ${R[head_failed,$side]} failed blob HEADs"
  [ "${R[head_keepalive,$side]:-0}" -ge $((${R[head_complete,$side]:-0} / 2)) ] || note "${LABEL[$side]}: only ${R[head_keepalive,$side]:-0} of ${R[head_complete,$side]} HEADs reused a connection (ab -k sends HTTP/1.0 with Connection: keep-alive)"
}
if have wrk; then
  for side in "${SIDES[@]}"; do
    [ "${R[seed,$side]}" = ok ] || continue
    log "${LABEL[$side]}: manifest GET by tag, wrk -t2 -c$CONNS -d${LOAD_SECS}s"
    bench_get "$side" || note "${LABEL[$side]}: manifest GET benchmark failed (see $LOG_DIR/wrk-$side.log)"
  done
fi
if have ab; then
  for side in "${SIDES[@]}"; do
    [ "${R[seed,$side]}" = ok ] || continue
    log "${LABEL[$side]}: blob HEAD, ab -i -k -c$CONNS -t$LOAD_SECS"
    bench_head "$side" || note "${LABEL[$side]}: blob HEAD benchmark failed (see $LOG_DIR/ab-$side.log)"
  done
fi

# 1b. What authentication costs: manifest GET on berth (Basic admin key: key lookup,
# policy evaluation, two audit records per request) against berth --allow-anonymous (no
# credential, no evaluation, one audit record), in AUTH_ROUNDS alternating rounds of
# (anonymous, authenticated), each with its own warm-up. Rates are the median over rounds;
# CPU µs per request is over all rounds.
auth_rounds_done=0
if have wrk && [ "${R[seed,berth]:-}" = ok ] && [ "${R[seed,anon]:-}" = ok ]; then
  for ((round = 1; round <= AUTH_ROUNDS; round++)); do
    for side in anon berth; do
      log "auth cost, round $round/$AUTH_ROUNDS: ${LABEL[$side]}: manifest GET by tag, wrk -t2 -c$CONNS -d${LOAD_SECS}s"
      bench_get "$side" "$side.$round" || note "${LABEL[$side]}: manifest GET benchmark (auth cost, round $round) failed (see $LOG_DIR/wrk-$side.$round.log)"
    done
    auth_rounds_done=$round
  done
  for side in anon berth; do
    read -r "R[auth_rps,$side]" "R[auth_us,$side]" "R[auth_err,$side]" < <(
      for ((round = 1; round <= auth_rounds_done; round++)); do
        echo "${R[get_rps,$side.$round]:-nan} ${R[get_ticks,$side.$round]:-nan} ${R[get_req,$side.$round]:-nan} ${R[get_err,$side.$round]:-nan}"
      done | python3 -c '
import math, statistics, sys
rows = [[float(x) for x in l.split()] for l in sys.stdin if l.strip()]
if not rows or any(math.isnan(x) for r in rows for x in r):
    print("nan nan nan")
else:
    tck = float(sys.argv[1])
    print("%.0f %.1f %d" % (statistics.median(r[0] for r in rows), 1e6 * sum(r[1] for r in rows) / tck / sum(r[2] for r in rows), sum(r[3] for r in rows)))
' "$CLK_TCK") || true
  done
  R[auth_us_extra]=$(fmt "$(calc "${R[auth_us,berth]:-nan} - ${R[auth_us,anon]:-nan}")" 1)
elif [ "$BERTH_SIDE" = berth ] && have wrk; then
  note "the cost of authentication (berth vs berth --allow-anonymous) was not measured: one of them did not start or was not seeded"
fi
stop_server anon   # only needed for 1b

# ---------------------------------------------------------------------------
# 2. and 3. One big blob: upload (POST, then PUT with the whole body) and download.
bench_upload() {
  local side=$1 base=${SRV_URL[$1]} pid=${SRV_PID[$1]} url t0 t1 c0 c1 code
  sync
  t0=$(now_ns); c0=$(cpu_ticks "$pid")
  url=$(start_upload "$side" bench/big) || return 1
  code=$(scurl "$side" -sS -o "$LOG_DIR/upload-$side.body" -w '%{http_code}' -H 'Expect:' \
    -H 'Content-Type: application/octet-stream' -T "$BIG" "$(with_digest "$url" "$BIG_DIGEST")") || code=000
  t1=$(now_ns); c1=$(cpu_ticks "$pid")
  echo "upload: HTTP $code, wall $(((t1 - t0) / 1000000)) ms, server cpu $((c1 - c0)) ticks" >>"$LOG_DIR/blob-$side.log"
  [ "$code" = 201 ] || { log "$side: blob upload PUT -> $code"; return 1; }
  R[up_MBps,$side]=$(fmt "$(calc "$BLOB_BYTES / (($t1 - $t0) / 1e9) / 1e6")" 0)
  R[up_cpu,$side]=$(fmt "$(calc "($c1 - $c0) / $CLK_TCK / ($BLOB_BYTES / $GIB)")" 2)
}
bench_download() {
  local side=$1 url="${SRV_URL[$1]}/v2/bench/big/blobs/$BIG_DIGEST" i
  for ((i = 0; i < DOWNLOAD_RUNS; i++)); do timed_get "$side" "$url" "${SRV_PID[$side]}" || return 1; done
  read -r "R[down_MBps,$side]" "R[down_cpu,$side]" < <(runs_summary "$side")
  # Untimed: the bytes served hash to the digest they were asked for.
  if [ "sha256:$(scurl "$side" -sS "$url" | openssl dgst -sha256 -r | cut -d' ' -f1)" = "$BIG_DIGEST" ]; then
    R[down_ok,$side]=yes
  else
    R[down_ok,$side]=no; note "${LABEL[$side]}: downloaded blob does not hash to its digest"
  fi
}
for side in "${SIDES[@]}"; do
  [ -n "${UP[$side]:-}" ] || continue
  log "${LABEL[$side]}: upload one ${BLOB_MIB} MiB blob"
  if bench_upload "$side"; then
    log "${LABEL[$side]}: download it ($DOWNLOAD_RUNS run(s))"
    bench_download "$side" || note "${LABEL[$side]}: blob download failed (see $LOG_DIR/blob-$side.log)"
  else
    note "${LABEL[$side]}: blob upload failed (see $LOG_DIR/blob-$side.log)"
  fi
  R[rss,$side]=$(awk '/^VmHWM:/ {printf "%.0f", $2/1024}' "/proc/${SRV_PID[$side]}/status" 2>/dev/null || echo "?")
done

# ---------------------------------------------------------------------------
# 4. skopeo copy --all of the 2-platform image, timed by hyperfine, fresh repository each run.
bench_skopeo() {
  local side=$1 hp=${SRV_URL[$1]#http://} cmd code hdr="$WORK/skopeo-$1.hdr" body="$WORK/skopeo-$1.body" got
  cmd=$(printf '%q ' "$BENCH_DIR/skopeo-push.sh" "oci:$LAYOUT:multi" "$hp" bench/multi "$WORK/counter-$side")
  BENCH_DEST_CREDS=${SRV_CREDS[$side]:-} hyperfine --style basic --runs "$SKOPEO_RUNS" --warmup 1 -n "${LABEL[$side]}" \
    --export-json "$LOG_DIR/hyperfine-$side.json" "$cmd" >"$LOG_DIR/hyperfine-$side.log" 2>&1 || { log "$side: hyperfine failed"; return 1; }
  read -r "R[sk_mean,$side]" "R[sk_sd,$side]" < <(python3 -c 'import json,sys; r=json.load(open(sys.argv[1]))["results"][0]; print("%.3f %.3f" % (r["mean"], r["stddev"] or 0))' "$LOG_DIR/hyperfine-$side.json")
  # The last run's repository serves the index skopeo pushed, under the same digest.
  code=$(scurl "$side" -sS -D "$hdr" -o "$body" -w '%{http_code}' -H "Accept: $ACCEPT_MANIFESTS" \
    "${SRV_URL[$side]}/v2/bench/multi-$(cat "$WORK/counter-$side")/manifests/v1") || code=000
  got="sha256:$(sha256_file "$body")"
  if [ "$code" = 200 ] && [ "$got" = "$INDEX_DIGEST" ]; then R[sk_ok,$side]=yes
  else R[sk_ok,$side]=no; note "${LABEL[$side]}: after skopeo copy, GET index by tag -> $code, body digest $got (expected $INDEX_DIGEST)"; fi
  [ "$(header Docker-Content-Digest "$hdr")" = "$got" ] || note "${LABEL[$side]}: index GET by tag has Docker-Content-Digest '$(header Docker-Content-Digest "$hdr")', body hashes to $got"
}
SKOPEO_ISOLATION="fresh repository per run, empty skopeo blob-info cache per run"
if [ "$(id -u)" = 0 ] && ! unshare --mount true 2>/dev/null; then
  SKOPEO_ISOLATION="fresh repository per run (unshare unavailable: skopeo may mount blobs from the previous run's repository)"
  note "unshare --mount does not work here; skopeo runs share a blob-info cache"
fi
if [ -n "$INDEX_DIGEST" ] && have hyperfine; then
  for side in "${SIDES[@]}"; do
    [ -n "${UP[$side]:-}" ] || continue
    log "${LABEL[$side]}: skopeo copy --all, hyperfine ${SKOPEO_RUNS} runs"
    bench_skopeo "$side" || note "${LABEL[$side]}: skopeo benchmark failed (see $LOG_DIR/hyperfine-$side.log)"
  done
fi

for side in "${SIDES[@]}"; do
  [ -z "${UP[$side]:-}" ] || server_alive "$side" || note "${LABEL[$side]}: server died during the benchmark (log: ${SRV_LOG[$side]})"
done
for side in "${SIDES[@]}"; do stop_server "$side"; done
R[idle_after]=$(cpu_idle_pct 1)
[ "${R[idle_after]}" -ge 80 ] || note "the machine was busy right after the run (${R[idle_after]}% CPU idle over 1 s with both servers stopped): something else was competing for CPU"

# ---------------------------------------------------------------------------
# Report.
FAILS=0
v() { local x=${R[$1]:-}; if [ -n "$x" ] && [ "$x" != nan ]; then printf '%s' "$x"; else printf '%s' "${2:-n/a}"; fi; }
ratio() { # ratio A B -> "A/B" as "12.3x", or n/a
  local a=${R[$1]:-} b=${R[$2]:-}
  if [ -z "$a" ] || [ -z "$b" ] || [ "$a" = nan ] || [ "$b" = nan ]; then printf 'n/a'; return; fi
  local r; r=$(calc "$a / $b")
  if [ "$r" = nan ]; then printf 'n/a'; else printf '%s×' "$(fmt "$r" 2)"; fi
}
pct() { # pct A B -> "A/B" in percent
  local a=${R[$1]:-} b=${R[$2]:-}
  if [ -z "$a" ] || [ -z "$b" ] || [ "$a" = nan ] || [ "$b" = nan ]; then printf 'n/a'; return; fi
  local r; r=$(calc "100 * $a / $b")
  if [ "$r" = nan ]; then printf 'n/a'; else printf '%s%%' "$(fmt "$r" 0)"; fi
}
verdict() { # verdict PYTHON_CONDITION -> PASS / FAIL / n/a (counts failures)
  local r
  r=$(python3 -c "
try:
    print('PASS' if ($1) else 'FAIL')
except Exception:
    print('n/a')" 2>/dev/null)
  if [ "$r" = FAIL ]; then FAILS=$((FAILS + 1)); fi
  if [ "$r" = n/a ]; then FAILS=$((FAILS + 1)); r="FAIL (not measured)"; fi
  printf '%s' "$r"
}
num() { local x=${R[$1]:-}; if [ -n "$x" ] && [ "$x" != nan ]; then printf '%s' "$x"; else printf 'None'; fi; }

mode="full run"; [ "$QUICK" = 1 ] && mode="QUICK=1 run"
berth_desc="\`${BERTH_SRC:-$BERTH}\`${R[berth_version]:+ (${R[berth_version]})}, built ${R[berth_built]:-?}, sha256 ${R[berth_sha]:-?}…"
[ "$BERTH_SIDE" = distribution ] && berth_desc="**a second distribution ${R[dist_version]} instance (BERTH_SIDE=distribution plumbing check, not Berth)**"
git_rev=$(git -C "$ROOT" rev-parse --short --verify -q HEAD 2>/dev/null || echo "no commit yet")
git -C "$ROOT" diff --quiet HEAD -- 2>/dev/null || git_rev="$git_rev, with uncommitted changes"

r_get=$(ratio get_rps,berth get_rps,dist)
r_head=$(ratio head_rps,berth head_rps,dist)
get_v=$(verdict "$(num get_rps,berth) >= 10 * $(num get_rps,dist) and ${R[get_non2xx,berth]:-1} == 0")
head_v=$(verdict "$(num head_rps,berth) >= 10 * $(num head_rps,dist) and ${R[head_non2xx,berth]:-0} == 0 and ${R[head_failed,berth]:-1} == 0")
up_v=$(verdict "$(num up_MBps,berth) >= 0.9 * $(num dd_MBps)")
upcpu_v=$(verdict "$(num up_cpu,berth) <= 1.5")
down_v=$(verdict "$(num down_MBps,berth) >= 0.8 * $(num iperf_MBps) and '${R[down_ok,berth]:-}' == 'yes'")
downcpu_v=$(verdict "$(num down_cpu,berth) <= 0.3")
sk_ratio=$(ratio sk_mean,dist sk_mean,berth)

# Cost of authentication (1b) and of one policy evaluation (issue 3).
pct2() { # pct2 A B -> "A/B" in percent with two decimals, or n/a (A and B are numbers)
  local r; r=$(calc "100 * ${1:-nan} / ${2:-nan}")
  if [ "$r" = nan ]; then printf 'n/a'; else printf '%s%%' "$(fmt "$r" 2)"; fi
}
r_auth=$(ratio auth_rps,berth auth_rps,anon)
r_auth_us=$(ratio auth_us,berth auth_us,anon)
# A manifest GET's server CPU per request: from the auth rounds, else from section 1.
get_cpu_us=${R[auth_us,berth]:-${R[get_us,berth]:-nan}}
get_wall_us=$(calc "1e6 / ${R[auth_rps,berth]:-${R[get_rps,berth]:-nan}}")
pol_cpu_share=$(pct2 "${R[pol_us]:-nan}" "$get_cpu_us")
pol_wall_share=$(pct2 "${R[pol_us]:-nan}" "$get_wall_us")
if [ -n "$POLICY_SKIPPED" ]; then pol_v="— (not run: $POLICY_SKIPPED)"
else pol_v=$(verdict "$(num pol_us) <= 0.02 * ${get_cpu_us/#nan/None}"); fi

mkdir -p "$(dirname "$REPORT")"
{
  echo "# Benchmarks: Berth vs CNCF distribution"
  echo
  echo "Generated by \`bench/run.sh\` ($mode) on ${R[date]}. Do not edit by hand: rerun the script."
  echo
  echo "- Machine: ${R[nproc]} CPUs (${R[cpu]}), ${R[mem]} RAM, Linux ${R[kernel]}, temp dirs on ${R[fs]}; load average at start ${R[load]}, CPU idle just before / after the run ${R[idle_before]}% / ${R[idle_after]}%."
  echo "- Berth: $berth_desc, source revision $git_rev. It requires authentication (no \`--allow-anonymous\`): every request to it carries the admin access key from \`<data dir>/admin-credentials\` as HTTP Basic, and a request without it gets $(v anon_refused,berth 'n/a') (checked). A second Berth started with \`--allow-anonymous\` serves only the manifest GETs of section 1b."
  echo "- distribution: \`$DISTRIBUTION\` ${R[dist_version]}, filesystem storage, in-memory blob descriptor cache, deletes enabled, per-request logging off."
  echo "- The servers run at the same time on 127.0.0.1 with data dirs in the same temp dir; each measurement runs on distribution, then immediately on Berth, on the same data."
  echo "- Raw logs of this run: \`$LOG_DIR\` (not kept in the repository)."
  echo
  echo "Absolute numbers drift from run to run on a shared machine; the ratios measured in one run are what to compare. Rates are in MB/s (10^6 bytes per second); CPU-s/GiB is the server's user+system CPU time (all threads, from \`/proc/<pid>/stat\`) spent per GiB moved."
  if [ ${#NOTES[@]} -gt 0 ]; then
    echo
    echo "**Notes from this run:**"
    echo
    for n in "${NOTES[@]}"; do echo "- $n"; done
  fi
  echo
  echo "## Summary"
  echo
  echo "| measurement | berth | distribution | berth ÷ distribution | target | result |"
  echo "| --- | ---: | ---: | ---: | --- | --- |"
  echo "| manifest GET by tag, req/s | $(v get_rps,berth) | $(v get_rps,dist) | $r_get | berth ≥ 10× distribution | $get_v |"
  echo "| blob HEAD, req/s | $(v head_rps,berth) | $(v head_rps,dist) | $r_head | berth ≥ 10× distribution | $head_v |"
  echo "| ${BLOB_MIB} MiB blob upload, MB/s | $(v up_MBps,berth) ($(pct up_MBps,berth dd_MBps) of dd) | $(v up_MBps,dist) ($(pct up_MBps,dist dd_MBps) of dd) | $(ratio up_MBps,berth up_MBps,dist) | ≥ 90% of dd ($(v dd_MBps) MB/s) | $up_v |"
  echo "| blob upload, server CPU-s/GiB (lower is better) | $(v up_cpu,berth) | $(v up_cpu,dist) | $(ratio up_cpu,berth up_cpu,dist) | ≤ 1.5 | $upcpu_v |"
  echo "| ${BLOB_MIB} MiB blob download, MB/s | $(v down_MBps,berth) ($(pct down_MBps,berth iperf_MBps) of iperf3) | $(v down_MBps,dist) ($(pct down_MBps,dist iperf_MBps) of iperf3) | $(ratio down_MBps,berth down_MBps,dist) | ≥ 80% of iperf3 ($(v iperf_MBps) MB/s) | $down_v |"
  echo "| blob download, server CPU-s/GiB (lower is better) | $(v down_cpu,berth) | $(v down_cpu,dist) | $(ratio down_cpu,berth down_cpu,dist) | ≤ 0.3 | $downcpu_v |"
  echo "| \`skopeo copy --all\` 2-platform image, s (lower is better) | $(v sk_mean,berth) | $(v sk_mean,dist) | $(ratio sk_mean,berth sk_mean,dist) | none (informational) | — |"
  echo
  echo "Cost of authentication (issue 3: policy evaluation must not be a measurable share of a manifest GET), section 1b:"
  echo
  echo "| measurement | berth, Basic admin key | berth --allow-anonymous | auth ÷ anonymous | target | result |"
  echo "| --- | ---: | ---: | ---: | --- | --- |"
  echo "| manifest GET by tag, req/s (median of $auth_rounds_done round(s)) | $(v auth_rps,berth) | $(v auth_rps,anon) | $r_auth | none (informational) | — |"
  echo "| manifest GET, server CPU µs per request | $(v auth_us,berth) | $(v auth_us,anon) | $r_auth_us (+$(v auth_us_extra) µs) | none (informational) | — |"
  echo "| one policy evaluation (\`cargo bench -p berth-iam --bench policy\`, slowest \`evaluate/*\` case), µs | $(v pol_us) ($pol_cpu_share of the GET's server CPU, $pol_wall_share of 1/rate) | | | ≤ 2% of a manifest GET's server CPU | $pol_v |"
  echo
  echo "Machine limits measured in the same run: SHA-256 $(v sha_MBps) MB/s (one core, \`openssl speed\`), disk $(v dd_MBps) MB/s (dd with fdatasync), loopback TCP $(v iperf_MBps) MB/s (iperf3, one stream), the same curl against a minimal sendfile(2) server $(v ref_MBps) MB/s (for scale)."
  echo "For the design brief's upload target (≥ 70% of SHA-256 speed): berth $(pct up_MBps,berth sha_MBps), distribution $(pct up_MBps,dist sha_MBps)."
  echo
  echo "## 1. Manifest GET by tag and blob HEAD"
  echo
  echo "Both servers hold the same small OCI image (\`bench/small:latest\`: a config and two gzip layers of 16 KiB and 4 KiB, pushed with curl: POST upload, PUT ?digest=, PUT manifest). After seeding, GET by tag must return the pushed manifest bytes and HEAD must return the layer's size."
  echo
  echo "- manifest GET: \`wrk -t2 -c$CONNS -d${LOAD_SECS}s -s bench/accept.lua http://127.0.0.1:PORT/v2/bench/small/manifests/latest\` (Accept: OCI manifest and index, Docker schema2 manifest and list), after a ${WARMUP_SECS} s warm-up."
  echo "- blob HEAD: \`ab -i -k -r -c$CONNS -t$LOAD_SECS -n $((LOAD_SECS * 150000)) http://127.0.0.1:PORT/v2/bench/small/blobs/$HEAD_BLOB\`, after a ${WARMUP_SECS} s warm-up."
  echo
  echo "| | berth | distribution |"
  echo "| --- | ---: | ---: |"
  echo "| seeded and checked | $(v seed,berth) | $(v seed,dist) |"
  echo "| manifest GET req/s | $(v get_rps,berth) | $(v get_rps,dist) |"
  echo "| manifest GET latency p50 / p99, ms | $(v get_p50,berth) / $(v get_p99,berth) | $(v get_p50,dist) / $(v get_p99,dist) |"
  echo "| manifest GET errors (socket + non-2xx/3xx) | $(v get_err,berth) | $(v get_err,dist) |"
  echo "| manifest GET: server CPU, % of one core / µs per request | $(v get_core,berth) / $(v get_us,berth) | $(v get_core,dist) / $(v get_us,dist) |"
  echo "| blob HEAD req/s | $(v head_rps,berth) | $(v head_rps,dist) |"
  echo "| blob HEAD completed / failed / non-2xx / keep-alive | $(v head_complete,berth) / $(v head_failed,berth) / $(v head_non2xx,berth 0) / $(v head_keepalive,berth) | $(v head_complete,dist) / $(v head_failed,dist) / $(v head_non2xx,dist 0) / $(v head_keepalive,dist) |"
  echo "| blob HEAD: server CPU, % of one core / µs per request | $(v head_core,berth) / $(v head_us,berth) | $(v head_core,dist) / $(v head_us,dist) |"
  echo
  echo "The machine has ${R[nproc]} CPUs shared by the server and the load generator. ab is single-threaded: when the server uses well under the CPUs left to it, ab (not the server) is the limit and the HEAD rate understates the server."
  echo
  echo "Berth's requests carry the admin access key as HTTP Basic: wrk's through \`accept.lua\` (header from the environment variable \`BENCH_AUTHORIZATION\`), ab's with \`-A <access key id>:<secret>\`. Distribution's go out anonymous, as before."
  echo
  echo "## 1b. Cost of authentication and policy evaluation"
  echo
  echo "The same manifest GET by tag (\`wrk -t2 -c$CONNS -d${LOAD_SECS}s -s bench/accept.lua\`, ${WARMUP_SECS} s warm-up each) on two Berths running the same binary and holding the same image: **berth** requires authentication and gets \`Authorization: Basic <admin access key>\` (per request: Basic decoding, key lookup and constant-time secret comparison, IAM policy evaluation of the admin's identity policy, an authentication and an authorisation audit record); **berth --allow-anonymous** gets no credentials (no key, no evaluation, one authorisation audit record). $auth_rounds_done alternating round(s), anonymous first; req/s is the median over rounds, CPU µs per request is over all rounds. The difference in CPU µs per request is what authenticating and authorising one request costs end to end."
  echo
  echo "| round | req/s anonymous | req/s auth | auth ÷ anonymous | p50 / p99 ms anonymous | p50 / p99 ms auth | server CPU µs/req anonymous | server CPU µs/req auth | server log bytes/req anonymous / auth | errors anonymous / auth |"
  echo "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
  for ((round = 1; round <= auth_rounds_done; round++)); do
    echo "| $round | $(v "get_rps,anon.$round") | $(v "get_rps,berth.$round") | $(ratio "get_rps,berth.$round" "get_rps,anon.$round") | $(v "get_p50,anon.$round") / $(v "get_p99,anon.$round") | $(v "get_p50,berth.$round") / $(v "get_p99,berth.$round") | $(v "get_us,anon.$round") | $(v "get_us,berth.$round") | $(v "get_logB,anon.$round") / $(v "get_logB,berth.$round") | $(v "get_err,anon.$round") / $(v "get_err,berth.$round") |"
  done
  [ "$auth_rounds_done" -gt 0 ] || echo "| — | not measured | | | | | | | | |"
  echo
  echo "Server log bytes per request: what the server wrote to its log (stderr, a file in the logs dir) during the timed run, over the requests; Berth logs each audit record (\`berth::audit\` \"access decision\", info level) as well as appending it to the \`audit_log\` table."
  echo
  if [ -n "$POLICY_SKIPPED" ]; then
    echo "Policy evaluation on its own: not run ($POLICY_SKIPPED)."
  else
    echo "Policy evaluation on its own: \`cargo bench -p berth-iam --bench policy${POLICY_BENCH_ARGS:+ -- $POLICY_BENCH_ARGS}\` (criterion, in-process, one core; built from the working tree at the start of this run, before any server started). Each case is criterion's middle estimate per call; the share is of an authenticated manifest GET's server CPU time ($(fmt "$get_cpu_us" 1) µs) and of the time per request at the measured rate (1/rate = $(fmt "$get_wall_us" 1) µs; with $CONNS connections each GET takes $(fmt "$(calc "$CONNS * $get_wall_us")" 0) µs on average)."
    echo
    echo "| case | µs per call | share of a manifest GET's server CPU | share of 1/rate |"
    echo "| --- | ---: | ---: | ---: |"
    if [ -s "$WORK/policy.tsv" ]; then
      while IFS=$'\t' read -r name us; do
        echo "| \`$name\` | $(fmt "$us" 3) | $(pct2 "$us" "$get_cpu_us") | $(pct2 "$us" "$get_wall_us") |"
      done <"$WORK/policy.tsv"
    else
      echo "| not measured (see the notes) | | | |"
    fi
    echo
    echo "The \`evaluate/*\` cases time what a manifest GET does per request (the admin identity policy plus a repository policy with a condition); \`parse/*\` happens once per policy change, not per request."
    echo
    echo "Of the $(v auth_us_extra) µs of server CPU that authentication adds to a manifest GET (above), the slowest evaluation is $(pct2 "${R[pol_us]:-nan}" "${R[auth_us_extra]:-nan}")."
  fi
  echo
  echo "## 2. Blob upload"
  echo
  echo "One ${BLOB_MIB} MiB blob of random bytes, \`POST /v2/bench/big/blobs/uploads/\` then \`curl -T big.bin -H 'Expect:' '<Location>?digest=sha256:…'\` (one PUT with the whole body). MB/s is the blob size over the wall time from the POST to the 201; \`sync\` runs before each upload so neither server pays for the other's dirty pages. The reference is \`dd if=/dev/zero of=<temp dir> bs=1M count=$BLOB_MIB conv=fdatasync\` on the same filesystem."
  echo
  echo "| | berth | distribution |"
  echo "| --- | ---: | ---: |"
  echo "| MB/s | $(v up_MBps,berth) | $(v up_MBps,dist) |"
  echo "| % of dd ($(v dd_MBps) MB/s) | $(pct up_MBps,berth dd_MBps) | $(pct up_MBps,dist dd_MBps) |"
  echo "| % of SHA-256 speed ($(v sha_MBps) MB/s) | $(pct up_MBps,berth sha_MBps) | $(pct up_MBps,dist sha_MBps) |"
  echo "| server CPU-s per GiB | $(v up_cpu,berth) | $(v up_cpu,dist) |"
  echo
  echo "## 3. Blob download"
  echo
  echo "The same blob, \`curl -o /dev/null http://127.0.0.1:PORT/v2/bench/big/blobs/$BIG_DIGEST\` (from the page cache: it was just written). Median of $DOWNLOAD_RUNS download(s); CPU-s/GiB over all of them. The target's reference is \`iperf3 -c 127.0.0.1 -t $IPERF_SECS\` (one stream, memory to memory). A second reference is the same curl command against \`bench/sendfile_server.py\`, a minimal server that answers with sendfile(2) from the page cache: for scale, what a file server that does nothing else gets with this client on this machine (it is not a ceiling: a server that reads and writes in big chunks can beat it). After the timed downloads an untimed one checks that the bytes hash to the digest."
  echo
  echo "| | berth | distribution |"
  echo "| --- | ---: | ---: |"
  echo "| MB/s | $(v down_MBps,berth) | $(v down_MBps,dist) |"
  echo "| % of iperf3 ($(v iperf_MBps) MB/s) | $(pct down_MBps,berth iperf_MBps) | $(pct down_MBps,dist iperf_MBps) |"
  echo "| % of sendfile reference ($(v ref_MBps) MB/s) | $(pct down_MBps,berth ref_MBps) | $(pct down_MBps,dist ref_MBps) |"
  echo "| server CPU-s per GiB | $(v down_cpu,berth) | $(v down_cpu,dist) |"
  echo "| content verified | $(v down_ok,berth) | $(v down_ok,dist) |"
  echo "| server peak RSS after upload + download, MiB | $(v rss,berth) | $(v rss,dist) |"
  echo
  echo "## 4. skopeo copy --all of a 2-platform image"
  echo
  echo "An OCI layout made with umoci (linux/amd64 and linux/arm64, two layers of 2 MiB and 1 MiB of random bytes each, $(v layout_MiB) MiB in all) and a hand-written image index (\`bench/mkindex.py\`), pushed with \`skopeo copy --all --dest-tls-verify=false oci:LAYOUT:multi docker://127.0.0.1:PORT/bench/multi-N:v1\` via \`bench/skopeo-push.sh\`: $SKOPEO_ISOLATION, so every run uploads every blob. \`hyperfine --runs $SKOPEO_RUNS --warmup 1\`. After the runs, GET of the index by tag must return the pushed index digest."
  echo
  echo "| | berth | distribution |"
  echo "| --- | ---: | ---: |"
  echo "| mean ± σ, s | $(v sk_mean,berth) ± $(v sk_sd,berth) | $(v sk_mean,dist) ± $(v sk_sd,dist) |"
  echo "| index digest preserved | $(v sk_ok,berth) | $(v sk_ok,dist) |"
  echo "| berth is faster by (distribution time ÷ berth time) | $sk_ratio | |"
  echo
  echo "## 5. Machine limits"
  echo
  echo "| limit | value | command |"
  echo "| --- | ---: | --- |"
  echo "| SHA-256, one core | $(v sha_MBps) MB/s | \`openssl speed -evp sha256 -bytes 1048576 -seconds $SHA_SECS\` |"
  echo "| disk, synced write | $(v dd_MBps) MB/s | \`dd if=/dev/zero of=<temp dir>/dd.tmp bs=1M count=$BLOB_MIB conv=fdatasync\` |"
  echo "| loopback TCP, one stream | $(v iperf_MBps) MB/s | \`iperf3 -s -B 127.0.0.1 -p P -1\` and \`iperf3 -c 127.0.0.1 -p P -t $IPERF_SECS\` |"
  echo "| file download, sendfile reference | $(v ref_MBps) MB/s | \`bench/sendfile_server.py big.bin PORTFILE\` and \`curl -o /dev/null http://127.0.0.1:P/\` (median of $DOWNLOAD_RUNS) |"
  echo
  echo "## Reproduce"
  echo
  echo '```'
  echo "cargo build --release -p berth"
  if [ "$QUICK" = 1 ]; then echo "QUICK=1 bench/run.sh"; else echo "bench/run.sh"; fi
  echo '```'
  echo
  echo "Needs curl, python3, openssl, wrk, ab (apache2-utils), hyperfine, iperf3, skopeo, umoci and docker-registry (distribution 2.8). See \`bench/README.md\` for what each number means and how the servers are configured."
} >"$REPORT.tmp"
mv "$REPORT.tmp" "$REPORT"

log "report written to $REPORT"
# Berth logs every audit record (two per authenticated request): its log reaches hundreds
# of MB in a full run. Compress big server logs so the kept logs dir stays small.
for f in "$LOG_DIR"/server-*.log; do
  [ ! -f "$f" ] || [ "$(stat -c %s "$f")" -le $((16 << 20)) ] || { log "compressing $f ($(($(stat -c %s "$f") >> 20)) MiB)"; gzip -1 -f "$f"; }
done
sed -n '/^## Summary/,/^## 1\./p' "$REPORT" | sed '$d' >&2
log "raw logs: $LOG_DIR"
if [ "$STRICT" = 1 ] && [ "$FAILS" -gt 0 ]; then log "$FAILS target(s) not met (STRICT=1)"; exit 1; fi
exit 0
