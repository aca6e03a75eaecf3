#!/usr/bin/env bash
# Issue 14's speed section: manifest GET by tag (authenticated) on
#   embedded   one node, SQLite + local disk (the default)
#   pg1        one node on PostgreSQL + S3 (SeaweedFS)
#   pg1-lb     the same node behind nginx (what the balancer itself costs)
#   pg3-lb     three nodes on PostgreSQL + S3 behind nginx, round robin per request
# and blob upload / download MB/s, local disk vs SeaweedFS, one node each.
# Everything runs on this machine, on 127.0.0.1: on a 2-core machine three nodes share the
# same two cores as PostgreSQL, SeaweedFS, nginx and wrk, so pg3-lb shows the cost of the
# distributed path, not the throughput of three machines.
#
# Usage (as root: PostgreSQL runs as the postgres user): bench/scale-out.sh
#   BERTH      the berth binary (default target/release/berth, built if missing)
#   LOAD_SECS  seconds per wrk run (default 10); CONNS wrk connections (default 32)
#   BLOB_MIB   size of the upload/download blob (default 256)
#   REPORT     append the results as a markdown section to this file (default: print only)
# Needs PostgreSQL 15 (/usr/lib/postgresql/15/bin), weed (.venv-clients, from
# .ci/install-clients), nginx, wrk, curl, python3. Uses ports picked free at start.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
B=${BERTH:-$ROOT/target/release/berth}
[ -x "$B" ] || (cd "$ROOT" && cargo build -q --release -p berth)
LOAD_SECS=${LOAD_SECS:-10}
CONNS=${CONNS:-32}
BLOB_MIB=${BLOB_MIB:-256}
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
WEED=${WEED:-$ROOT/.venv-clients/bin/weed}
NGINX=${NGINX:-/usr/sbin/nginx}
for t in wrk curl python3 "$NGINX" "$WEED" "$PGBIN/initdb"; do
  command -v "$t" >/dev/null || { echo "scale-out bench: $t missing" >&2; exit 2; }
done

W=$(mktemp -d /tmp/berth-scale-bench.XXXX); chmod 755 "$W"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
cleanup() {
  kill $(jobs -p) 2>/dev/null || true
  [ -f "$W/nginx.pid" ] && kill "$(cat "$W/nginx.pid")" 2>/dev/null || true
  runuser -u postgres -- "$PGBIN/pg_ctl" -D "$W/pg/data" -m immediate stop >/dev/null 2>&1 || true
  sleep 1; rm -rf "$W"
}
trap cleanup EXIT

# PostgreSQL and SeaweedFS on free ports.
PGPORT=$(free_port)
mkdir -p "$W/pg" && chown postgres "$W/pg"
runuser -u postgres -- "$PGBIN/initdb" -D "$W/pg/data" -A trust -U postgres >/dev/null
runuser -u postgres -- "$PGBIN/pg_ctl" -D "$W/pg/data" -l "$W/pg/log" \
  -o "-p $PGPORT -k $W/pg -c listen_addresses=127.0.0.1 -c max_connections=200" -w start >/dev/null
psql -h 127.0.0.1 -p "$PGPORT" -U postgres -qc 'CREATE DATABASE berth'
S3PORT=$(free_port)
"$WEED" mini -dir="$W/sw" -s3.port="$S3PORT" -master.port="$(free_port)" -volume.port="$(free_port)" \
  -filer.port="$(free_port)" -admin.port="$(free_port)" > "$W/weed.log" 2>&1 &
export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench AWS_REGION=us-east-1
for _ in $(seq 120); do
  "$ROOT/.venv-clients/bin/aws" --endpoint-url "http://127.0.0.1:$S3PORT" s3 mb s3://berth-bench >/dev/null 2>&1 && break
  sleep 1
done

ready() { for _ in $(seq 120); do curl -sf "http://127.0.0.1:$1/readyz" >/dev/null && return 0; sleep 0.5; done; echo "node on $1 not ready" >&2; exit 1; }
EMB=$(free_port); N1=$(free_port); N2=$(free_port); N3=$(free_port)
"$B" serve --listen 127.0.0.1:$EMB --data-dir "$W/emb" > "$W/emb.log" 2>&1 &
BERTH_PIDS="$!"
shared="--metadata postgres://postgres@127.0.0.1:$PGPORT/berth --storage s3://berth-bench/reg --storage-s3-endpoint http://127.0.0.1:$S3PORT --master-key-file $W/master.key"
"$B" serve --listen 127.0.0.1:$N1 --data-dir "$W/n1" $shared > "$W/n1.log" 2>&1 &
BERTH_PIDS+=" $!"
ready $EMB; ready $N1
"$B" serve --listen 127.0.0.1:$N2 --data-dir "$W/n2" $shared > "$W/n2.log" 2>&1 &
BERTH_PIDS+=" $!"
"$B" serve --listen 127.0.0.1:$N3 --data-dir "$W/n3" $shared > "$W/n3.log" 2>&1 &
BERTH_PIDS+=" $!"
ready $N2; ready $N3

# nginx: one balancer over the three nodes, one in front of node 1 alone.
LB3=$(free_port); LB1=$(free_port)
mkdir -p "$W/nginx/logs" "$W/nginx/tmp"; chmod -R a+rwx "$W/nginx"
cat > "$W/nginx.conf" <<EOF
worker_processes 1;
pid $W/nginx.pid;
error_log $W/nginx/logs/error.log;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $W/nginx/tmp;
  proxy_temp_path $W/nginx/tmp;
  upstream three { server 127.0.0.1:$N1; server 127.0.0.1:$N2; server 127.0.0.1:$N3; keepalive 64; }
  upstream one { server 127.0.0.1:$N1; keepalive 64; }
  server { listen 127.0.0.1:$LB3; client_max_body_size 0;
    location / { proxy_pass http://three; proxy_http_version 1.1; proxy_set_header Connection "";
      proxy_set_header Host \$http_host; proxy_request_buffering off; proxy_buffering off; } }
  server { listen 127.0.0.1:$LB1; client_max_body_size 0;
    location / { proxy_pass http://one; proxy_http_version 1.1; proxy_set_header Connection "";
      proxy_set_header Host \$http_host; proxy_request_buffering off; proxy_buffering off; } }
}
EOF
"$NGINX" -p "$W/nginx" -c "$W/nginx.conf"

login() { AWS_SHARED_CREDENTIALS_FILE=$1/admin-credentials env -u AWS_ACCESS_KEY_ID -u AWS_SECRET_ACCESS_KEY "$B" login --registry "http://127.0.0.1:$2"; }
EMB_AUTH="Basic $(printf 'AWS:%s' "$(login "$W/emb" $EMB)" | base64 -w0)"
PG_AUTH="Basic $(printf 'AWS:%s' "$(login "$W/n1" $N1)" | base64 -w0)"

# One small image per backend pair (config + one layer + manifest), pushed over HTTP.
push_image() { # port auth repo
  python3 - "$1" "$2" "$3" <<'PY'
import hashlib, json, sys, urllib.request
port, auth, repo = sys.argv[1:]
base = f"http://127.0.0.1:{port}"
def req(method, path, body=None, ctype=None):
    r = urllib.request.Request(base + path, data=body, method=method)
    r.add_header("Authorization", auth)
    if ctype: r.add_header("Content-Type", ctype)
    return urllib.request.urlopen(r)
def blob(data):
    d = "sha256:" + hashlib.sha256(data).hexdigest()
    req("POST", f"/v2/{repo}/blobs/uploads/?digest={d}", data, "application/octet-stream")
    return d
cfg = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}}).encode()
layer = bytes(range(256)) * 64
m = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
     "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": blob(cfg), "size": len(cfg)},
     "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": blob(layer), "size": len(layer)}]}
req("PUT", f"/v2/{repo}/manifests/v1", json.dumps(m).encode(), "application/vnd.oci.image.manifest.v1+json")
PY
}
push_image $EMB "$EMB_AUTH" bench/app
push_image $N1 "$PG_AUTH" bench/app

ACCEPT="application/vnd.oci.image.manifest.v1+json"
# CPU seconds used so far by this benchmark's processes, by kind: berth (the four
# `berth serve` PIDs), postgres (its postmaster and every backend it forked), nginx
# (master and workers), from /proc/<pid>/stat utime + stime. Other processes on the
# machine are not counted.
cpu() {
  python3 - "$BERTH_PIDS" "$(head -1 "$W/pg/data/postmaster.pid")" "$(cat "$W/nginx.pid")" <<'PY'
import os, sys
tick = os.sysconf("SC_CLK_TCK")
berth = set(sys.argv[1].split()); roots = {"postgres": sys.argv[2], "nginx": sys.argv[3]}
stats = {}
for pid in filter(str.isdigit, os.listdir("/proc")):
    try:
        st = open(f"/proc/{pid}/stat").read()
    except OSError:
        continue
    f = st[st.rindex(")") + 2:].split()
    stats[pid] = (f[1], (int(f[11]) + int(f[12])) / tick)  # ppid, cpu seconds
out = {"berth": sum(stats[p][1] for p in berth if p in stats)}
for k, root in roots.items():
    out[k] = sum(c for p, (pp, c) in stats.items() if p == root or pp == root)
print(" ".join(f"{k}={v:.2f}" for k, v in out.items()))
PY
}
CPU_NOTES=""
rate() { # port auth label -> requests/s; appends CPU per 1000 requests by component to CPU_NOTES
  local out before after r
  before=$(cpu)
  out=$(wrk -t2 -c"$CONNS" -d"${LOAD_SECS}s" -H "Authorization: $2" -H "Accept: $ACCEPT" \
    "http://127.0.0.1:$1/v2/bench/app/manifests/v1")
  after=$(cpu)
  if echo "$out" | grep -q "Non-2xx"; then echo "wrk on port $1 got errors: $out" >&2; exit 1; fi
  r=$(echo "$out" | awk '/Requests\/sec/ {printf "%.0f", $2}')
  CPU_NOTES+="| $3 | $(python3 - "$before" "$after" "$r" "$LOAD_SECS" <<'PY'
import sys
b = dict(x.split("=") for x in sys.argv[1].split()); a = dict(x.split("=") for x in sys.argv[2].split())
n = float(sys.argv[3]) * float(sys.argv[4]) / 1000
print(" | ".join(f"{(float(a[k]) - float(b[k])) / n * 1000:.0f}" for k in ("berth", "postgres", "nginx")))
PY
) |
"
  echo "$r"
}
# Idle cost first: four berth processes (1 embedded + 3 on PostgreSQL) and their
# databases, no requests, 10 s.
idle_before=$(cpu); sleep 10; idle_after=$(cpu)
IDLE=$(python3 - "$idle_before" "$idle_after" <<'PY'
import sys
b = dict(x.split("=") for x in sys.argv[1].split()); a = dict(x.split("=") for x in sys.argv[2].split())
print(", ".join(f"{k} {(float(a[k]) - float(b[k])) * 100:.1f}%" for k in ("berth", "postgres")))
PY
)
# (rate runs in this shell, not a subshell, so CPU_NOTES keeps its rows)
rate $EMB "$EMB_AUTH" "embedded, 1 node" > "$W/r"; r_emb=$(cat "$W/r")
rate $N1 "$PG_AUTH" "PostgreSQL + S3, 1 node" > "$W/r"; r_pg1=$(cat "$W/r")
rate $LB1 "$PG_AUTH" "PostgreSQL + S3, 1 node behind nginx" > "$W/r"; r_pg1lb=$(cat "$W/r")
rate $LB3 "$PG_AUTH" "PostgreSQL + S3, 3 nodes behind nginx" > "$W/r"; r_pg3lb=$(cat "$W/r")

# Upload (one monolithic POST ?digest=, durable before the 201) and download MB/s.
BLOB="$W/blob"
head -c $((BLOB_MIB * 1024 * 1024)) /dev/urandom > "$BLOB"
DIGEST="sha256:$(sha256sum "$BLOB" | cut -d' ' -f1)"
mbps() { python3 -c "import sys; print(f'{$BLOB_MIB / float(sys.argv[1]):.0f}')" "$1"; }
transfer() { # port auth repo -> "upload_MBps download_MBps"
  local up down
  up=$(curl -sS -o /dev/null -w '%{time_total}' -X POST -H "Authorization: $2" \
    -H 'Content-Type: application/octet-stream' --data-binary "@$BLOB" \
    "http://127.0.0.1:$1/v2/$3/blobs/uploads/?digest=$DIGEST")
  down=$(curl -sS -o /dev/null -w '%{time_total}' -H "Authorization: $2" \
    "http://127.0.0.1:$1/v2/$3/blobs/$DIGEST")
  echo "$(mbps "$up") $(mbps "$down")"
}
read -r up_emb down_emb < <(transfer $EMB "$EMB_AUTH" bench/big)
read -r up_s3 down_s3 < <(transfer $N1 "$PG_AUTH" bench/big)

ratio() { python3 -c "import sys; a,b=map(float,sys.argv[1:]); print(f'{a/b:.2f}')" "$1" "$2"; }
report=$(cat <<EOF
## 7. Scale-out: PostgreSQL + S3, three nodes (issue 14)

\`bench/scale-out.sh\` ($(date -u +%F), $(nproc) cores, $(basename "$B") at $(cd "$ROOT" && git rev-parse --short HEAD);
wrk -t2 -c$CONNS for ${LOAD_SECS} s per row, manifest GET by tag as the administrator with a
\`berth login\` token; PostgreSQL $("$PGBIN/postgres" --version | awk '{print $3}'), SeaweedFS \`weed mini\`, nginx
round robin per request with keep-alive to the nodes; everything on this one machine).

| manifest GET by tag | requests/s | vs embedded |
| --- | ---: | ---: |
| embedded (SQLite + disk), 1 node | $r_emb | 1.00× |
| PostgreSQL + S3, 1 node | $r_pg1 | $(ratio "$r_pg1" "$r_emb")× |
| PostgreSQL + S3, 1 node behind nginx | $r_pg1lb | $(ratio "$r_pg1lb" "$r_emb")× |
| PostgreSQL + S3, 3 nodes behind nginx | $r_pg3lb | $(ratio "$r_pg3lb" "$r_emb")× |

3 nodes vs 1 node behind the same nginx: $(ratio "$r_pg3lb" "$r_pg1lb")×.

Idle (no requests, 10 s; the 4 berth processes together, one CPU = 100%): $IDLE.

CPU milliseconds per 1000 requests, by process kind, over the same runs (PostgreSQL
backends that exit during a run take their CPU time with them, so its column can read
low; the machine's other processes are not counted but share its cores):

| setup | berth | postgres | nginx |
| --- | ---: | ---: | ---: |
$CPU_NOTES
| ${BLOB_MIB} MiB blob, one client (curl) | upload MB/s | download MB/s |
| --- | ---: | ---: |
| local disk (embedded) | $up_emb | $down_emb |
| SeaweedFS (S3) | $up_s3 | $down_s3 |
| S3 / disk | $(ratio "$up_s3" "$up_emb")× | $(ratio "$down_s3" "$down_emb")× |
EOF
)
echo "$report"
if [ -n "${REPORT:-}" ]; then printf '\n%s\n' "$report" >> "$REPORT"; fi
