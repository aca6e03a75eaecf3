#!/usr/bin/env python3
"""Online garbage collection over many blobs and manifests (issue 12), and its effect
on concurrent manifest GETs.

Starts its own `berth serve` (embedded SQLite + local blobs, anonymous access, scheduled
GC off) on a free loopback port, fills it through the OCI API with BLOBS blobs and
MANIFESTS image manifests (each manifest references BLOBS // MANIFESTS layers plus a
config), deletes DELETE_PCT percent of the manifests, then:

1. `wrk` GETs one manifest by tag for LOAD_SECS seconds with nothing else running
   (baseline rate);
2. the same `wrk` load while `berth admin gc --grace-secs 0` runs back to back for
   the whole window (the first run sweeps the deleted manifests' blobs, later ones
   re-mark and re-list everything), and prints the first collection's wall time and
   what it swept, and the later runs' times.

Prints one Markdown table row set for docs/benchmarks.md. Usage (see bench/gc.sh):
  BERTH=target/release/berth BLOBS=20000 MANIFESTS=4000 bench/gc.py
"""

import concurrent.futures
import hashlib
import http.client
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time

BERTH = os.environ.get("BERTH", "target/release/berth")
BLOBS = int(os.environ.get("BLOBS", "20000"))
MANIFESTS = int(os.environ.get("MANIFESTS", "4000"))
DELETE_PCT = int(os.environ.get("DELETE_PCT", "50"))
LOAD_SECS = int(os.environ.get("LOAD_SECS", "10"))
WORKERS = int(os.environ.get("WORKERS", "8"))
BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def sha(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


class Client:
    """One keep-alive HTTP connection per worker thread."""

    def __init__(self, port):
        self.port = port
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

    def request(self, method, path, body=None, headers=None):
        for attempt in range(3):
            try:
                self.conn.request(method, path, body=body, headers=headers or {})
                r = self.conn.getresponse()
                data = r.read()
                return r.status, data
            except (http.client.HTTPException, OSError):
                self.conn.close()
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
                if attempt == 2:
                    raise

    def blob(self, repo, data):
        status, body = self.request(
            "POST",
            f"/v2/{repo}/blobs/uploads/?digest={sha(data)}",
            data,
            {"Content-Type": "application/octet-stream"},
        )
        assert status == 201, (status, body)

    def manifest(self, repo, ref, body):
        status, resp = self.request(
            "PUT", f"/v2/{repo}/manifests/{ref}", body, {"Content-Type": OCI_MANIFEST}
        )
        assert status == 201, (status, resp)


def image(i, per):
    """Config + `per` layers of image i (small, distinct), and its manifest."""
    config = json.dumps({"bench": i}).encode()
    layers = [f"layer {i}/{k} ".encode() * 8 for k in range(per)]
    m = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": sha(config),
            "size": len(config),
        },
        "layers": [
            {"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": sha(l), "size": len(l)}
            for l in layers
        ],
    }
    return config, layers, json.dumps(m).encode()


def push_range(port, start, stop, per, delete):
    c = Client(port)
    for i in range(start, stop):
        repo = f"bench/r{i % 20}"
        config, layers, body = image(i, per)
        for b in [config] + layers:
            c.blob(repo, b)
        c.manifest(repo, f"v{i}", body)
        if delete(i):
            status, resp = c.request("DELETE", f"/v2/{repo}/manifests/{sha(body)}")
            assert status == 202, (status, resp)


def wrk(port, secs):
    out = subprocess.run(
        ["wrk", "-t2", "-c32", f"-d{secs}s", "-s", os.path.join(BENCH_DIR, "accept.lua"),
         f"http://127.0.0.1:{port}/v2/bench/r0/manifests/v0"],
        capture_output=True, text=True, check=True,
    ).stdout
    m = re.search(r"WRKSUMMARY requests=(\d+) duration_us=(\d+).*err_status=(\d+)", out)
    requests, us, errs = int(m.group(1)), int(m.group(2)), int(m.group(3))
    assert errs == 0, out
    return requests / (us / 1e6)


def main():
    per = max(1, BLOBS // MANIFESTS - 1)  # layers per image; + 1 config each
    tmp = tempfile.mkdtemp(prefix="berth-gc-bench-")
    data = os.path.join(tmp, "data")
    port = free_port()
    log = open(os.path.join(tmp, "server.log"), "w")
    server = subprocess.Popen(
        [BERTH, "serve", "--listen", f"127.0.0.1:{port}", "--data-dir", data,
         "--allow-anonymous", "--gc-enabled", "false", "--log-level", "warn"],
        stdout=log, stderr=log,
    )
    try:
        for _ in range(600):
            try:
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
                c.request("GET", "/readyz")
                if c.getresponse().status == 200:
                    break
            except OSError:
                pass
            time.sleep(0.05)
        delete = lambda i: i % 2 == 1 and (i * 100) // MANIFESTS < 2 * DELETE_PCT
        t0 = time.monotonic()
        step = (MANIFESTS + WORKERS - 1) // WORKERS
        with concurrent.futures.ThreadPoolExecutor(WORKERS) as pool:
            futs = [pool.submit(push_range, port, s, min(s + step, MANIFESTS), per, delete)
                    for s in range(0, MANIFESTS, step)]
            for f in futs:
                f.result()
        fill = time.monotonic() - t0
        blobs = MANIFESTS * (per + 1)
        deleted = sum(1 for i in range(MANIFESTS) if delete(i))
        print(f"filled: {blobs} blobs, {MANIFESTS} manifests ({deleted} deleted) in {fill:.1f}s",
              file=sys.stderr)

        base = wrk(port, LOAD_SECS)
        gc_cmd = [BERTH, "admin", "--data-dir", data, "gc", "--grace-secs", "0", "--json"]
        # The same load with collections running back to back for the whole window: the
        # first sweeps the deleted manifests' blobs, the later ones mark and list
        # everything again (the load a collection puts on the server).
        load = concurrent.futures.ThreadPoolExecutor(1).submit(wrk, port, LOAD_SECS)
        runs = []
        while not load.done():
            t0 = time.monotonic()
            out = subprocess.run(gc_cmd, capture_output=True, text=True, check=True).stdout
            runs.append((time.monotonic() - t0, json.loads(out)))
        during = load.result()
        first_wall, report = runs[0]
        print(json.dumps({
            "blobs": blobs, "manifests": MANIFESTS, "deleted_manifests": deleted,
            "gc_wall_secs": round(first_wall, 2), "gc_reported_secs": round(report["duration_secs"], 2),
            "swept_objects": report["blobs"] + report["strays"], "reclaimed_bytes": report["bytes"],
            "rescan_wall_secs": [round(w, 2) for w, _ in runs[1:]],
            "get_rate_without_gc": round(base), "get_rate_during_gc": round(during),
            "ratio": round(during / base, 3),
        }))
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
