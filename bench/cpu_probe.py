"""Shared by bench/events_cpu.py and bench/events_push_cpu.py: a free loopback port, a
webhook receiver that counts POSTs (its CPU is this script's, not the server's), and a
process's CPU time from /proc."""
import http.server
import os
import socket
import threading

TICK = os.sysconf("SC_CLK_TCK")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


class Hook(http.server.BaseHTTPRequestHandler):
    """Answers every POST 200 and counts it in `Hook.count`."""
    count = 0
    lock = threading.Lock()
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        with Hook.lock:
            Hook.count += 1
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *a):
        pass


def cpu_seconds(pid):
    """utime + stime of `pid`, in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK
