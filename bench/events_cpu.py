#!/usr/bin/env python3
"""Server CPU of manifest PUTs with 0 vs 1 matching event rule (issue 8: at most 10% more).

Starts `berth serve` twice on fresh data directories: once with no event rule, once with
one rule that matches every push, delivered to a local receiver (a Python HTTP server in
this process; its CPU is not counted). Each run pushes one small image's blobs, then PUTs
its manifest under N new tags (each PUT creates a tag, so each is a PUSH event), waits
until every event's background work is finished (fan-out, and with the rule every
delivery), and reads the berth process's CPU time (utime + stime from /proc) over the
PUTs and that background work. Prints CPU-ms per PUT for both and the ratio.

Usage: bench/events_cpu.py BERTH_BINARY [N]   (default N = 2000)
"""
import hashlib
import http.client
import http.server
import json
import os
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cpu_probe import Hook, cpu_seconds, free_port  # noqa: E402

BIN = sys.argv[1]
N = int(sys.argv[2]) if len(sys.argv) > 2 else 2000


def jobs_done(data, kind):
    out = subprocess.run([BIN, "admin", "--data-dir", data, "jobs", "stats"],
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out)["counts"].get(kind, {}).get("succeeded", 0)


def run(rule_endpoint):
    root = tempfile.mkdtemp(prefix="berth-bench-events-")
    data = os.path.join(root, "data")
    cfg = os.path.join(root, "berth.toml")
    with open(cfg, "w") as f:
        if rule_endpoint:
            f.write(f"""
[[events.rules]]
name = "pushes"
event_pattern = '{{"source": ["aws.ecr"], "detail": {{"action-type": ["PUSH"]}}}}'
[[events.rules.targets]]
id = "hook"
endpoint = "{rule_endpoint}"
""")
    port = free_port()
    srv = subprocess.Popen([BIN, "serve", "--listen", f"127.0.0.1:{port}", "--data-dir", data,
                            "--config", cfg, "--allow-anonymous", "--log-level", "warn"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(600):
            try:
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                c.request("GET", "/readyz")
                if c.getresponse().status == 200:
                    break
            except OSError:
                time.sleep(0.05)
        c = http.client.HTTPConnection("127.0.0.1", port)
        digests = []
        for blob in (b'{"bench":"config"}', b"bench layer"):
            d = "sha256:" + hashlib.sha256(blob).hexdigest()
            c.request("POST", f"/v2/bench/app/blobs/uploads/?digest={d}", body=blob,
                      headers={"Content-Type": "application/octet-stream"})
            r = c.getresponse(); r.read(); assert r.status == 201, r.status
            digests.append((d, len(blob)))
        manifest = json.dumps({
            "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       "digest": digests[0][0], "size": digests[0][1]},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                        "digest": digests[1][0], "size": digests[1][1]}]}).encode()
        time.sleep(1)
        before = cpu_seconds(srv.pid)
        t0 = time.time()
        for i in range(N):
            c.request("PUT", f"/v2/bench/app/manifests/t{i}", body=manifest,
                      headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"})
            r = c.getresponse(); r.read(); assert r.status == 201, r.status
        put_secs = time.time() - t0
        kind = "event.deliver" if rule_endpoint else "event.fanout"
        while jobs_done(data, kind) < N:
            time.sleep(0.2)
        # Let the last completions and the stats refresh settle, then read the CPU.
        cpu = cpu_seconds(srv.pid) - before
        return cpu, put_secs
    finally:
        srv.terminate()
        srv.wait()


hook = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hook)
threading.Thread(target=hook.serve_forever, daemon=True).start()
endpoint = f"http://127.0.0.1:{hook.server_address[1]}/hook"

none_cpu, none_secs = run(None)
one_cpu, one_secs = run(endpoint)
assert Hook.count >= N, Hook.count
print(f"manifest PUTs: {N}")
print(f"0 rules: {none_cpu:.2f} CPU-s ({1000 * none_cpu / N:.3f} ms/PUT), PUTs took {none_secs:.1f} s")
print(f"1 matching rule (+ {N} signed deliveries): {one_cpu:.2f} CPU-s "
      f"({1000 * one_cpu / N:.3f} ms/PUT), PUTs took {one_secs:.1f} s")
print(f"ratio (1 rule / 0 rules): {one_cpu / none_cpu:.2f}")
