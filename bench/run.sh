#!/usr/bin/env bash
# Berth vs CNCF distribution 2.8, side by side in one run on the same data.
# Writes docs/benchmarks.md; raw logs stay in a temp dir whose path is printed.
# See bench/README.md. Usage:
#   bench/run.sh                      # full run (about 2-3 minutes)
#   QUICK=1 bench/run.sh              # shortened run (under a minute)
#   BERTH=/path/to/berth bench/run.sh # default: target/release/berth
#   BERTH_SIDE=distribution bench/run.sh  # plumbing check: the "berth" side is a second distribution
set -euo pipefail

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
else
  LOAD_SECS=${LOAD_SECS:-10} BLOB_MIB=${BLOB_MIB:-1024} IPERF_SECS=${IPERF_SECS:-5}
  SKOPEO_RUNS=${SKOPEO_RUNS:-5} SHA_SECS=${SHA_SECS:-3} DOWNLOAD_RUNS=${DOWNLOAD_RUNS:-3}
fi
WARMUP_SECS=1
CONNS=32
BLOB_BYTES=$((BLOB_MIB * 1048576))
GIB=1073741824
SIDES=(dist berth)           # measurement order within each step
declare -A LABEL=([dist]=distribution [berth]=berth)

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
  for s in "${SIDES[@]}"; do stop_server "$s"; done
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
if [ "$WAIT_IDLE" -gt 0 ]; then
  log "waiting up to ${WAIT_IDLE}s for the machine to be quiet (>= 80% CPU idle over 1 s)"
  deadline=$((SECONDS + WAIT_IDLE))
  while [ "$(cpu_idle_pct 1)" -lt 80 ] && [ "$SECONDS" -lt "$deadline" ]; do :; done
fi
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
timed_get() {
  local tag=$1 url=$2 pid=${3:-} c0=0 c1=0 out code size secs
  [ -z "$pid" ] || c0=$(cpu_ticks "$pid")
  out=$(curl -sS -o /dev/null -w '%{http_code} %{size_download} %{time_total}' "$url") || out="000 0 0"
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
  if start_server berth berth "$WORK"; then UP[berth]=1
  else note "berth did not start, or GET /readyz never answered 200 (log: ${SRV_LOG[berth]})"; fi
else
  if start_server berth distribution "$WORK"; then UP[berth]=1; else note "the second distribution did not start"; fi
  note "PLUMBING CHECK: the berth column is a second distribution instance (BERTH_SIDE=distribution)"
fi

seed_small() {
  local side=$1 base=${SRV_URL[$1]} f hdr code dgst body
  for f in "${SMALL_BLOBS[@]}"; do push_blob "$base" bench/small "$f" "${SMALL_DIGEST[$f]}" || return 1; done
  push_manifest "$base" bench/small latest "$S/manifest.json" application/vnd.oci.image.manifest.v1+json || return 1
  hdr="$WORK/seed-$side.hdr" body="$WORK/seed-$side.body"
  code=$(curl -sS -D "$hdr" -o "$body" -w '%{http_code}' -H "Accept: $ACCEPT_MANIFESTS" "$base/v2/bench/small/manifests/latest")
  dgst=$(header Docker-Content-Digest "$hdr")
  [ "$code" = 200 ] || { log "$side: GET manifest by tag -> $code"; return 1; }
  [ "sha256:$(sha256_file "$body")" = "$SMALL_MANIFEST_DIGEST" ] || { log "$side: manifest body differs from what was pushed"; return 1; }
  [ "$dgst" = "$SMALL_MANIFEST_DIGEST" ] || note "${LABEL[$side]}: manifest GET by tag has Docker-Content-Digest '$dgst', expected $SMALL_MANIFEST_DIGEST"
  code=$(curl -sS -I -D "$hdr" -o /dev/null -w '%{http_code}' "$base/v2/bench/small/blobs/$HEAD_BLOB")
  [ "$code" = 200 ] || { log "$side: HEAD blob -> $code"; return 1; }
  [ "$(header Content-Length "$hdr")" = "$HEAD_BLOB_SIZE" ] || { log "$side: HEAD blob Content-Length is '$(header Content-Length "$hdr")', expected $HEAD_BLOB_SIZE"; return 1; }
}
for side in "${SIDES[@]}"; do
  if [ -z "${UP[$side]:-}" ]; then R[seed,$side]=error; continue; fi
  if seed_small "$side"; then R[seed,$side]=ok; else R[seed,$side]=error; note "${LABEL[$side]}: seeding the small image failed (see log above / ${SRV_LOG[$side]})"; fi
done

# ---------------------------------------------------------------------------
# 1. Manifest GET by tag (wrk) and blob HEAD (ab).
bench_get() {
  local side=$1 url="${SRV_URL[$1]}/v2/bench/small/manifests/latest" out="$LOG_DIR/wrk-$1.log" line c0 c1
  wrk -t2 -c"$CONNS" -d"${WARMUP_SECS}s" -s "$BENCH_DIR/accept.lua" "$url" >"$LOG_DIR/wrk-warmup-$side.log" 2>&1 || true
  c0=$(cpu_ticks "${SRV_PID[$side]}")
  wrk -t2 -c"$CONNS" -d"${LOAD_SECS}s" --latency -s "$BENCH_DIR/accept.lua" "$url" >"$out" 2>&1 || { log "$side: wrk failed"; return 1; }
  c1=$(cpu_ticks "${SRV_PID[$side]}")
  line=$(grep '^WRKSUMMARY' "$out") || return 1
  local requests duration_us err_connect err_read err_write err_status err_timeout p50_us p99_us bytes
  eval "$(sed 's/^WRKSUMMARY //' <<<"$line")"
  R[get_rps,$side]=$(fmt "$(calc "$requests / ($duration_us / 1e6)")" 0)
  R[get_p50,$side]=$(fmt "$(calc "$p50_us / 1000")" 2)
  R[get_p99,$side]=$(fmt "$(calc "$p99_us / 1000")" 2)
  R[get_err,$side]=$((err_connect + err_read + err_write + err_status + err_timeout))
  R[get_non2xx,$side]=$err_status
  R[get_core,$side]=$(fmt "$(calc "100 * ($c1 - $c0) / $CLK_TCK / ($duration_us / 1e6)")" 0)
  R[get_us,$side]=$(fmt "$(calc "1e6 * ($c1 - $c0) / $CLK_TCK / $requests")" 0)
  [ "$err_status" = 0 ] || note "${LABEL[$side]}: $err_status of $requests manifest GETs under load got a 4xx/5xx"
  [ $((err_connect + err_read + err_write + err_timeout)) = 0 ] || note "${LABEL[$side]}: wrk socket errors under load: connect $err_connect, read $err_read, write $err_write, timeout $err_timeout"
}
bench_head() {
  local side=$1 url="${SRV_URL[$1]}/v2/bench/small/blobs/$HEAD_BLOB" out="$LOG_DIR/ab-$1.log" c0 c1 secs
  ab -i -k -r -c"$CONNS" -t"$WARMUP_SECS" -n 1000000 "$url" >"$LOG_DIR/ab-warmup-$side.log" 2>&1 || true
  # -t implies -n 50000 unless -n comes after it; size -n for the fastest plausible server.
  c0=$(cpu_ticks "${SRV_PID[$side]}")
  ab -i -k -r -c"$CONNS" -t"$LOAD_SECS" -n $((LOAD_SECS * 150000)) "$url" >"$out" 2>&1 || { log "$side: ab failed"; return 1; }
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
for side in "${SIDES[@]}"; do
  [ "${R[seed,$side]}" = ok ] || continue
  if have wrk; then
    log "${LABEL[$side]}: manifest GET by tag, wrk -t2 -c$CONNS -d${LOAD_SECS}s"
    bench_get "$side" || note "${LABEL[$side]}: manifest GET benchmark failed (see $LOG_DIR/wrk-$side.log)"
  fi
  if have ab; then
    log "${LABEL[$side]}: blob HEAD, ab -i -k -c$CONNS -t$LOAD_SECS"
    bench_head "$side" || note "${LABEL[$side]}: blob HEAD benchmark failed (see $LOG_DIR/ab-$side.log)"
  fi
done

# ---------------------------------------------------------------------------
# 2. and 3. One big blob: upload (POST, then PUT with the whole body) and download.
bench_upload() {
  local side=$1 base=${SRV_URL[$1]} pid=${SRV_PID[$1]} url t0 t1 c0 c1 code
  sync
  t0=$(now_ns); c0=$(cpu_ticks "$pid")
  url=$(start_upload "$base" bench/big) || return 1
  code=$(curl -sS -o "$LOG_DIR/upload-$side.body" -w '%{http_code}' -H 'Expect:' \
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
  if [ "sha256:$(curl -sS "$url" | openssl dgst -sha256 -r | cut -d' ' -f1)" = "$BIG_DIGEST" ]; then
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
  hyperfine --style basic --runs "$SKOPEO_RUNS" --warmup 1 -n "${LABEL[$side]}" \
    --export-json "$LOG_DIR/hyperfine-$side.json" "$cmd" >"$LOG_DIR/hyperfine-$side.log" 2>&1 || { log "$side: hyperfine failed"; return 1; }
  read -r "R[sk_mean,$side]" "R[sk_sd,$side]" < <(python3 -c 'import json,sys; r=json.load(open(sys.argv[1]))["results"][0]; print("%.3f %.3f" % (r["mean"], r["stddev"] or 0))' "$LOG_DIR/hyperfine-$side.json")
  # The last run's repository serves the index skopeo pushed, under the same digest.
  code=$(curl -sS -D "$hdr" -o "$body" -w '%{http_code}' -H "Accept: $ACCEPT_MANIFESTS" \
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

mkdir -p "$(dirname "$REPORT")"
{
  echo "# Benchmarks: Berth vs CNCF distribution"
  echo
  echo "Generated by \`bench/run.sh\` ($mode) on ${R[date]}. Do not edit by hand: rerun the script."
  echo
  echo "- Machine: ${R[nproc]} CPUs (${R[cpu]}), ${R[mem]} RAM, Linux ${R[kernel]}, temp dirs on ${R[fs]}; load average at start ${R[load]}, CPU idle just before / after the run ${R[idle_before]}% / ${R[idle_after]}%."
  echo "- Berth: $berth_desc, source revision $git_rev."
  echo "- distribution: \`$DISTRIBUTION\` ${R[dist_version]}, filesystem storage, in-memory blob descriptor cache, deletes enabled, per-request logging off."
  echo "- Both servers run at the same time on 127.0.0.1 with data dirs in the same temp dir; each measurement runs on distribution, then immediately on Berth, on the same data."
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
sed -n '/^## Summary/,/^## 1\./p' "$REPORT" | sed '$d' >&2
log "raw logs: $LOG_DIR"
if [ "$STRICT" = 1 ] && [ "$FAILS" -gt 0 ]; then log "$FAILS target(s) not met (STRICT=1)"; exit 1; fi
exit 0
