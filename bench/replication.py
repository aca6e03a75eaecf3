#!/usr/bin/env python3
"""Replication lag and bytes (issue 9), on loopback.

Starts two `berth serve` processes (us-east-1, the source, and eu-west-1, its only
destination, one account), puts a replication rule for `bench/` with boto3, then pushes
N small images one after another through the OCI API (a config, one layer of its own and
one base layer all images share). For each image it measures the time from the manifest
PUT's 201 to DescribeImageReplicationStatus saying COMPLETE (polled every 5 ms), and at
the end reads the `replication.image` jobs' results (`berth admin jobs list`) to count
the blobs and bytes sent to the destination against the bytes of the distinct blobs.

Usage: bench/replication.py [BERTH_BINARY] [N]   (defaults target/release/berth, 50)
Needs boto3 (.venv-clients/bin/python3).
"""

import hashlib
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

import boto3
from botocore.config import Config

BIN = sys.argv[1] if len(sys.argv) > 1 else "target/release/berth"
N = int(sys.argv[2]) if len(sys.argv) > 2 else 50
ACCOUNT = "111111111111"


def start(tmp, name, region, extra):
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]
    data = os.path.join(tmp, name)
    log = open(os.path.join(tmp, f"{name}.log"), "w")
    p = subprocess.Popen(
        [BIN, "serve", "--listen", f"127.0.0.1:{port}", "--data-dir", data,
         "--region", region, "--account-id", ACCOUNT, *extra],
        stdout=log, stderr=log)
    for _ in range(600):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1)
            return p, port, data
        except Exception:
            time.sleep(0.05)
    raise SystemExit(f"{name} did not start")


def creds(data):
    kv = {}
    for line in open(os.path.join(data, "admin-credentials")):
        if "=" in line:
            k, v = line.split("=", 1)
            kv[k.strip()] = v.strip()
    return kv["aws_access_key_id"], kv["aws_secret_access_key"]


def sha(b):
    return "sha256:" + hashlib.sha256(b).hexdigest()


def req(method, url, body=None, ctype=None):
    r = urllib.request.Request(url, data=body, method=method)
    if ctype:
        r.add_header("Content-Type", ctype)
    with urllib.request.urlopen(r) as resp:
        return resp.status


def main():
    tmp = tempfile.mkdtemp(prefix="berth-bench-repl-")
    procs = []
    try:
        dest, dport, ddata = start(tmp, "eu", "eu-west-1", [])
        procs.append(dest)
        kid, secret = creds(ddata)
        cfg = os.path.join(tmp, "berth.toml")
        with open(cfg, "w") as f:
            f.write(f'[[replication.peers]]\nregion = "eu-west-1"\nregistry_id = "{ACCOUNT}"\n'
                    f'endpoint = "http://127.0.0.1:{dport}"\naccess_key_id = "{kid}"\n'
                    f'secret_access_key = "{secret}"\n')
        src, sport, sdata = start(tmp, "us", "us-east-1", ["--allow-anonymous", "--config", cfg])
        procs.append(src)
        skid, ssecret = creds(sdata)
        ecr = boto3.client(
            "ecr", endpoint_url=f"http://127.0.0.1:{sport}", region_name="us-east-1",
            aws_access_key_id=skid, aws_secret_access_key=ssecret,
            config=Config(retries={"max_attempts": 1}))
        ecr.put_replication_configuration(replicationConfiguration={"rules": [{
            "destinations": [{"region": "eu-west-1", "registryId": ACCOUNT}],
            "repositoryFilters": [{"filter": "bench/", "filterType": "PREFIX_MATCH"}]}]})
        base = os.urandom(256 * 1024)
        distinct = {sha(base): len(base)}
        lags = []
        for i in range(N):
            repo = f"bench/app{i % 5}"
            config = json.dumps({"architecture": "amd64", "os": "linux", "n": i}).encode()
            layer = os.urandom(16 * 1024)
            for b in (base, layer, config):
                distinct[sha(b)] = len(b)
                req("POST", f"http://127.0.0.1:{sport}/v2/{repo}/blobs/uploads/?digest={sha(b)}",
                    b, "application/octet-stream")
            manifest = json.dumps({
                "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                           "digest": sha(config), "size": len(config)},
                "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                            "digest": sha(b), "size": len(b)} for b in (base, layer)],
            }).encode()
            assert req("PUT", f"http://127.0.0.1:{sport}/v2/{repo}/manifests/v{i}", manifest,
                       "application/vnd.oci.image.manifest.v1+json") == 201
            t0 = time.monotonic()
            while True:
                s = ecr.describe_image_replication_status(
                    repositoryName=repo, imageId={"imageTag": f"v{i}"})["replicationStatuses"]
                if s and s[0]["status"] == "COMPLETE":
                    break
                if s and s[0]["status"] == "FAILED":
                    raise SystemExit(f"FAILED: {s}")
                time.sleep(0.005)
            lags.append(time.monotonic() - t0)
        jobs = json.loads(subprocess.check_output(
            [BIN, "admin", "--data-dir", sdata, "jobs", "list", "--kind", "replication.image",
             "--limit", "1000"]))
        sent = sum(j["result"]["bytes_sent"] for j in jobs if j.get("result"))
        blobs_sent = sum(j["result"]["blobs_sent"] for j in jobs if j.get("result"))
        present = sum(j["result"]["blobs_present"] for j in jobs if j.get("result"))
        mounted = sum(j["result"].get("blobs_mounted", 0) for j in jobs if j.get("result"))
        lags.sort()
        p = lambda q: lags[min(len(lags) - 1, int(q * len(lags)))] * 1000
        print(f"images: {N} (5 repositories, one 256 KiB base layer shared by all)")
        print(f"lag push 201 -> COMPLETE: p50 {p(0.50):.1f} ms, p99 {p(0.99):.1f} ms, "
              f"max {lags[-1] * 1000:.1f} ms, mean {statistics.mean(lags) * 1000:.1f} ms")
        print(f"blobs sent: {blobs_sent}, mounted from another repository: {mounted}, "
              f"already present (HEAD 200): {present}")
        print(f"bytes sent: {sent}; distinct blob bytes: {sum(distinct.values())}")
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait()


if __name__ == "__main__":
    main()
