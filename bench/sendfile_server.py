#!/usr/bin/env python3
"""Reference for the blob download benchmark: the least work any HTTP server can do.

usage: sendfile_server.py FILE PORTFILE

Listens on 127.0.0.1 (a free port, written to PORTFILE), answers every request on a
connection with 200 and FILE's bytes via sendfile(2), one request per connection.
bench/run.sh downloads from it with the same curl command as from the registries, so
"% of sendfile reference" says how close a registry gets to what this client, kernel
and page cache allow; iperf3 (memory to memory, no page cache, no file) is higher.
"""
import os
import socket
import sys


def main():
    path, portfile = sys.argv[1], sys.argv[2]
    size = os.path.getsize(path)
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)
    with open(portfile + ".tmp", "w") as f:
        f.write("%d\n" % srv.getsockname()[1])
    os.rename(portfile + ".tmp", portfile)
    while True:
        conn, _ = srv.accept()
        with conn:
            req = b""
            while b"\r\n\r\n" not in req:
                chunk = conn.recv(65536)
                if not chunk:
                    break
                req += chunk
            if not req:
                continue
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                         b"Content-Length: %d\r\nConnection: close\r\n\r\n" % size)
            if not req.startswith(b"HEAD "):
                with open(path, "rb") as f:
                    conn.sendfile(f)


if __name__ == "__main__":
    main()
