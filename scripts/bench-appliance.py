#!/usr/bin/env python3
"""The appliance budgets, measured and printed as a table:

  - stripped aarch64 release binary (lean and with `postgres`), and where its bytes go
    (symbol sizes of the unstripped binary summed per crate);
  - idle RSS of the lean x86_64 release binary after start (no aarch64 box here: qemu-user's
    RSS would be the emulator's);
  - start to READY=1 (sd_notify) with 10 000 recordings in the store, median of 7;
  - bytes written to disk (/proc/<pid>/io write_bytes) during 60 s of live viewing only.

  ./scripts/bench-appliance.py [seconds-of-live-view]   (needs scripts/test-arm.sh's toolchain)
"""
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LIVE_SECS = int(sys.argv[1]) if len(sys.argv) > 1 else 60
TARGET = "aarch64-unknown-linux-gnu"


def sh(*cmd, **kw):
    return subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True, text=True, **kw).stdout


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def api(base, method, path, token=None, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(base + path, data=data, method=method)
    req.add_header("content-type", "application/json")
    if token:
        req.add_header("authorization", "Bearer " + token)
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read() or b"null")


def serve_with_admin(binary, data):
    """Starts vigia on a fresh port and DATA_DIR, registers and logs in the admin."""
    port = free_port()
    p = start(binary, {"LISTEN_ADDR": f"127.0.0.1:{port}", "DATA_DIR": data, "LOG_LEVEL": "warn"})
    base = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            api(base, "GET", "/health")
            break
        except Exception:
            time.sleep(0.05)
    api(base, "POST", "/api/auth/register", body={"username": "admin", "password": "bench-pass-1"})
    tok = api(base, "POST", "/api/auth/login", body={"username": "admin", "password": "bench-pass-1"})["token"]
    return p, base, tok


def sizes():
    out = {}
    for name, feats in [("lean", []), ("postgres", ["--features", "postgres"])]:
        sh("cargo", "build", "--release", "--locked", "-q", "--target", TARGET, *feats)
        dst = f"target/vigia-aarch64-{name}"
        sh("aarch64-linux-gnu-strip", "-o", dst, f"target/{TARGET}/release/vigia")
        out[name] = os.path.getsize(os.path.join(ROOT, dst))
        if name == "lean":
            syms = sh("aarch64-linux-gnu-nm", "-C", "--size-sort", "--print-size", f"target/{TARGET}/release/vigia")
            per = {}
            for line in syms.splitlines():
                parts = line.split(None, 3)
                if len(parts) < 4 or parts[2].lower() not in "tdrb":
                    continue
                size = int(parts[1], 16)
                m = re.match(r"(?:<)?(?:&?(?:mut )?)?([a-zA-Z_][a-zA-Z0-9_]*)::", parts[3])
                crate = m.group(1) if m else "(C, std internals, other)"
                per[crate] = per.get(crate, 0) + size
            out["by_crate"] = sorted(per.items(), key=lambda kv: -kv[1])[:12]
    return out


def start(binary, env, notify=None):
    e = dict(os.environ)
    e.update(env)
    if notify:
        e["NOTIFY_SOCKET"] = notify
    return subprocess.Popen([binary, "serve"], env=e, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def ready_times(binary, data_dir, runs=7):
    times = []
    for _ in range(runs):
        sock_path = os.path.join(data_dir, "notify.sock")
        if os.path.exists(sock_path):
            os.unlink(sock_path)
        s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        s.bind(sock_path)
        s.settimeout(10)
        t0 = time.monotonic()
        p = start(binary, {"LISTEN_ADDR": f"127.0.0.1:{free_port()}", "DATA_DIR": data_dir, "LOG_LEVEL": "warn"}, sock_path)
        while True:
            msg = s.recv(4096).decode()
            if "READY=1" in msg:
                times.append((time.monotonic() - t0) * 1000)
                break
        p.terminate()
        p.wait()
        s.close()
    return times


def main():
    sh("cargo", "build", "--release", "--locked", "-q", "--bin", "vigia", "--example", "seed_recordings")
    native = os.path.join(ROOT, "target/release/vigia")
    s = sizes()
    res = {}
    with tempfile.TemporaryDirectory() as work:
        # idle RSS: started, a login done, 5 s later
        p, _, _ = serve_with_admin(native, os.path.join(work, "idle"))
        time.sleep(5)
        res["idle_rss_kib"] = int(re.search(r"VmRSS:\s+(\d+)", open(f"/proc/{p.pid}/status").read()).group(1))
        p.terminate()
        p.wait()

        # start to READY with 10 000 recordings
        data = os.path.join(work, "seeded")
        os.makedirs(data)
        sh(os.path.join(ROOT, "target/release/examples/seed_recordings"), data, "10000")
        res["ready_ms"] = ready_times(native, data)

        # bytes written while only watching live
        sim = subprocess.Popen([native, "camsim", "--listen", "127.0.0.1:0"], stdout=subprocess.PIPE, text=True)
        sim_port = int(sim.stdout.readline().split()[1])
        p, base, tok = serve_with_admin(native, os.path.join(work, "live"))
        for i in range(4):
            api(base, "POST", "/api/cameras", tok, {"ip": f"127.0.9.{i + 1}", "rtsp_url": f"rtsp://127.0.0.1:{sim_port}/cam{i}/audio"})
        urls = [api(base, "GET", f"/api/cameras/stream/127.0.9.{i + 1}", tok)["hls_url"] for i in range(4)]
        time.sleep(3)
        io0 = open(f"/proc/{p.pid}/io").read()
        players = [
            subprocess.Popen(["ffmpeg", "-nostdin", "-v", "error", "-i", u, "-t", str(LIVE_SECS), "-f", "null", "-"])
            for u in urls
        ]
        for pl in players:
            pl.wait()
        io1 = open(f"/proc/{p.pid}/io").read()
        wb = lambda t: int(re.search(r"write_bytes:\s+(\d+)", t).group(1))
        res["live_write_bytes"] = wb(io1) - wb(io0)
        p.terminate()
        p.wait()
        sim.terminate()
        sim.wait()

    cpu = open("/proc/cpuinfo").read()
    model = (re.search(r"model name\s*:\s*(.*)", cpu) or [None, "?"])[1]
    print(f"# appliance budgets, {time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores, {model}")
    print(f"| budget | goal | measured |")
    print(f"|---|---|---|")
    print(f"| stripped aarch64 release binary (lean) | ≤ 8 MiB | {s['lean'] / 1048576:.2f} MiB ({s['lean']} bytes) |")
    print(f"| the same with `--features postgres` | - | {s['postgres'] / 1048576:.2f} MiB (+{(s['postgres'] - s['lean']) / 1048576:.2f} MiB) |")
    print(f"| idle RSS after start and a login (x86_64) | ≤ 12 MiB | {res['idle_rss_kib'] / 1024:.1f} MiB |")
    r = res["ready_ms"]
    print(f"| start to READY=1, 10 000 recordings (median of {len(r)}) | ≤ 200 ms | {statistics.median(r):.0f} ms (min {min(r):.0f}, max {max(r):.0f}) |")
    print(f"| bytes written in {LIVE_SECS} s of live view (4 cameras, 4 players) | 0 | {res['live_write_bytes']} |")
    print()
    print("largest crates in the lean aarch64 binary (symbol bytes, unstripped):")
    for crate, n in s["by_crate"]:
        print(f"  {crate:<28} {n / 1024:8.0f} KiB")


if __name__ == "__main__":
    main()
