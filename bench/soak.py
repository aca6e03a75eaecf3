#!/usr/bin/env python3
"""Issue 19's soak and crash test: mixed load against `berth serve` while it is killed
with SIGKILL at random intervals and restarted on the same data directory; afterwards
everything that was acknowledged is checked. Run through `bench/soak.sh`.

What it does (all on 127.0.0.1; nothing leaves the machine):

* starts `berth serve` on a free port with its own data directory (authentication on: the
  clients use the administrator's access key that Berth writes on first start), short job
  leases and fast event retries so that recovery after a crash is quick;
* runs a webhook receiver (Python's http.server) and points an EventBridge rule at it with
  boto3's `events` client (connection + API destination + rule + target, README
  "Configuring events rules"); every delivery's API key and `X-Berth-Signature` are checked;
* WORKERS threads, each owning two repositories, loop over: pushes over the OCI API (blob
  uploads monolithic, POST+PUT, chunked PATCH, cross-repository mount; one shared layer
  from a small pool plus one fresh layer per image; manifest PUT by tag), pushes with
  skopeo (`skopeo copy oci:<layout> docker://…`), pulls (manifest by digest and a blob,
  compared byte for byte), tag moves (OCI manifest PUT and ECR PutImage), deletes (OCI
  `DELETE /v2/<name>/manifests/<digest>` and ECR BatchDeleteImage), ECR DescribeImages
  and BatchGetImage through boto3;
* scans: a registry scanning rule (PutRegistryScanningConfiguration, SCAN_ON_PUSH for the
  `soak/w*-a` repositories) makes every push there a `scan.image` job, run under the load and
  the kills (layers are real gzip tars); after the final restart every acknowledged image
  of those repositories has a COMPLETE scan (never one left IN_PROGRESS, never none);
* a killer thread sends SIGKILL every KILL_MIN..KILL_MAX seconds and restarts the server;
* every acknowledged push (2xx for the manifest PUT / PutImage) and every acknowledged
  delete goes to `acks.jsonl` with its digest and content (manifest bytes, each blob's
  digest, size and the seed that regenerates its bytes).

After SECONDS: load stops, the server is killed once more and restarted, and the checks run
(see `verify`); a report is printed; the exit status is 1 on any loss or violation.
"""
import argparse
import base64
import ctypes
import gzip
import hashlib
import hmac
import http.client
import http.server
import io
import json
import os
import random
import signal
import sqlite3
import socket
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import traceback

import boto3
import botocore.config

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
API_KEY = "soak-api-key-value"
SHARED_LAYERS = 6


def log(msg):
    print(f"[soak {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def sha256(b):
    return "sha256:" + hashlib.sha256(b).hexdigest()


def layer_bytes(layer):
    """The bytes of a layer, regenerated from its record's seed and payload size (so
    content need not be stored): a gzip-compressed tar (the OCI layer media type it is
    pushed as) with a Debian `etc/os-release` and one file of `payload` random bytes, built
    deterministically (fixed times and owners, gzip mtime 0) so scans read a real layer."""
    payload = random.Random(layer["seed"]).randbytes(layer["payload"])
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        for name, data in (("etc/os-release", b"ID=debian\nVERSION_ID=\"12\"\n"),
                           (f"soak/{layer['seed']}", payload)):
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), 0, 0o644
            t.addfile(info, io.BytesIO(data))
    return gzip.compress(buf.getvalue(), mtime=0)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def die_with_parent():
    # PR_SET_PDEATHSIG = 1: the server gets SIGKILL if this driver dies, however it dies.
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def fd_count(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


class Interrupted(Exception):
    """The request failed because the server was killed while it ran (expected)."""


class Unexpected(Exception):
    """The request failed while the server was up: a violation."""


# --------------------------------------------------------------------------------------
# The server under test.
# --------------------------------------------------------------------------------------
class Server:
    def __init__(self, args, work):
        self.bin = args.berth
        self.data = os.path.join(work, "data")
        self.log_path = os.path.join(work, "server.log")
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        self.args = ["--job-lease-secs", "5", "--event-retry-initial-ms", "200",
                     "--event-retry-max-secs", "2", "--upload-expiry-secs",
                     str(args.upload_expiry), "--log-level", "warn"]
        self.proc = None
        self.incarnation = 0
        self.up = threading.Event()
        self.lock = threading.Lock()
        self.crashes = 0
        self.restart_secs = []
        self.loaded_samples = []  # (rss KiB, fds) of each incarnation just before its kill
        self.sessions_at_kills = 0

    def start(self):
        t0 = time.time()
        logf = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [self.bin, "serve", "--listen", self.host, "--data-dir", self.data] + self.args,
            stdin=subprocess.DEVNULL, stdout=logf, stderr=logf, preexec_fn=die_with_parent)
        logf.close()
        while True:
            if self.proc.poll() is not None:
                raise SystemExit(f"berth serve exited with {self.proc.returncode} at start; "
                                 f"see {self.log_path}")
            try:
                c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                c.request("GET", "/readyz")
                if c.getresponse().status == 200:
                    break
            except OSError:
                pass
            if time.time() - t0 > 60:
                raise SystemExit(f"berth serve not ready after 60 s; see {self.log_path}")
            time.sleep(0.05)
        self.restart_secs.append(time.time() - t0)
        self.up.set()

    def kill9(self):
        """SIGKILL: the incarnation changes before the signal, so every request that fails
        because of it sees the change."""
        with self.lock:
            self.up.clear()
            self.incarnation += 1
            try:
                self.loaded_samples.append((rss_kib(self.proc.pid), fd_count(self.proc.pid)))
            except OSError:
                pass
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
            self.crashes += 1
            # Upload sessions on disk at the instant of the crash (cut uploads among them).
            self.sessions_at_kills += len(os.listdir(os.path.join(self.data, "uploads")))

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.up.clear()
            self.incarnation += 1
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                return None
        return self.proc.returncode if self.proc else None

    def admin(self, *args):
        out = subprocess.run([self.bin, "admin", "--data-dir", self.data] + list(args),
                             capture_output=True, text=True)
        if out.returncode != 0:
            raise RuntimeError(f"berth admin {' '.join(args)}: {out.stderr}")
        return out.stdout


# --------------------------------------------------------------------------------------
# The webhook receiver.
# --------------------------------------------------------------------------------------
class Receiver:
    def __init__(self):
        self.lock = threading.Lock()
        self.by_id = {}  # event id -> body bytes (first seen)
        self.deliveries = 0
        self.problems = []
        self.secret = None
        recv = self

        class Hook(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                recv.record(self.headers, body)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *a):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hook)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def record(self, headers, body):
        problem = None
        if headers.get("x-api-key") != API_KEY:
            problem = "delivery without the connection's API key header"
        sig = headers.get("X-Berth-Signature", "")
        if self.secret is not None:
            fields = dict(kv.split("=", 1) for kv in sig.split(",") if "=" in kv)
            mac = hmac.new(self.secret.encode(), fields.get("t", "").encode() + b"." + body,
                           hashlib.sha256).hexdigest()
            if not hmac.compare_digest(mac, fields.get("v1", "")):
                problem = f"bad X-Berth-Signature {sig!r}"
        try:
            ev = json.loads(body)
            eid = ev["id"]
        except (ValueError, KeyError):
            problem, eid = f"delivery body is not an event: {body[:200]!r}", None
        with self.lock:
            self.deliveries += 1
            if problem:
                self.problems.append(problem)
            if eid is None:
                return
            first = self.by_id.setdefault(eid, body)
            if first != body:
                self.problems.append(f"event {eid} delivered twice with different bodies")

    def events(self):
        with self.lock:
            return {eid: json.loads(b) for eid, b in self.by_id.items()}


# --------------------------------------------------------------------------------------
# What was acknowledged: the model the checks compare against.
# --------------------------------------------------------------------------------------
class Model:
    """Per repository (each owned by one worker, so no two requests race on it):
    `images`: digest -> record of an acknowledged push ("present"), `maybe_deleted`: digests
    whose delete was attempted but not acknowledged, `deleted`: acknowledged deletes,
    `tags`: tag -> set of digests it may point to (one after an acknowledged push; more
    after attempts whose outcome is unknown)."""

    def __init__(self, path):
        self.lock = threading.Lock()
        self.f = open(path, "a")
        self.images = {}
        self.maybe_deleted = {}
        self.deleted = {}
        self.tags = {}
        self.expected_events = []  # (repo, tag, digest) of acknowledged pushes that changed a tag
        self.counts = {"pushes_acked": 0, "deletes_acked": 0, "tag_moves_acked": 0}

    def repo(self, name):
        with self.lock:
            self.images.setdefault(name, {})
            self.maybe_deleted.setdefault(name, set())
            self.deleted.setdefault(name, set())
            self.tags.setdefault(name, {})

    def write(self, rec):
        self.f.write(json.dumps(rec) + "\n")
        self.f.flush()

    def attempt_tag(self, repo, tag, digest):
        """Before a manifest PUT by tag: returns whether an acknowledgement must cause an
        event (the tag cannot already point at `digest`)."""
        with self.lock:
            possible = self.tags[repo].setdefault(tag, {None})
            expect = digest not in possible
            possible.add(digest)
            return expect

    def acked_push(self, repo, tag, rec, expect_event, kind):
        with self.lock:
            self.images[repo][rec["digest"]] = rec
            self.tags[repo][tag] = {rec["digest"]}
            if expect_event:
                self.expected_events.append((repo, tag, rec["digest"]))
            self.counts["pushes_acked" if kind == "push" else "tag_moves_acked"] += 1
            self.write({"op": kind, "repo": repo, "tag": tag, "t": time.time(), **rec})

    def attempt_delete(self, repo, digest):
        with self.lock:
            self.images[repo].pop(digest, None)
            self.maybe_deleted[repo].add(digest)
            for possible in self.tags[repo].values():
                if digest in possible:
                    possible.add(None)

    def acked_delete(self, repo, digest):
        with self.lock:
            self.maybe_deleted[repo].discard(digest)
            self.deleted[repo].add(digest)
            for possible in self.tags[repo].values():
                if digest in possible:
                    possible.discard(digest)
                    possible.add(None)  # the delete took the tag with it
            self.counts["deletes_acked"] += 1
            self.write({"op": "delete", "repo": repo, "digest": digest, "t": time.time()})


# --------------------------------------------------------------------------------------
# The load.
# --------------------------------------------------------------------------------------
class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.ok = {}
        self.interrupted = 0
        self.unexpected = []

    def count(self, op, n=1):
        with self.lock:
            self.ok[op] = self.ok.get(op, 0) + n

    def total(self):
        with self.lock:
            return sum(self.ok.values())


class Worker:
    def __init__(self, idx, soak):
        self.idx = idx
        self.soak = soak
        self.srv = soak.srv
        self.model = soak.model
        self.stats = soak.stats
        self.rng = random.Random(f"worker-{idx}-{soak.args.seed}")
        self.repos = [f"soak/w{idx}-a", f"soak/w{idx}-b"]
        for r in self.repos:
            self.model.repo(r)
        self.conn = None
        self.conn_inc = -1
        self.seq = 0
        self.ecr = soak.client("ecr")

    # ---- HTTP with crash classification ------------------------------------------------
    def request(self, method, path, body=None, headers=None, inc=None):
        """One OCI request on this worker's keep-alive connection. Returns (status,
        headers, body). A transport error raises Interrupted if the server was killed since
        `inc` (the incarnation the operation started in), else Unexpected."""
        if self.conn is None or self.conn_inc != self.srv.incarnation:
            self.conn = http.client.HTTPConnection("127.0.0.1", self.srv.port, timeout=60)
            self.conn_inc = self.srv.incarnation
        h = {"Authorization": self.soak.basic}
        h.update(headers or {})
        try:
            self.conn.request(method, path, body=body, headers=h)
            r = self.conn.getresponse()
            data = r.read()
        except (OSError, http.client.HTTPException) as e:
            self.conn = None
            if inc != self.srv.incarnation or not self.srv.up.is_set():
                raise Interrupted(str(e))
            # A keep-alive connection the server closed between requests: retry once.
            if isinstance(e, (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError)):
                time.sleep(0.05)
                if inc == self.srv.incarnation and self.srv.up.is_set():
                    return self.request(method, path, body, headers, inc)
            raise Unexpected(f"{method} {path}: {e!r}")
        if r.getheader("Connection", "").lower() == "close":
            self.conn = None
        if r.status >= 500:
            if inc != self.srv.incarnation:
                raise Interrupted(f"{method} {path} -> {r.status}")
            raise Unexpected(f"{method} {path} -> {r.status} {data[:300]!r}")
        return r.status, r, data

    def expect(self, want, got, what):
        status, _, data = got
        if status not in want:
            raise Unexpected(f"{what} -> {status} {data[:300]!r}")
        return got

    # ---- operations -----------------------------------------------------------------
    def upload_blob(self, repo, data, digest, inc):
        s, _, _ = self.request("HEAD", f"/v2/{repo}/blobs/{digest}", inc=inc)
        if s == 200:
            return
        how = self.rng.choice(["monolithic", "post-put", "chunked", "mount"])
        if how == "mount":
            other = self.rng.choice(self.soak.all_repos)
            s, r, d = self.request("POST", f"/v2/{repo}/blobs/uploads/?mount={digest}&from={other}",
                                   inc=inc)
            if s == 201:
                self.stats.count("blob_mount")
                return
            self.expect({202}, (s, r, d), f"POST mount {digest} from {other}")
            loc = r.getheader("Location")
            self.put_upload(loc, data, digest, inc)
            return
        if how == "monolithic":
            self.expect({201}, self.request(
                "POST", f"/v2/{repo}/blobs/uploads/?digest={digest}", body=data,
                headers={"Content-Type": "application/octet-stream"}, inc=inc),
                f"POST monolithic {digest}")
            self.stats.count("blob_upload")
            return
        _, r, _ = self.expect({202}, self.request("POST", f"/v2/{repo}/blobs/uploads/", inc=inc),
                              "POST upload")
        loc = r.getheader("Location")
        if how == "chunked" and len(data) > 1:
            cut = len(data) // 2
            _, r, _ = self.expect({202}, self.request(
                "PATCH", loc, body=data[:cut], inc=inc,
                headers={"Content-Type": "application/octet-stream",
                         "Content-Range": f"0-{cut - 1}"}), "PATCH chunk")
            loc = r.getheader("Location")
            data = data[cut:]
        self.put_upload(loc, data, digest, inc)

    def put_upload(self, loc, data, digest, inc):
        sep = "&" if "?" in loc else "?"
        self.expect({201}, self.request("PUT", f"{loc}{sep}digest={digest}", body=data, inc=inc,
                                        headers={"Content-Type": "application/octet-stream"}),
                    f"PUT upload {digest}")
        self.stats.count("blob_upload")

    def new_image(self, repo):
        """A config, one shared layer and one fresh layer; returns (manifest bytes, blobs)."""
        self.seq += 1
        cfg = json.dumps({"architecture": "amd64", "os": "linux",
                          "soak": f"{repo}#{self.seq}#{self.soak.args.seed}"}).encode()
        k = self.rng.randrange(SHARED_LAYERS)
        shared = {"seed": f"shared-{k}-{self.soak.args.seed}", "payload": 64 * 1024 + k}
        fresh = {"seed": f"fresh-{repo}-{self.seq}-{self.soak.args.seed}",
                 "payload": self.rng.randrange(1, 256 * 1024)}
        blobs = [{"config": cfg.decode(), "size": len(cfg), "digest": sha256(cfg)}]
        for layer in (shared, fresh):
            data = layer_bytes(layer)
            layer["size"], layer["digest"] = len(data), sha256(data)
            blobs.append(layer)
        manifest = json.dumps({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": blobs[0]["digest"], "size": len(cfg)},
            "layers": [{"mediaType": OCI_LAYER, "digest": b["digest"], "size": b["size"]}
                       for b in blobs[1:]]}, separators=(",", ":")).encode()
        return manifest, blobs

    def push(self, inc):
        repo = self.rng.choice(self.repos)
        tag = f"t{self.rng.randrange(8)}"
        manifest, blobs = self.new_image(repo)
        for b in blobs:
            data = b["config"].encode() if "config" in b else layer_bytes(b)
            self.upload_blob(repo, data, b["digest"], inc)
        digest = sha256(manifest)
        expect = self.model.attempt_tag(repo, tag, digest)
        self.expect({201}, self.request("PUT", f"/v2/{repo}/manifests/{tag}", body=manifest,
                                        headers={"Content-Type": OCI_MANIFEST}, inc=inc),
                    f"PUT manifest {repo}:{tag}")
        self.model.acked_push(repo, tag, {"digest": digest, "manifest": manifest.decode(),
                                          "blobs": blobs}, expect, "push")
        self.stats.count("manifest_put")

    def skopeo_push(self, inc):
        repo = self.rng.choice(self.repos)
        tag = f"s{self.rng.randrange(4)}"
        manifest, blobs = self.new_image(repo)
        digest = sha256(manifest)
        layout = tempfile.mkdtemp(prefix="layout-", dir=self.soak.work)
        os.makedirs(os.path.join(layout, "blobs", "sha256"))
        for content, d in [(manifest, digest)] + [
                (b["config"].encode() if "config" in b else layer_bytes(b),
                 b["digest"]) for b in blobs]:
            with open(os.path.join(layout, "blobs", "sha256", d[7:]), "wb") as f:
                f.write(content)
        with open(os.path.join(layout, "oci-layout"), "w") as f:
            f.write('{"imageLayoutVersion":"1.0.0"}')
        with open(os.path.join(layout, "index.json"), "w") as f:
            json.dump({"schemaVersion": 2, "manifests": [{
                "mediaType": OCI_MANIFEST, "digest": digest, "size": len(manifest),
                "annotations": {"org.opencontainers.image.ref.name": "v"}}]}, f)
        expect = self.model.attempt_tag(repo, tag, digest)
        dfile = os.path.join(layout, "digest")
        out = subprocess.run(
            ["skopeo", "copy", "--quiet", "--preserve-digests", "--dest-tls-verify=false",
             "--dest-authfile", self.soak.authfile, "--digestfile", dfile, f"oci:{layout}:v",
             f"docker://{self.srv.host}/{repo}:{tag}"], capture_output=True, text=True,
            timeout=300)
        try:
            if out.returncode != 0:
                if inc != self.srv.incarnation or not self.srv.up.is_set():
                    raise Interrupted(out.stderr)
                raise Unexpected(f"skopeo copy to {repo}:{tag}: {out.stderr[-500:]}")
            got = open(dfile).read().strip()
            if got != digest:
                raise Unexpected(f"skopeo pushed {got}, the layout's manifest is {digest}")
        finally:
            subprocess.run(["rm", "-rf", layout])
        self.model.acked_push(repo, tag, {"digest": digest, "manifest": manifest.decode(),
                                          "blobs": blobs}, expect, "push")
        self.stats.count("skopeo_push")

    def present(self, repo):
        with self.model.lock:
            imgs = self.model.images[repo]
            return self.rng.choice(list(imgs.values())) if imgs else None

    def pull(self, inc):
        repo = self.rng.choice(self.repos)
        rec = self.present(repo)
        if rec is None:
            return
        s, _, body = self.request("GET", f"/v2/{repo}/manifests/{rec['digest']}",
                                  headers={"Accept": OCI_MANIFEST}, inc=inc)
        if s != 200 or body != rec["manifest"].encode():
            self.soak.violation(f"acknowledged {repo}@{rec['digest']} pulled as {s} "
                                f"({len(body)} bytes) during the load")
            return
        b = self.rng.choice(rec["blobs"])
        s, _, body = self.request("GET", f"/v2/{repo}/blobs/{b['digest']}", inc=inc)
        if s != 200 or sha256(body) != b["digest"]:
            self.soak.violation(f"blob {b['digest']} of {repo} answered {s}, "
                                f"{len(body)} bytes, during the load")
        self.stats.count("pull", 2)

    def tag_move(self, inc):
        repo = self.rng.choice(self.repos)
        rec = self.present(repo)
        if rec is None:
            return
        tag = f"t{self.rng.randrange(8)}"
        expect = self.model.attempt_tag(repo, tag, rec["digest"])
        if self.rng.random() < 0.5:
            self.expect({201}, self.request("PUT", f"/v2/{repo}/manifests/{tag}",
                                            body=rec["manifest"].encode(), inc=inc,
                                            headers={"Content-Type": OCI_MANIFEST}),
                        f"PUT manifest {repo}:{tag} (tag move)")
        else:
            try:
                self.ecr_call(inc, "put_image", repositoryName=repo, imageTag=tag,
                              imageManifest=rec["manifest"], imageManifestMediaType=OCI_MANIFEST)
            except self.ecr.exceptions.ImageAlreadyExistsException:
                expect = False  # the tag already pointed there: nothing changed, no event
        self.model.acked_push(repo, tag, rec, expect, "tag_move")
        self.stats.count("tag_move")

    def delete(self, inc):
        repo = self.rng.choice(self.repos)
        rec = self.present(repo)
        if rec is None:
            return
        self.model.attempt_delete(repo, rec["digest"])
        if self.rng.random() < 0.5:
            self.expect({202}, self.request("DELETE", f"/v2/{repo}/manifests/{rec['digest']}",
                                            inc=inc), f"DELETE {repo}@{rec['digest']}")
        else:
            out = self.ecr_call(inc, "batch_delete_image", repositoryName=repo,
                                imageIds=[{"imageDigest": rec["digest"]}])
            if out.get("failures"):
                raise Unexpected(f"BatchDeleteImage {repo}@{rec['digest']}: {out['failures']}")
        self.model.acked_delete(repo, rec["digest"])
        self.stats.count("delete")

    def ecr_read(self, inc):
        repo = self.rng.choice(self.repos)
        rec = self.present(repo)
        if rec is None:
            return
        if self.rng.random() < 0.5:
            out = self.ecr_call(inc, "describe_images", repositoryName=repo,
                                imageIds=[{"imageDigest": rec["digest"]}])
            if out["imageDetails"][0]["imageDigest"] != rec["digest"]:
                self.soak.violation(f"DescribeImages {repo}@{rec['digest']}: {out}")
        else:
            out = self.ecr_call(inc, "batch_get_image", repositoryName=repo,
                                imageIds=[{"imageDigest": rec["digest"]}],
                                acceptedMediaTypes=[OCI_MANIFEST])
            if (out.get("failures") or
                    out["images"][0]["imageManifest"] != rec["manifest"]):
                self.soak.violation(f"BatchGetImage {repo}@{rec['digest']}: {str(out)[:400]}")
        self.stats.count("ecr_read")

    def ecr_call(self, inc, op, **kw):
        try:
            return getattr(self.ecr, op)(**kw)
        except (botocore.exceptions.EndpointConnectionError,
                botocore.exceptions.ConnectionClosedError,
                botocore.exceptions.ReadTimeoutError) as e:
            if inc != self.srv.incarnation or not self.srv.up.is_set():
                raise Interrupted(str(e))
            raise Unexpected(f"ECR {op}: {e!r}")
        except botocore.exceptions.ClientError as e:
            if e.response["Error"]["Code"] == "ImageAlreadyExistsException":
                raise
            if (e.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) >= 500
                    and inc != self.srv.incarnation):
                raise Interrupted(str(e))
            raise Unexpected(f"ECR {op}: {e!r}")

    def run(self, stop):
        ops = [(self.push, 30), (self.skopeo_push, 3), (self.pull, 30), (self.tag_move, 10),
               (self.delete, 8), (self.ecr_read, 12)]
        funcs, weights = zip(*ops)
        while not stop.is_set():
            if not self.srv.up.wait(timeout=1):
                continue
            inc = self.srv.incarnation
            op = self.rng.choices(funcs, weights)[0]
            try:
                op(inc)
            except Interrupted:
                with self.stats.lock:
                    self.stats.interrupted += 1
            except Unexpected as e:
                self.soak.violation(f"worker {self.idx}: {e}")
            except Exception:  # a bug in the driver: report, do not hide
                self.soak.violation(f"worker {self.idx} crashed: {traceback.format_exc()}")
                return


# --------------------------------------------------------------------------------------
# The run.
# --------------------------------------------------------------------------------------
class Soak:
    def __init__(self, args):
        self.args = args
        self.work = args.work
        self.srv = Server(args, self.work)
        self.model = Model(os.path.join(self.work, "acks.jsonl"))
        self.stats = Stats()
        self.violations = []
        self.vlock = threading.Lock()
        self.receiver = Receiver()
        self.all_repos = [f"soak/w{i}-{x}" for i in range(args.workers) for x in "ab"]
        self.memory_series = []
        self.memory_path = os.path.join(self.work, "memory.tsv")
        self.scans_checked = 0
        self.scan_statuses = {}

    def violation(self, msg):
        with self.vlock:
            self.violations.append(msg)
        log(f"VIOLATION: {msg}")

    def client(self, service):
        return boto3.client(
            service, endpoint_url=f"http://{self.srv.host}", region_name="us-east-1",
            aws_access_key_id=self.key_id, aws_secret_access_key=self.secret,
            # total_max_attempts, not max_attempts (which counts *re*tries): a
            # request the kill cut must not be retried against the next incarnation
            # (a retried delete that had committed answers ImageNotFound).
            config=botocore.config.Config(retries={"total_max_attempts": 1, "mode": "standard"},
                                          connect_timeout=5, read_timeout=60))

    def setup(self):
        os.makedirs(self.srv.data, exist_ok=True)
        self.srv.start()
        creds = open(os.path.join(self.srv.data, "admin-credentials")).read()
        kv = {k.strip(): v for k, v in
              (line.split("=", 1) for line in creds.splitlines() if "=" in line)}
        self.key_id = kv["aws_access_key_id"].strip()
        self.secret = kv["aws_secret_access_key"].strip()
        self.creds = f"{self.key_id}:{self.secret}"
        self.basic = "Basic " + base64.b64encode(self.creds.encode()).decode()
        # skopeo reads the key from a 0600 auth file, not from its argv.
        self.authfile = os.path.join(self.work, "auth.json")
        fd = os.open(self.authfile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump({"auths": {self.srv.host: {"auth": self.basic[6:]}}}, f)
        ev = self.client("events")
        conn = ev.create_connection(
            Name="soak", AuthorizationType="API_KEY",
            AuthParameters={"ApiKeyAuthParameters": {"ApiKeyName": "x-api-key",
                                                      "ApiKeyValue": API_KEY}})
        dest = ev.create_api_destination(Name="soak-hook", ConnectionArn=conn["ConnectionArn"],
                                         InvocationEndpoint=self.receiver.url, HttpMethod="POST")
        ev.put_rule(Name="soak-image-actions", EventPattern=json.dumps(
            {"source": ["aws.ecr"], "detail-type": ["ECR Image Action"],
             "detail": {"repository-name": [{"prefix": "soak/"}]}}))
        out = ev.put_targets(Rule="soak-image-actions",
                             Targets=[{"Id": "hook", "Arn": dest["ApiDestinationArn"]}])
        assert out["FailedEntryCount"] == 0, out
        self.receiver.secret = self.srv.admin("events", "destination-secret", "soak-hook").strip()
        self.client("ecr").put_registry_scanning_configuration(scanType="BASIC", rules=[
            {"scanFrequency": "SCAN_ON_PUSH",
             "repositoryFilters": [{"filter": "soak/w*-a", "filterType": "WILDCARD"}]}])
        log(f"berth serve pid {self.srv.proc.pid} on {self.srv.host}, data {self.srv.data}")

    def run(self):
        # The server is started and killed only from this (the main) thread: its
        # PR_SET_PDEATHSIG fires when the *thread* that started it ends.
        self.setup()
        stop = threading.Event()
        workers = [Worker(i, self) for i in range(self.args.workers)]
        threads = [threading.Thread(target=w.run, args=(stop,)) for w in workers]
        rng = random.Random(f"killer-{self.args.seed}")
        t0 = time.time()
        self.last_rss = t0
        for t in threads:
            t.start()
        last = t0
        deadline = t0 + self.args.seconds
        while True:
            next_kill = time.time() + rng.uniform(self.args.kill_min, self.args.kill_max)
            while time.time() < min(next_kill, deadline):
                time.sleep(min(1.0, max(0.05, min(next_kill, deadline) - time.time())))
                if time.time() - self.last_rss >= self.args.rss_every:
                    self.last_rss = time.time()
                    self.sample_memory(self.last_rss - t0)
                if time.time() - last >= 60:
                    last = time.time()
                    log(f"{int(last - t0)} s: {self.stats.total()} requests ok, "
                        f"{self.srv.crashes} crashes, {len(self.violations)} violations")
            if time.time() >= deadline:
                break
            self.srv.kill9()
            log(f"kill -9 #{self.srv.crashes} (pid {self.srv.proc.pid}); restarting")
            self.srv.start()
        stop.set()
        for t in threads:
            t.join()
        self.load_secs = time.time() - t0
        self.ops_ok = dict(self.stats.ok)
        self.srv.up.wait()
        # One more crash right after the load; the restarted server is the final one. Its
        # baseline is taken when it is ready, then it gets a burst of the same load without
        # kills, and after the checks its memory and descriptors must be back near it.
        self.srv.kill9()
        log(f"load stopped after {self.load_secs:.0f} s; final kill -9 #{self.srv.crashes}")
        self.sessions_left_by_crashes = len(os.listdir(os.path.join(self.srv.data, "uploads")))
        self.srv.start()
        time.sleep(1)
        self.baseline = self.sample()
        stop = threading.Event()
        threads = [threading.Thread(target=w.run, args=(stop,)) for w in workers]
        for t in threads:
            t.start()
        time.sleep(self.args.final_load)
        self.under_load = self.sample()
        stop.set()
        for t in threads:
            t.join()
        log(f"final server: baseline {self.baseline}, after {self.args.final_load:g} s of "
            f"load {self.under_load}; checking")
        self.verify()
        return self.report()

    def sample_memory(self, elapsed):
        """One row of WORK/memory.tsv: the server's memory over time under load (issue 19's
        leak check: RSS must level off at SQLite's page caches + buffers), with what grows
        beside it (the metadata database, its audit and job tables, threads)."""
        pid = self.srv.proc.pid
        row = {"t": round(elapsed), "pid": pid}
        try:
            with open(f"/proc/{pid}/smaps_rollup") as f:
                for line in f:
                    k, _, v = line.partition(":")
                    if k in ("Rss", "Anonymous", "Private_Dirty", "Shared_Clean"):
                        row[k] = int(v.split()[0])
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("Threads:"):
                        row["threads"] = int(line.split()[1])
        except OSError:
            return  # killed between two lines
        db = os.path.join(self.srv.data, "metadata.db")
        row["db_bytes"] = sum(os.path.getsize(db + s) for s in ("", "-wal")
                              if os.path.exists(db + s))
        try:
            con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
            row["audit_rows"] = con.execute("SELECT count(*) FROM audit_log").fetchone()[0]
            row["job_rows"] = con.execute("SELECT count(*) FROM jobs").fetchone()[0]
            con.close()
        except sqlite3.Error:
            pass
        self.memory_series.append(row)
        new = not os.path.exists(self.memory_path)
        with open(self.memory_path, "a") as f:
            cols = ["t", "pid", "Rss", "Anonymous", "Private_Dirty", "Shared_Clean", "threads",
                    "db_bytes", "audit_rows", "job_rows"]
            if new:
                f.write("\t".join(cols) + "\n")
            f.write("\t".join(str(row.get(c, "")) for c in cols) + "\n")

    def sample(self):
        """(RSS KiB, open files, open sockets and other descriptors) of the server."""
        pid = self.srv.proc.pid
        files = other = 0
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                t = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if t.startswith("/"):
                files += 1
            else:
                other += 1
        return (rss_kib(pid), files, other)

    # ---- checks -------------------------------------------------------------------------
    def get(self, path, headers=None):
        c = http.client.HTTPConnection("127.0.0.1", self.srv.port, timeout=60)
        h = {"Authorization": self.basic}
        h.update(headers or {})
        c.request("GET", path, headers=h)
        r = c.getresponse()
        return r.status, r.read()

    def sqlite_kib(self):
        """What SQLite's allocator holds in the server (berth_sqlite_memory_used_bytes on
        /metrics), KiB."""
        _, body = self.get("/metrics")
        for line in body.decode().splitlines():
            if line.startswith("berth_sqlite_memory_used_bytes"):
                return int(float(line.split()[-1])) // 1024
        return 0

    def non_sqlite_growth(self, since):
        """RSS growth minus SQLite's memory growth (KiB) from pass `since` to the last."""
        return ((self.rss_passes[-1] - self.rss_passes[since])
                - (self.sqlite_passes[-1] - self.sqlite_passes[since]))

    def verify(self):
        self.verified_images = self.verified_blobs = self.verified_tags = 0
        self.verified_deletes = 0
        conn = http.client.HTTPConnection("127.0.0.1", self.srv.port, timeout=60)

        def get(path, accept=None):
            h = {"Authorization": self.basic}
            if accept:
                h["Accept"] = accept
            conn.request("GET", path, headers=h)
            r = conn.getresponse()
            return r.status, r.read(), r.getheader("Docker-Content-Digest")

        blob_cache = {}
        # 1. Every acknowledged, not later deleted image pulls byte for byte.
        for repo, imgs in self.model.images.items():
            for digest, rec in imgs.items():
                s, body, dcd = get(f"/v2/{repo}/manifests/{digest}", OCI_MANIFEST)
                if s != 200 or body != rec["manifest"].encode() or dcd != digest:
                    self.violation(f"LOST: acknowledged {repo}@{digest}: GET -> {s}, "
                                   f"{len(body)} bytes, digest header {dcd}")
                    continue
                for b in rec["blobs"]:
                    want = (b["config"].encode() if "config" in b
                            else blob_cache.get(b["seed"]) or layer_bytes(b))
                    if "seed" in b and b["seed"].startswith("shared-"):
                        blob_cache[b["seed"]] = want
                    s, body, _ = get(f"/v2/{repo}/blobs/{b['digest']}")
                    if s != 200 or body != want or sha256(body) != b["digest"]:
                        self.violation(f"LOST: blob {b['digest']} of acknowledged "
                                       f"{repo}@{digest}: GET -> {s}, {len(body)} bytes")
                    else:
                        self.verified_blobs += 1
                self.verified_images += 1
            # Tags point at a digest they may point at.
            for tag, possible in self.model.tags[repo].items():
                s, body, dcd = get(f"/v2/{repo}/manifests/{tag}", OCI_MANIFEST)
                now = dcd if s == 200 else None
                if now not in possible:
                    self.violation(f"tag {repo}:{tag} -> {s} {now}; acknowledged state allows "
                                   f"{sorted(map(str, possible))}")
                else:
                    self.verified_tags += 1
            # Acknowledged deletes stay deleted.
            for digest in self.model.deleted[repo]:
                s, _, _ = get(f"/v2/{repo}/manifests/{digest}", OCI_MANIFEST)
                if s != 404:
                    self.violation(f"acknowledged delete of {repo}@{digest} undone: GET -> {s}")
                else:
                    self.verified_deletes += 1
        # 1b. Identical pull passes: memory that grows per request (a leak) grows on every
        # pass; caches fill and level off. The largest cache is SQLite's: each of the 9
        # connections (1 writer, 8 readers) keeps up to 32 MiB of pages (cache_size in
        # crates/berth-meta/src/sqlite.rs), and which reader serves a request is the
        # pool's choice, so on a big database the readers' caches can take many passes to
        # fill (seen: +15 MiB on each of 4 passes). The server exports what SQLite's
        # allocator holds (berth_sqlite_memory_used_bytes), so the check subtracts it:
        # what grows besides SQLite by more than 8 MiB on each of up to 5 passes, and by
        # more than 64 MiB in all (allocator arenas), is a leak.
        self.rss_passes = [rss_kib(self.srv.proc.pid)]
        self.sqlite_passes = [self.sqlite_kib()]
        for _ in range(4):
            self.pull_pass(get)
            self.rss_passes.append(rss_kib(self.srv.proc.pid))
            self.sqlite_passes.append(self.sqlite_kib())
            if self.non_sqlite_growth(-2) <= 8 * 1024:
                break
        else:
            if self.non_sqlite_growth(0) > 64 * 1024:
                self.violation(f"RSS besides SQLite's memory grew by more than 8 MiB on each "
                               f"of 4 identical pull passes and by more than 64 MiB in all "
                               f"(RSS {' -> '.join(map(str, self.rss_passes))} KiB, SQLite "
                               f"{' -> '.join(map(str, self.sqlite_passes))} KiB): a leak per "
                               f"request")
        # 2. ECR agrees: DescribeImages lists every present image and no deleted one.
        ecr = self.client("ecr")
        for repo in self.all_repos:
            listed = set()
            try:
                for page in ecr.get_paginator("describe_images").paginate(repositoryName=repo):
                    listed |= {d["imageDigest"] for d in page["imageDetails"]}
            except ecr.exceptions.RepositoryNotFoundException:
                pass
            missing = set(self.model.images[repo]) - listed
            back = self.model.deleted[repo] & listed
            if missing or back:
                self.violation(f"DescribeImages {repo}: missing {sorted(missing)[:5]}, "
                               f"deleted but listed {sorted(back)[:5]}")
        # 3. Jobs settle: nothing queued or retrying for long, nothing running past its
        # lease, no dead delivery; every acknowledged push's event reached the receiver.
        self.wait_settled()
        self.check_events()
        self.check_scans()
        # 4. Memory and file descriptors of the final server, after load and checks. Bounds:
        # RSS at most baseline + SQLite's page caches when full (berth-meta: cache_size 32
        # MiB on each of 1 writer + 8 readers = 288 MiB, the 9 metadata.db descriptors;
        # the 10-minute run filled them: docs/soak.md) + 64 MiB for allocator arenas and
        # buffers; the per-request leak check is the repeated pull passes above; open files at most baseline + 3 per SQLite reader the pool may add
        # (database, WAL, shared memory); sockets at most baseline + the webhook client's
        # pool (event_delivery_concurrency, 32) + 8. A leak per request or per blob
        # exceeds these after the thousands of requests of the run.
        time.sleep(2)
        self.final = self.sample()
        bounds = (self.baseline[0] + 9 * 32 * 1024 + 64 * 1024,
                  self.baseline[1] + 3 * 8, self.baseline[2] + 32 + 8)
        for what, got, bound in zip(("RSS KiB", "open files", "sockets and other fds"),
                                    self.final, bounds):
            if got > bound:
                self.violation(f"{what} after load {got} > bound {bound} (baseline "
                               f"{self.baseline}); descriptors: {self.fd_targets()}")
        self.bounds = bounds
        # 5. Upload sessions of killed uploads expire; then the blob store holds only
        # whole, verified blobs.
        self.wait_uploads_expired()
        rc = self.srv.stop()
        if rc != 0:
            self.violation(f"berth serve exited {rc} on SIGTERM after the checks")
        self.check_store()

    def fd_targets(self):
        pid = self.srv.proc.pid
        out = {}
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                t = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            key = t.split(":")[0] if ":" in t and not t.startswith("/") else t
            out[key] = out.get(key, 0) + 1
        return out

    def jobs(self, state):
        return json.loads(self.srv.admin("jobs", "list", "--state", state, "--limit", "1000"))

    def pull_pass(self, get):
        """GETs every acknowledged manifest and its blobs once more, checking the bytes."""
        for repo, imgs in self.model.images.items():
            for digest, rec in imgs.items():
                s, body, _ = get(f"/v2/{repo}/manifests/{digest}", OCI_MANIFEST)
                if s != 200 or body != rec["manifest"].encode():
                    self.violation(f"LOST: {repo}@{digest} on a repeated pass: GET -> {s}")
                for b in rec["blobs"]:
                    s, body, _ = get(f"/v2/{repo}/blobs/{b['digest']}")
                    if s != 200 or sha256(body) != b["digest"]:
                        self.violation(f"LOST: blob {b['digest']} of {repo} on a repeated "
                                       f"pass: GET -> {s}")

    def wait_settled(self):
        t0 = time.time()
        while True:
            stats = json.loads(self.srv.admin("jobs", "stats"))
            pending = {f"{kind}/{state}": n for kind, by_state in stats["counts"].items()
                       for state, n in by_state.items()
                       if state in ("queued", "retrying", "running") and n}
            due = stats.get("oldest_due_age_ms")
            # The janitor enqueues housekeeping.expire_uploads every tick, and the periodic
            # housekeeping and lifecycle.schedule jobs wait queued for their next period:
            # one queued or running periodic job is the steady state, not a backlog.
            busy = {k: v for k, v in pending.items()
                    if not k.startswith(("housekeeping.", "lifecycle.schedule/"))}
            if not busy and (due is None or due < 5000):
                break
            if time.time() - t0 > self.args.settle:
                self.violation(f"jobs did not settle within {self.args.settle} s after the "
                               f"final restart: {pending}, oldest due {due} ms")
                break
            time.sleep(0.5)
        self.settle_secs = time.time() - t0
        now_ms = time.time() * 1000
        for row in self.jobs("running"):
            if row.get("lease_expires_at") and row["lease_expires_at"] < now_ms - 1000:
                self.violation(f"job {row['id']} ({row['kind']}) running past its lease: {row}")
        for state in ("queued", "retrying"):
            for row in self.jobs(state):
                if row["run_at"] < now_ms - 5000:
                    self.violation(f"job {row['id']} ({row['kind']}) left {state}: {row}")
        dead = self.jobs("dead")
        for row in dead:
            self.violation(f"dead job {row['id']} ({row['kind']}): {row.get('last_error')}")
        self.job_counts = json.loads(self.srv.admin("jobs", "stats"))["counts"]

    def check_scans(self):
        """Every acknowledged, present image of a scanned repository has a finished scan:
        its job was enqueued with the push and ran, through the kills."""
        ecr = self.client("ecr")
        self.scans_checked = 0
        self.scan_statuses = {}
        for repo in self.all_repos:
            if not repo.endswith("-a"):
                continue
            for digest in list(self.model.images[repo]):
                try:
                    out = ecr.describe_image_scan_findings(
                        repositoryName=repo, imageId={"imageDigest": digest}, maxResults=1)
                    status = out["imageScanStatus"]["status"]
                except ecr.exceptions.ScanNotFoundException:
                    status = "NONE"
                self.scan_statuses[status] = self.scan_statuses.get(status, 0) + 1
                self.scans_checked += 1
                if status != "COMPLETE":
                    self.violation(f"acknowledged {repo}@{digest} scanned on push: scan {status}")

    def check_events(self):
        events = self.receiver.events()
        got = {}
        for e in events.values():
            d = e.get("detail", {})
            if d.get("action-type") == "PUSH":
                got.setdefault((d.get("repository-name"), d.get("image-tag"),
                                d.get("image-digest")), set()).add(e["id"])
        missing = [x for x in self.model.expected_events if x not in got]
        for m in missing[:20]:
            self.violation(f"LOST EVENT: PUSH {m[0]}:{m[1]} {m[2]} never reached the receiver")
        if len(missing) > 20:
            self.violation(f"... and {len(missing) - 20} more lost events")
        for p in self.receiver.problems[:20]:
            self.violation(f"receiver: {p}")
        self.events_expected = len(self.model.expected_events)
        self.events_received = len(events)
        self.deliveries = self.receiver.deliveries
        self.events_lost = len(missing)

    def wait_uploads_expired(self):
        uploads = os.path.join(self.srv.data, "uploads")
        t0 = time.time()
        left = os.listdir(uploads)
        while left and time.time() - t0 < self.args.upload_expiry * 3 + 10:
            time.sleep(1)
            left = os.listdir(uploads)
        if left:
            self.violation(f"{len(left)} upload sessions not expired after "
                           f"{self.args.upload_expiry * 3 + 10} s: {left[:5]}")

    def check_store(self):
        """Every file under blobs/ is a whole blob under its own digest (layout of
        berth-store's fs.rs: blobs/<alg>/<hh>/<hex>); no other file is there; uploads/ is
        empty after expiry; the metadata links only blobs the store has."""
        root = os.path.join(self.srv.data, "blobs")
        self.store_blobs = 0
        on_disk = set()
        for dirpath, dirs, files in os.walk(root):
            rel = os.path.relpath(dirpath, root).split(os.sep)
            for name in files:
                path = os.path.join(dirpath, name)
                ok = (len(rel) == 2 and rel[0] == "sha256" and len(rel[1]) == 2
                      and name.startswith(rel[1]) and len(name) == 64)
                if not ok:
                    self.violation(f"stray file in the blob store: {path}")
                    continue
                h = hashlib.sha256()
                with open(path, "rb") as f:
                    for chunk in iter(lambda: f.read(1 << 20), b""):
                        h.update(chunk)
                if h.hexdigest() != name:
                    self.violation(f"PARTIAL: {path} hashes to {h.hexdigest()}")
                self.store_blobs += 1
                on_disk.add("sha256:" + name)
        import sqlite3
        db = sqlite3.connect(f"file:{os.path.join(self.srv.data, 'metadata.db')}?mode=ro",
                             uri=True)
        linked = {r[0] for r in db.execute("SELECT digest FROM blobs")}
        db.close()
        for d in sorted(linked - on_disk)[:20]:
            self.violation(f"LOST: metadata knows blob {d}, the store does not have it")
        self.unreferenced_blobs = len(on_disk - linked)

    def report(self):
        total_ok = sum(self.ops_ok.values())
        lost = sum(1 for v in self.violations if v.startswith(("LOST", "PARTIAL")))
        c = self.model.counts
        max_loaded = max(self.srv.loaded_samples, default=(0, 0))
        mem = self.memory_series
        if mem:
            third = max(1, len(mem) // 3)
            peak = lambda rows: max(r.get("Rss", 0) for r in rows) // 1024
            mem_line = (
                f"memory over the load (WORK/memory.tsv, every {self.args.rss_every:g} s, "
                f"{len(mem)} samples): RSS MiB first {mem[0].get('Rss', 0) // 1024}, peak of each "
                f"third {peak(mem[:third])} / {peak(mem[third:2 * third] or mem[-1:])} / "
                f"{peak(mem[2 * third:] or mem[-1:])}, last {mem[-1].get('Rss', 0) // 1024} "
                f"(anonymous {mem[-1].get('Anonymous', 0) // 1024}); threads {mem[-1].get('threads')}; "
                f"metadata DB {mem[-1].get('db_bytes', 0) // 2**20} MiB, audit rows "
                f"{mem[0].get('audit_rows')} -> {mem[-1].get('audit_rows')}, job rows "
                f"{mem[0].get('job_rows')} -> {mem[-1].get('job_rows')}")
        else:
            mem_line = "memory over the load: no sample"
        lines = [
            "== Berth soak report",
            mem_line,
            f"binary: {self.args.berth}",
            f"load: {self.load_secs:.0f} s, {self.args.workers} workers; "
            f"{total_ok} requests acknowledged = {total_ok / self.load_secs:.1f} requests/s held "
            f"(crash downtime included)",
            "  by kind: " + ", ".join(f"{k} {v}" for k, v in sorted(self.ops_ok.items())),
            f"crashes survived: {self.srv.crashes} (kill -9 every {self.args.kill_min:g}-"
            f"{self.args.kill_max:g} s, plus one after the load); restart to ready: "
            f"median {sorted(self.srv.restart_secs)[len(self.srv.restart_secs) // 2]:.2f} s, "
            f"max {max(self.srv.restart_secs):.2f} s; operations cut by a crash: "
            f"{self.stats.interrupted}",
            f"acknowledged: {c['pushes_acked']} pushes, {c['tag_moves_acked']} tag moves, "
            f"{c['deletes_acked']} deletes",
            f"verified after the final restart: {self.verified_images} images byte for byte "
            f"(manifest + {self.verified_blobs} blob pulls), {self.verified_tags} tags, "
            f"{self.verified_deletes} deletes still deleted; {self.store_blobs} blob files "
            f"re-hashed in the store ({self.unreferenced_blobs} not linked to any repository: "
            f"deleted images' and crashed pushes' layers, for garbage collection)",
            f"events: {self.events_expected} expected PUSH events, {self.events_received} "
            f"distinct events received in {self.deliveries} deliveries "
            f"({self.deliveries - self.events_received} duplicates, same id); "
            f"lost {self.events_lost}",
            f"jobs after settling ({self.settle_secs:.1f} s): "
            + json.dumps(self.job_counts, sort_keys=True),
            f"scans on push: {self.scans_checked} acknowledged images of the soak/w*-a "
            f"repositories, by final status {json.dumps(self.scan_statuses, sort_keys=True)}",
            f"upload sessions on disk at the kills: {self.srv.sessions_at_kills} in all; "
            f"all expired (--upload-expiry-secs {self.args.upload_expiry}) before the end",
            f"memory (RSS KiB, open files, sockets+other fds): killed servers under load up "
            f"to {max_loaded[0]} KiB / {max((x[1] for x in self.srv.loaded_samples), default=0)}"
            f" fds; final server: baseline {self.baseline}, under load {self.under_load}, "
            f"after load and checks {self.final} (bounds {self.bounds}); RSS over "
            f"identical pull passes: {' -> '.join(map(str, self.rss_passes))} KiB (SQLite's "
            f"memory {' -> '.join(map(str, self.sqlite_passes))} KiB)",
            f"lost: {lost}",
            f"violations: {len(self.violations)}",
        ]
        lines += [f"  - {v[:500]}" for v in self.violations[:50]]
        lines.append("RESULT: " + ("PASS" if not self.violations else "FAIL"))
        print("\n".join(lines), flush=True)
        return 0 if not self.violations else 1


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--berth", required=True, help="the berth binary")
    p.add_argument("--work", required=True, help="an empty working directory")
    p.add_argument("--seconds", type=float, default=1800)
    p.add_argument("--workers", type=int, default=4)
    p.add_argument("--kill-min", type=float, default=10)
    p.add_argument("--kill-max", type=float, default=40)
    p.add_argument("--upload-expiry", type=int, default=10,
                   help="berth's --upload-expiry-secs: idle sessions of killed uploads go "
                        "after this long")
    p.add_argument("--settle", type=float, default=120,
                   help="seconds the jobs may take to settle after the final restart")
    p.add_argument("--final-load", type=float, default=15,
                   help="seconds of load (no kills) on the final server before the checks")
    p.add_argument("--rss-every", type=float, default=30,
                   help="seconds between two memory samples of the server under load "
                        "(WORK/memory.tsv)")
    p.add_argument("--seed", default=str(int(time.time())))
    args = p.parse_args()
    soak = Soak(args)
    try:
        sys.exit(soak.run())
    finally:
        if soak.srv.proc and soak.srv.proc.poll() is None:
            soak.srv.proc.kill()
            soak.srv.proc.wait()


if __name__ == "__main__":
    main()
