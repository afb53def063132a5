#!/usr/bin/env python3
"""Real object servers on 127.0.0.1 for the remote tests and benchmark: nginx serving a directory
over HTTP (range requests, ETags) and moto's S3 server.

    python3 scripts/remote_servers.py -- CMD ARGS...

starts both, runs CMD with these set, stops both and exits with CMD's status:

    TORCHFITS_TEST_HTTP_ROOT   the directory nginx serves (empty at start; files put here are served)
    TORCHFITS_TEST_HTTP_URL    its URL (http://127.0.0.1:PORT)
    TORCHFITS_TEST_S3_BUCKET   a bucket made there, empty at start
    TORCHFITS_TEST_S3_ENDPOINT moto's S3 endpoint (http://127.0.0.1:PORT), with AWS_ENDPOINT,
                               AWS_ALLOW_HTTP, AWS_REGION and test credentials for object_store

A server that cannot start is an error (exit status 2), never a silent skip. nginx comes from the
system (scripts/setup.sh --test installs it); moto from python3's packages, else a virtual
environment made here (~/.cache/torchfits-remote-venv).
"""

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

BUCKET = "torchfits-test"

NGINX_CONF = """
daemon off;
master_process off;
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 256; }}
http {{
    log_format counted '$request_method $status $body_bytes_sent "$http_range"';
    access_log {tmp}/access.log counted;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    sendfile on;
    keepalive_requests 100000;
    server {{
        listen 127.0.0.1:{port};
        root {root};
        location / {{ }}
    }}
}}
"""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(url, proc, what, log, seconds=30):
    """Waits until `url` answers (any HTTP status), or fails naming `what` with its log."""
    deadline = time.time() + seconds
    while time.time() < deadline:
        if proc.poll() is not None:
            with open(log) as f:
                tail = f.read()[-2000:]
            raise RuntimeError(f"{what} exited at start (status {proc.returncode}):\n{tail}")
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{what} did not answer on {url} within {seconds} s")


def nginx_binary():
    for candidate in (shutil.which("nginx"), "/usr/sbin/nginx"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise RuntimeError("nginx is missing (scripts/setup.sh --test installs it)")


def moto_python():
    """A python3 that can run moto's server."""
    probe = [sys.executable, "-c", "import moto.server, flask, flask_cors"]
    if subprocess.run(probe, capture_output=True).returncode == 0:
        return sys.executable
    venv = os.path.join(os.path.expanduser("~"), ".cache", "torchfits-remote-venv")
    python = os.path.join(venv, "bin", "python")
    if not os.path.exists(python):
        subprocess.check_call([sys.executable, "-m", "venv", venv])
    subprocess.check_call([python, "-m", "pip", "install", "-q", "moto[server]==5.2.1"])
    return python


class Servers:
    """nginx and moto, running until `stop`."""

    def __init__(self):
        self.tmp = tempfile.mkdtemp(prefix="torchfits-servers-")
        self.root = os.path.join(self.tmp, "www")
        os.makedirs(self.root)
        self.procs = []
        try:
            self._start_nginx()
            self._start_moto()
        except BaseException:
            self.stop()
            raise

    def _start_nginx(self):
        port = free_port()
        conf = os.path.join(self.tmp, "nginx.conf")
        with open(conf, "w") as f:
            f.write(NGINX_CONF.format(tmp=self.tmp, port=port, root=self.root))
        log_path = os.path.join(self.tmp, "nginx.out")
        log = open(log_path, "w")
        proc = subprocess.Popen([nginx_binary(), "-p", self.tmp, "-e", os.path.join(self.tmp, "error.log"), "-c", conf],
                                stdout=log, stderr=subprocess.STDOUT)
        self.procs.append(proc)
        self.http_url = f"http://127.0.0.1:{port}"
        wait_for(self.http_url + "/", proc, "nginx", log_path)

    def _start_moto(self):
        port = free_port()
        log_path = os.path.join(self.tmp, "moto.out")
        log = open(log_path, "w")
        proc = subprocess.Popen([moto_python(), "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                                stdout=log, stderr=subprocess.STDOUT)
        self.procs.append(proc)
        self.s3_endpoint = f"http://127.0.0.1:{port}"
        wait_for(self.s3_endpoint + "/moto-api/", proc, "moto's S3 server", log_path, seconds=60)
        # the bucket the tests upload to
        request = urllib.request.Request(f"{self.s3_endpoint}/{BUCKET}", method="PUT")
        urllib.request.urlopen(request, timeout=10)

    def access_log(self):
        """The lines nginx has logged so far: (method, status, body bytes, range)."""
        path = os.path.join(self.tmp, "access.log")
        if not os.path.exists(path):
            return []
        out = []
        with open(path) as f:
            for line in f:
                method, status, sent, rng = line.rstrip("\n").split(" ", 3)
                out.append((method, int(status), int(sent), rng.strip('"')))
        return out

    def env(self):
        return {
            "TORCHFITS_TEST_HTTP_ROOT": self.root,
            "TORCHFITS_TEST_HTTP_URL": self.http_url,
            "TORCHFITS_TEST_S3_ENDPOINT": self.s3_endpoint,
            "TORCHFITS_TEST_S3_BUCKET": BUCKET,
            "AWS_ENDPOINT": self.s3_endpoint,
            "AWS_ALLOW_HTTP": "true",
            "AWS_REGION": "us-east-1",
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
        }

    def stop(self):
        for proc in self.procs:
            with contextlib.suppress(OSError):
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
        shutil.rmtree(self.tmp, ignore_errors=True)


def main():
    args = sys.argv[1:]
    if args[:1] == ["--"]:
        args = args[1:]
    if not args:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        servers = Servers()
    except Exception as e:  # a server that cannot start fails the run
        print(f"remote_servers: {e}", file=sys.stderr)
        return 2
    print(f"remote_servers: nginx at {servers.http_url}, moto S3 at {servers.s3_endpoint}", file=sys.stderr)
    try:
        return subprocess.call(args, env={**os.environ, **servers.env()})
    finally:
        servers.stop()


if __name__ == "__main__":
    sys.exit(main())
