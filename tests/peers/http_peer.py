"""A scripted HTTP/1.1 receiver for the HTTP destination tests, on Python's
``http.server`` (keep-alive, one thread per connection).

    http_peer.py PORT SCRIPT LOG [TLS_DIR]

SCRIPT is a comma-separated list of answers, one per request in arrival
order; the last one answers every request after it. An answer is a status
with options joined by ``:``:

    201                 answer 201 at once
    429:retry=2         with ``Retry-After: 2``
    503:date=2          with ``Retry-After`` as an HTTP date 2 s from now
    201:slow=5          after 5 s

Every request is appended to LOG as a JSON line when it arrives (before it
is answered): its number ``n``, ``method``, ``path``, ``headers`` (names in
lower case), ``body`` (text), the ``connection`` it came on, the
``status`` it will get, and when it came (``at``, seconds since the epoch).
A refusal's body is an OperationOutcome naming the request.
With TLS_DIR (made by the harness's ``test_pki``) it speaks HTTPS with
``server.pem``/``server.key`` and requires a client certificate issued by
``ca.pem``; each logged request then names the certificate's ``client`` CN.
The server prints "ready" once it listens and runs until killed.
"""

import email.utils
import itertools
import json
import ssl
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

port, script, log_path = int(sys.argv[1]), sys.argv[2].split(","), sys.argv[3]
tls_dir = sys.argv[4] if len(sys.argv) > 4 else None
log = open(log_path, "a", encoding="utf-8")
lock = threading.Lock()
requests = itertools.count(1)
connections = itertools.count(1)


def parse(answer):
    status, *options = answer.split(":")
    return status, dict(o.split("=", 1) for o in options)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def setup(self):
        super().setup()
        self.connection_number = next(connections)

    def log_message(self, *args):
        pass

    def handle_request(self):
        length = int(self.headers.get("Content-Length", 0))
        body = self.rfile.read(length).decode("utf-8", "replace")
        with lock:
            n = next(requests)
            status, options = parse(script[min(n, len(script)) - 1])
            entry = {
                "n": n,
                "method": self.command,
                "path": self.path,
                "headers": {k.lower(): v for k, v in self.headers.items()},
                "body": body,
                "connection": self.connection_number,
                "status": status,
                "at": time.time(),
            }
            if tls_dir:
                subject = dict(x[0] for x in self.connection.getpeercert()["subject"])
                entry["client"] = subject.get("commonName")
            log.write(json.dumps(entry) + "\n")
            log.flush()
        if "slow" in options:
            time.sleep(float(options["slow"]))
        code = int(status)
        answer = b"" if code < 300 else json.dumps(
            {"resourceType": "OperationOutcome", "issue": [{"diagnostics": f"refused request {n}"}]}
        ).encode()
        self.send_response(code)
        if "retry" in options:
            self.send_header("Retry-After", options["retry"])
        if "date" in options:
            at = time.time() + float(options["date"])
            self.send_header("Retry-After", email.utils.formatdate(at, usegmt=True))
        self.send_header("Content-Type", "application/fhir+json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = handle_request


server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
server.daemon_threads = True
if tls_dir:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(f"{tls_dir}/server.pem", f"{tls_dir}/server.key")
    context.load_verify_locations(f"{tls_dir}/ca.pem")
    context.verify_mode = ssl.CERT_REQUIRED
    server.socket = context.wrap_socket(server.socket, server_side=True)
print("ready", flush=True)
server.serve_forever()
