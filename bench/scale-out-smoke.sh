#!/usr/bin/env bash
# Issue 14, by hand: the README's "Three nodes on PostgreSQL and SeaweedFS" steps (as root; needs
# PostgreSQL 15, weed from .ci/install-clients, skopeo, umoci), then skopeo push to node 2 and inspect on
# nodes 1 and 3, aws ecr describe-images on node 3, berth admin jobs stats on PostgreSQL. Ports 5001-5003,
# 5433, 8333 must be free.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
B=${BERTH:-$ROOT/target/debug/berth}
W=$(mktemp -d /tmp/smoke14.XXXX); chmod 755 $W
mkdir -p $W/pg && chown postgres $W/pg
runuser -u postgres -- /usr/lib/postgresql/15/bin/initdb -D $W/pg/data -A trust -U postgres >/dev/null
runuser -u postgres -- /usr/lib/postgresql/15/bin/pg_ctl -D $W/pg/data -l $W/pg/log -o "-p 5433 -k $W/pg -c listen_addresses=127.0.0.1" -w start >/dev/null
trap 'kill $(jobs -p) 2>/dev/null; runuser -u postgres -- /usr/lib/postgresql/15/bin/pg_ctl -D $W/pg/data -m immediate stop >/dev/null; sleep 1; rm -rf $W' EXIT
psql -h 127.0.0.1 -p 5433 -U postgres -qc 'CREATE DATABASE berth'
$ROOT/.venv-clients/bin/weed mini -dir=$W/sw -s3.port=8333 > $W/weed.log 2>&1 &
export AWS_ACCESS_KEY_ID=any AWS_SECRET_ACCESS_KEY=any AWS_REGION=us-east-1
for i in $(seq 60); do $ROOT/.venv-clients/bin/aws --endpoint-url http://127.0.0.1:8333 s3 mb s3://berth-blobs 2>/dev/null && break; sleep 1; done
shared="--metadata postgres://postgres@127.0.0.1:5433/berth --storage s3://berth-blobs/reg --storage-s3-endpoint http://127.0.0.1:8333 --master-key-file $W/master.key"
$B serve --listen 127.0.0.1:5001 --data-dir $W/node1 $shared > $W/n1.log 2>&1 &
for i in $(seq 60); do curl -sf http://127.0.0.1:5001/readyz >/dev/null && break; sleep 1; done
$B serve --listen 127.0.0.1:5002 --data-dir $W/node2 $shared > $W/n2.log 2>&1 &
$B serve --listen 127.0.0.1:5003 --data-dir $W/node3 $shared > $W/n3.log 2>&1 &
for p in 5002 5003; do for i in $(seq 60); do curl -sf http://127.0.0.1:$p/readyz >/dev/null && break; sleep 1; done; done
PW=$(AWS_SHARED_CREDENTIALS_FILE=$W/node1/admin-credentials env -u AWS_ACCESS_KEY_ID -u AWS_SECRET_ACCESS_KEY $B login --registry http://127.0.0.1:5001)
# push via node2, inspect via node3 and node1
L=$W/layout; mkdir -p $L/rootfs; echo hi > $L/rootfs/hello
umoci init --layout $L/img >/dev/null && umoci new --image $L/img:v1 >/dev/null && umoci insert --image $L/img:v1 $L/rootfs/hello /hello >/dev/null
skopeo --insecure-policy copy --dest-tls-verify=false --dest-creds "AWS:$PW" oci:$L/img:v1 docker://127.0.0.1:5002/smoke/app:v1
for p in 5001 5003; do echo "node $p: $(skopeo inspect --tls-verify=false --creds "AWS:$PW" --format '{{.Digest}}' docker://127.0.0.1:$p/smoke/app:v1)"; done
AWS_SHARED_CREDENTIALS_FILE=$W/node1/admin-credentials env -u AWS_ACCESS_KEY_ID -u AWS_SECRET_ACCESS_KEY $ROOT/.venv-clients/bin/aws --region us-east-1 --endpoint-url http://127.0.0.1:5003 ecr describe-images --repository-name smoke/app --query 'imageDetails[0].imageTags'
$B admin --data-dir $W/node1 --metadata postgres://postgres@127.0.0.1:5433/berth --master-key-file $W/master.key jobs stats
echo SMOKE OK
