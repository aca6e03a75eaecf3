#!/usr/bin/env python3
"""Issue 8's CPU criterion, with the push path isolated: server CPU of N manifest PUTs
with 0 event rules vs 1 rule matching every push (webhook target), and separately the
CPU of the background work those pushes cause.

Per configuration, on a fresh data directory:

1. `berth serve --run-jobs false`: the API-only process. Push one small image's blobs,
   then PUT its manifest under N new tags (each PUT creates a tag: one PUSH event each;
   its `event.fanout` job is enqueued in the PUT's transaction). The server's CPU time
   (utime + stime from /proc/PID/stat) over the N PUTs is the push path's cost, with no
   job running beside it. SIGTERM.
2. `berth serve` (jobs on) on the same data: the queued fan-outs run, and with the rule
   every delivery (a signed POST to a receiver in this script, whose CPU is not counted).
   Its CPU from start until every job is finished, minus the CPU the same binary spent
   starting in step 1 (up to ready), is the background cost.

Prints both per PUT and the ratios 1 rule / 0 rules. Usage:
  bench/events_push_cpu.py BERTH_BINARY [N] [ROUNDS]   (default N = 2000, ROUNDS = 3;
  the median of the rounds is reported, alternating the two configurations)
"""
import hashlib
import http.client
import http.server
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cpu_probe import Hook, cpu_seconds, free_port  # noqa: E402

BIN = sys.argv[1]
N = int(sys.argv[2]) if len(sys.argv) > 2 else 2000
ROUNDS = int(sys.argv[3]) if len(sys.argv) > 3 else 3


def jobs_counts(data):
    out = subprocess.run([BIN, "admin", "--data-dir", data, "jobs", "stats"],
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out)["counts"]


def serve(data, cfg, run_jobs):
    port = free_port()
    srv = subprocess.Popen([BIN, "serve", "--listen", f"127.0.0.1:{port}", "--data-dir", data,
                            "--config", cfg, "--allow-anonymous", "--log-level", "warn",
                            "--run-jobs", "true" if run_jobs else "false"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(1200):
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            c.request("GET", "/readyz")
            if c.getresponse().status == 200:
                return srv, port
        except OSError:
            pass
        time.sleep(0.05)
    raise SystemExit("berth serve not ready")


def stop(srv):
    srv.send_signal(signal.SIGTERM)
    srv.wait(timeout=60)


def run(rule_endpoint):
    root = tempfile.mkdtemp(prefix="berth-bench-pushcpu-")
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
    try:
        # 1. The push path alone.
        srv, port = serve(data, cfg, run_jobs=False)
        start_cpu = cpu_seconds(srv.pid)
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
        before = cpu_seconds(srv.pid)
        for i in range(N):
            c.request("PUT", f"/v2/bench/app/manifests/t{i}", body=manifest,
                      headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"})
            r = c.getresponse(); r.read(); assert r.status == 201, r.status
        push_cpu = cpu_seconds(srv.pid) - before
        c.close()
        stop(srv)
        queued = jobs_counts(data).get("event.fanout", {})
        assert queued.get("queued", 0) == N, f"fan-outs queued by the API-only process: {queued}"
        # 2. The background work, run by a process with jobs on.
        srv, _ = serve(data, cfg, run_jobs=True)
        kind = "event.deliver" if rule_endpoint else "event.fanout"
        while jobs_counts(data).get(kind, {}).get("succeeded", 0) < N:
            time.sleep(0.2)
        background_cpu = cpu_seconds(srv.pid) - start_cpu
        stop(srv)
        return push_cpu, background_cpu
    finally:
        shutil.rmtree(root, ignore_errors=True)


hook = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hook)
threading.Thread(target=hook.serve_forever, daemon=True).start()
endpoint = f"http://127.0.0.1:{hook.server_address[1]}/hook"

results = {"0 rules": [], "1 rule": []}
for r in range(ROUNDS):
    for name, ep in (("0 rules", None), ("1 rule", endpoint)):
        push, bg = run(ep)
        results[name].append((push, bg))
        print(f"round {r + 1} {name}: push path {1000 * push / N:.3f} CPU-ms/PUT, "
              f"background {1000 * bg / N:.3f} CPU-ms/event", flush=True)
assert Hook.count >= N * ROUNDS, Hook.count

med = {k: (statistics.median(p for p, _ in v), statistics.median(b for _, b in v))
       for k, v in results.items()}
(p0, b0), (p1, b1) = med["0 rules"], med["1 rule"]
print(f"manifest PUTs per run: {N}, rounds: {ROUNDS} (medians)")
print(f"push path, 0 rules: {p0:.2f} CPU-s ({1000 * p0 / N:.3f} ms/PUT)")
print(f"push path, 1 rule:  {p1:.2f} CPU-s ({1000 * p1 / N:.3f} ms/PUT)")
print(f"push path ratio (1 rule / 0 rules): {p1 / p0:.3f}")
print(f"background, 0 rules (fan-out matching nothing): {1000 * b0 / N:.3f} CPU-ms/event")
print(f"background, 1 rule (fan-out + signed delivery): {1000 * b1 / N:.3f} CPU-ms/event")
print(f"all server CPU ratio (1 rule / 0 rules): {(p1 + b1) / (p0 + b0):.3f}")
