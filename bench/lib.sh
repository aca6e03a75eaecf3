# shellcheck shell=bash
# Helpers for bench/run.sh: free ports, starting and stopping the servers, their
# credentials, per-process CPU accounting and plain-HTTP OCI pushes with curl.
# Sourced, never run. Everything talks to 127.0.0.1 only.

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "FATAL: $*"; exit 1; }
have() { command -v "$1" >/dev/null 2>&1; }

# A free TCP port on 127.0.0.1 (the kernel picks it; tiny race before we bind it again).
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

now_ns() { date +%s%N; }

# port_listening PORT: something listens on 127.0.0.1:PORT (read from /proc/net/tcp, so
# that checking does not open a connection).
port_listening() {
  awk -v want="$(printf '0100007F:%04X' "$1")" '$2 == want && $4 == "0A" {found = 1} END {exit !found}' /proc/net/tcp
}

# running_child PID: PID is a background job of this shell that has not exited yet.
# (Checked through the shell's job table, not kill -0: once a child has exited and been
# reaped, its PID may belong to some other process, which must never be signalled.)
running_child() {
  local jobs_running
  jobs_running=$(jobs -pr)
  [[ $'\n'$jobs_running$'\n' == *$'\n'$1$'\n'* ]]
}

# stop_bg PID: stop one background job we started (TERM, then KILL after 5 s) and reap it.
stop_bg() {
  local pid=$1 i
  [ -n "$pid" ] || return 0
  if running_child "$pid"; then
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do running_child "$pid" || break; sleep 0.1; done
    if running_child "$pid"; then kill -KILL "$pid" 2>/dev/null || true; fi
  fi
  wait "$pid" 2>/dev/null || true
}

# utime+stime (all threads) of PID, in clock ticks. Field 14 and 15 of /proc/PID/stat,
# counted after the ")" that closes the command name (which may contain spaces).
cpu_ticks() {
  local stat rest
  stat=$(<"/proc/$1/stat") || return 1
  rest=${stat##*) }
  # shellcheck disable=SC2086
  set -- $rest
  echo $(( ${12} + ${13} ))
}
CLK_TCK=$(getconf CLK_TCK)

# cpu_idle_pct SECONDS: share of all CPUs' time that was idle (incl. iowait) over SECONDS.
cpu_idle_pct() {
  local a b
  read -r -a a < <(head -n1 /proc/stat)
  sleep "$1"
  read -r -a b < <(head -n1 /proc/stat)
  # fields: cpu user nice system idle iowait irq softirq steal
  local t i
  t=$(( (b[1]+b[2]+b[3]+b[4]+b[5]+b[6]+b[7]+b[8]) - (a[1]+a[2]+a[3]+a[4]+a[5]+a[6]+a[7]+a[8]) ))
  i=$(( (b[4]+b[5]) - (a[4]+a[5]) ))
  if [ "$t" -gt 0 ]; then echo $((100 * i / t)); else echo 100; fi
}

# fmt NUMBER DECIMALS
fmt() { LC_ALL=C printf "%.${2:-1}f" "$1"; }
# calc EXPR: floating point arithmetic via python3 (prints "nan" on error).
calc() { python3 -c "import math
try:
    print(repr(float($1)))
except Exception:
    print('nan')"; }

# ---------------------------------------------------------------------------
# Servers. Each side ("dist", "berth", "anon") gets an entry in these arrays.
# SRV_CREDS[side] is "<access key id>:<secret>" for a server that requires authentication
# (empty: requests go out anonymous); SRV_CURLRC[side] is a 0600 curl config holding it,
# so that the secret is not in curl's argv.
declare -A SRV_PID=() SRV_PORT=() SRV_URL=() SRV_DATA=() SRV_LOG=() SRV_KIND=() SRV_CREDS=() SRV_CURLRC=()

# write_dist_config FILE PORT DATADIR
# Distribution as its docs recommend for a single node: filesystem storage, in-memory
# blob descriptor cache, deletes enabled. Per-request logging is off (log level warn,
# access log disabled) so the peer is not slowed down by writing its logs.
write_dist_config() {
  cat >"$1" <<EOF
version: 0.1
log:
  level: ${DIST_LOG_LEVEL:-warn}
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $3
  delete:
    enabled: true
  cache:
    blobdescriptor: inmemory
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:$2
EOF
}

# start_server SIDE KIND WORKDIR [BERTH_ARGS...]   (KIND: distribution | berth)
# BERTH_ARGS go after `berth serve --listen ... --data-dir ...` (e.g. --allow-anonymous).
start_server() {
  local side=$1 kind=$2 work=$3 port data logf pid
  shift 3
  port=$(free_port)
  data="$work/data-$side"
  logf="$LOG_DIR/server-$side.log"
  mkdir -p "$data"
  case $kind in
    distribution)
      write_dist_config "$work/$side-config.yml" "$port" "$data"
      cp "$work/$side-config.yml" "$LOG_DIR/"
      "$DISTRIBUTION" serve "$work/$side-config.yml" >"$logf" 2>&1 &
      pid=$!
      ;;
    berth)
      "$BERTH" serve --listen "127.0.0.1:$port" --data-dir "$data" "$@" >"$logf" 2>&1 &
      pid=$!
      ;;
    *) die "unknown server kind $kind" ;;
  esac
  SRV_PID[$side]=$pid SRV_PORT[$side]=$port SRV_URL[$side]="http://127.0.0.1:$port"
  SRV_DATA[$side]=$data SRV_LOG[$side]=$logf SRV_KIND[$side]=$kind
  log "started $side ($kind) pid $pid on 127.0.0.1:$port, data $data, log $logf"
  wait_ready "$side"
}

# Distribution has no /readyz; its readiness signal is GET /v2/ -> 200.
# Fails (after printing the server's last log lines) if the server exits or is not ready in 30 s.
wait_ready() {
  local side=$1 path=/readyz i code
  [ "${SRV_KIND[$side]}" = distribution ] && path=/v2/
  for ((i = 0; i < 300; i++)); do
    if ! server_alive "$side"; then
      tail -n 20 "${SRV_LOG[$side]}" >&2 || true
      log "$side server exited during startup (log: ${SRV_LOG[$side]})"
      return 1
    fi
    code=$(curl -s -o /dev/null -m 2 -w '%{http_code}' "${SRV_URL[$side]}$path" || true)
    [ "$code" = 200 ] && return 0
    sleep 0.1
  done
  tail -n 20 "${SRV_LOG[$side]}" >&2 || true
  log "$side not ready after 30 s (GET $path -> $code; log: ${SRV_LOG[$side]})"
  return 1
}

stop_server() {
  stop_bg "${SRV_PID[$1]:-}"
  SRV_PID[$1]=
}

server_alive() { [ -n "${SRV_PID[$1]:-}" ] && running_child "${SRV_PID[$1]}"; }

# ini_value KEY FILE: the value of the first `KEY = value` line (the value may contain '=').
ini_value() {
  awk -v k="$1" '{ sub(/\r$/, "") } $0 ~ "^[ \t]*" k "[ \t]*=" { sub(/^[^=]*=[ \t]*/, ""); sub(/[ \t]+$/, ""); print; exit }' "$2"
}

# load_admin_creds SIDE: read the access key Berth wrote on first start to
# <data dir>/admin-credentials (AWS shared-credentials format) into SRV_CREDS[SIDE], and
# write SRV_CURLRC[SIDE]. From then on every request to SIDE carries it as HTTP Basic.
load_admin_creds() {
  local side=$1 f="${SRV_DATA[$1]}/admin-credentials" id secret i
  for ((i = 0; i < 50; i++)); do [ -s "$f" ] && break; sleep 0.1; done
  [ -s "$f" ] || { log "$side: no $f after start"; return 1; }
  id=$(ini_value aws_access_key_id "$f")
  secret=$(ini_value aws_secret_access_key "$f")
  [ -n "$id" ] && [ -n "$secret" ] || { log "$side: $f has no aws_access_key_id / aws_secret_access_key"; return 1; }
  SRV_CREDS[$side]="$id:$secret"
  SRV_CURLRC[$side]="${SRV_DATA[$side]}.curlrc"
  (umask 077; printf 'user = "%s"\n' "$(sed 's/[\\"]/\\&/g' <<<"$id:$secret")" >"${SRV_CURLRC[$side]}")
  log "$side: requests carry the admin access key $id (HTTP Basic) from $f"
}

# basic_auth SIDE: the Authorization header value for SIDE, or nothing if it is anonymous.
basic_auth() { [ -z "${SRV_CREDS[$1]:-}" ] || printf 'Basic %s' "$(printf '%s' "${SRV_CREDS[$1]}" | base64 -w0)"; }

# scurl SIDE CURL_ARGS...: curl with SIDE's credentials (if it has any).
scurl() {
  local side=$1
  shift
  if [ -n "${SRV_CURLRC[$side]:-}" ]; then curl -K "${SRV_CURLRC[$side]}" "$@"; else curl "$@"; fi
}

# ---------------------------------------------------------------------------
# OCI pushes over plain HTTP with curl (distribution-spec "POST then PUT" monolithic upload).

sha256_file() { openssl dgst -sha256 -r "$1" | cut -d' ' -f1; }

# header NAME FILE: value of the last NAME header in a curl -D dump (case-insensitive).
header() { tr -d '\r' <"$2" | awk -v h="$(tr '[:upper:]' '[:lower:]' <<<"$1")" -F': ' 'tolower($1) == h {v=$2} END {print v}'; }

# start_upload SIDE REPO -> prints the absolute upload URL (Location of the 202).
start_upload() {
  local side=$1 base=${SRV_URL[$1]} repo=$2 hdr code loc
  hdr=$(mktemp)
  code=$(scurl "$side" -sS -o /dev/null -D "$hdr" -w '%{http_code}' -X POST "$base/v2/$repo/blobs/uploads/") || code=000
  loc=$(header Location "$hdr"); rm -f "$hdr"
  if [ "$code" != 202 ] || [ -z "$loc" ]; then
    log "POST $base/v2/$repo/blobs/uploads/ -> $code (Location: '$loc')"; return 1
  fi
  case $loc in /*) loc="$base$loc" ;; esac
  printf '%s\n' "$loc"
}

# with_digest URL DIGEST -> URL with ?digest= or &digest= appended.
with_digest() { case $1 in *\?*) printf '%s&digest=%s\n' "$1" "$2" ;; *) printf '%s?digest=%s\n' "$1" "$2" ;; esac; }

# push_blob SIDE REPO FILE DIGEST
push_blob() {
  local url code
  url=$(start_upload "$1" "$2") || return 1
  code=$(scurl "$1" -sS -o /dev/null -w '%{http_code}' -H 'Expect:' -H 'Content-Type: application/octet-stream' \
    -T "$3" "$(with_digest "$url" "$4")") || code=000
  [ "$code" = 201 ] || { log "PUT blob $4 to ${SRV_URL[$1]}/v2/$2 -> $code"; return 1; }
}

# push_manifest SIDE REPO REF FILE MEDIATYPE
push_manifest() {
  local code
  code=$(scurl "$1" -sS -o /dev/null -w '%{http_code}' -X PUT -H "Content-Type: $5" \
    --data-binary "@$4" "${SRV_URL[$1]}/v2/$2/manifests/$3") || code=000
  [ "$code" = 201 ] || { log "PUT manifest $2:$3 to ${SRV_URL[$1]} -> $code"; return 1; }
}

ACCEPT_MANIFESTS='application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json'
