#!/usr/bin/env bash
# Manual check of `berth admin migrate` (issue 14): embedded registry -> PostgreSQL + SeaweedFS.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
B=${BERTH:-$ROOT/target/debug/berth}; AWS=$ROOT/.venv-clients/bin/aws
W=$(mktemp -d /tmp/smokemig.XXXX); chmod 755 $W
mkdir -p $W/pg && chown postgres $W/pg
runuser -u postgres -- /usr/lib/postgresql/15/bin/initdb -D $W/pg/data -A trust -U postgres >/dev/null
runuser -u postgres -- /usr/lib/postgresql/15/bin/pg_ctl -D $W/pg/data -l $W/pg/log -o "-p 5434 -k $W/pg -c listen_addresses=127.0.0.1" -w start >/dev/null
trap 'kill $(jobs -p) 2>/dev/null; runuser -u postgres -- /usr/lib/postgresql/15/bin/pg_ctl -D $W/pg/data -m immediate stop >/dev/null; sleep 1; rm -rf $W' EXIT
psql -h 127.0.0.1 -p 5434 -U postgres -qc 'CREATE DATABASE berth'
$ROOT/.venv-clients/bin/weed mini -dir=$W/sw -s3.port=8334 -master.port=9334 -volume.port=8081 -filer.port=8889 -admin.port=23647 > $W/weed.log 2>&1 &
for i in $(seq 60); do AWS_ACCESS_KEY_ID=any AWS_SECRET_ACCESS_KEY=any $AWS --region us-east-1 --endpoint-url http://127.0.0.1:8334 s3 mb s3://mig 2>/dev/null && break; sleep 1; done
# 1. an embedded registry with one image
$B serve --listen 127.0.0.1:5011 --data-dir $W/emb > $W/emb.log 2>&1 & E=$!
for i in $(seq 60); do curl -sf http://127.0.0.1:5011/readyz >/dev/null && break; sleep 1; done
PW=$(AWS_SHARED_CREDENTIALS_FILE=$W/emb/admin-credentials $B login --registry http://127.0.0.1:5011)
L=$W/layout; mkdir -p $L/rootfs; head -c 3000000 /dev/urandom > $L/rootfs/data
umoci init --layout $L/img >/dev/null && umoci new --image $L/img:v1 >/dev/null && umoci insert --image $L/img:v1 $L/rootfs/data /data >/dev/null
skopeo --insecure-policy copy -q --dest-tls-verify=false --dest-creds "AWS:$PW" oci:$L/img:v1 docker://127.0.0.1:5011/mig/app:v1
D=$(skopeo inspect --tls-verify=false --creds "AWS:$PW" --format '{{.Digest}}' docker://127.0.0.1:5011/mig/app:v1)
# while serving, migrate is refused
if AWS_ACCESS_KEY_ID=any AWS_SECRET_ACCESS_KEY=any $B admin --data-dir $W/emb migrate --to postgres://postgres@127.0.0.1:5434/berth --storage s3://mig/r --storage-s3-endpoint http://127.0.0.1:8334 2>$W/refused; then echo "FAIL: migrate ran while serving"; exit 1; fi
echo "refused while serving: $(tail -1 $W/refused)"
kill $E; wait $E 2>/dev/null || true
# 2. migrate, twice (the second resumes: nothing to copy)
for r in 1 2; do AWS_ACCESS_KEY_ID=any AWS_SECRET_ACCESS_KEY=any $B admin --data-dir $W/emb migrate --to postgres://postgres@127.0.0.1:5434/berth --storage s3://mig/r --storage-s3-endpoint http://127.0.0.1:8334 | grep -E '"blobs"|verified'; done
# 3. a node on the copy, with the old master key and the old admin key
AWS_ACCESS_KEY_ID=any AWS_SECRET_ACCESS_KEY=any $B serve --listen 127.0.0.1:5012 --data-dir $W/node --metadata postgres://postgres@127.0.0.1:5434/berth --storage s3://mig/r --storage-s3-endpoint http://127.0.0.1:8334 --master-key-file $W/emb/master.key > $W/node.log 2>&1 &
for i in $(seq 60); do curl -sf http://127.0.0.1:5012/readyz >/dev/null && break; sleep 1; done
PW2=$(AWS_SHARED_CREDENTIALS_FILE=$W/emb/admin-credentials $B login --registry http://127.0.0.1:5012)
skopeo --insecure-policy copy -q --src-tls-verify=false --src-creds "AWS:$PW2" docker://127.0.0.1:5012/mig/app:v1 oci:$W/out:v1
D2=$(skopeo inspect --tls-verify=false --creds "AWS:$PW2" --format '{{.Digest}}' docker://127.0.0.1:5012/mig/app:v1)
[ "$D" = "$D2" ] && echo "digest after migrate: $D2 (same)" || { echo "FAIL digest $D vs $D2"; exit 1; }
echo MIGRATE SMOKE OK
