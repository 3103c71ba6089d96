"""What a /metrics scrape costs with N live cameras (see scripts/bench-metrics.sh).

One vigia and one camsim on loopback; N cameras added and pulled (live view started, no
player: the frames flow through the sessions). Then ROUNDS pairs of WINDOW-second windows,
interleaved: one with nobody scraping, one with a client scraping back to back. The CPU time
vigia used (utime+stime from /proc) in each window gives the cost of one scrape:
(cpu_scraping - cpu_quiet) / scrapes. Prints a table of every round and the medians.
  python3 scripts/bench-metrics.py [CAMERAS] [ROUNDS] [WINDOW]
BENCH_PERF=<file> first records vigia with perf while a client scrapes (where a scrape goes);
BENCH_LOG=<file> keeps vigia's log.
"""

import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

BIN = os.environ["VIGIA_BIN"]
TOKEN = "bench-metrics-token-0123456789"
TICK = os.sysconf("SC_CLK_TCK")
SCRAPE_LOOP = """
import sys, time, urllib.request
base, token, secs = sys.argv[1], sys.argv[2], float(sys.argv[3])
t0 = time.monotonic()
while time.monotonic() - t0 < secs:
    urllib.request.urlopen(urllib.request.Request(base + "/metrics", headers={"Authorization": "Bearer " + token})).read()
"""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def call(base, method, path, body=None, token=None):
    req = urllib.request.Request(base + path, data=None if body is None else json.dumps(body).encode(), method=method)
    req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.loads(r.read() or b"null")


class Keepalive:
    """GETs on one kept-alive connection, as Prometheus scrapes."""

    def __init__(self, port, path, token=None):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        self.path, self.headers = path, ({"Authorization": f"Bearer {token}"} if token else {})

    def get(self):
        self.conn.request("GET", self.path, headers=self.headers)
        r = self.conn.getresponse()
        body = r.read()
        assert r.status == 200, (r.status, body[:200])
        return body


def cpu_secs(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def main():
    cams = int(sys.argv[1]) if len(sys.argv) > 1 else 128
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 6
    window = float(sys.argv[3]) if len(sys.argv) > 3 else 5.0
    sim = subprocess.Popen([BIN, "camsim", "--listen", "127.0.0.1:0"], stdout=subprocess.PIPE,
                           stderr=subprocess.DEVNULL, text=True)
    sim_port = int(sim.stdout.readline().split()[1])
    port = free_port()
    data = tempfile.mkdtemp(prefix="vigia-bench-metrics-")
    env = dict(os.environ, LISTEN_ADDR=f"127.0.0.1:{port}", DATA_DIR=data, LOG_LEVEL="warn",
               MAX_STREAMS=str(max(cams, 1)), STREAM_TIMEOUT="3600", METRICS_TOKEN=TOKEN)
    vigia = subprocess.Popen([BIN, "serve"], env=env, stdout=subprocess.DEVNULL, stderr=open(os.environ.get("BENCH_LOG", os.devnull), "w"))
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                call(base, "GET", "/health")
                break
            except OSError:
                time.sleep(0.05)
        call(base, "POST", "/api/auth/register", {"username": "admin", "password": "bench-password-1"})
        admin = call(base, "POST", "/api/auth/login", {"username": "admin", "password": "bench-password-1"})["token"]
        for i in range(cams):
            ip = f"127.0.{10 + i // 250}.{1 + i % 250}"
            call(base, "POST", "/api/cameras", {"ip": ip, "rtsp_url": f"rtsp://127.0.0.1:{sim_port}/cam{i}"}, admin)
            call(base, "GET", f"/api/cameras/stream/{ip}", token=admin)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            live = sum(1 for c in call(base, "GET", "/api/cameras/list", token=admin)["cameras"]
                       if c["stream"]["state"] == "live")
            if live == cams:
                break
            time.sleep(0.5)
        text = urllib.request.urlopen(urllib.request.Request(base + "/metrics", headers={"Authorization": f"Bearer {TOKEN}"})).read()
        lines = text.count(b"\n")
        print(f"bench-metrics: {live} of {cams} cameras live; one scrape is {len(text)} bytes, {lines} lines")
        print(f"{'round':>5} {'quiet cpu ms/s':>15} {'/metrics cpu us':>16} {'p50 ms':>7} {'/health cpu us':>15} {'p50 ms':>7}")
        rows = []
        for r in range(rounds):
            c0 = cpu_secs(vigia.pid)
            time.sleep(window)
            quiet = (cpu_secs(vigia.pid) - c0) / window
            row = [quiet]
            for path, token in (("/metrics", TOKEN), ("/health", None)):
                client = Keepalive(port, path, token)
                c0, t0, n, lat = cpu_secs(vigia.pid), time.monotonic(), 0, []
                while time.monotonic() - t0 < window:
                    s = time.monotonic()
                    client.get()
                    lat.append(time.monotonic() - s)
                    n += 1
                busy = time.monotonic() - t0
                used = cpu_secs(vigia.pid) - c0
                row += [(used - quiet * busy) / n, statistics.median(lat)]
            rows.append(row)
            print(f"{r + 1:>5} {quiet * 1000:>15.1f} {row[1] * 1e6:>16.0f} {row[2] * 1000:>7.2f} {row[3] * 1e6:>15.0f} {row[4] * 1000:>7.2f}")
        med = [statistics.median(col) for col in zip(*rows)]
        print(f"median over {rounds} rounds, {cams} live cameras: a scrape costs vigia {med[1] * 1e6:.0f} us of CPU "
              f"({med[2] * 1000:.2f} ms at the client); a /health request {med[3] * 1e6:.0f} us ({med[4] * 1000:.2f} ms)")
    finally:
        vigia.terminate()
        sim.terminate()


if __name__ == "__main__":
    main()
