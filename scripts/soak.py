#!/usr/bin/env python3
"""A soak under faults, with numbers: run by scripts/soak.sh [MINUTES] (default 30).

One release vigia (redb, RECORDING_SEGMENT_SECONDS=60) and one camsim serving 64 cameras, a
quarter of them with faults cycling:
  drop   4 hang up every 20 s                      (camsim drop20)
  stall  3 stop sending after 20 s, socket open    (stall20)
  jump   3 timestamps 5 s back every 15 s          (jump15)
  switch 3 new resolution after 10 s, drop at 30 s (switch10/drop30)
  silent 3 answer PLAY and never send media        (stall0)
All 64 are recorded continuously; 32 LL-HLS players (blocking playlist reload, then the part,
as hls.js does at the live edge) join a random camera for 15-45 s, leave, and join another; an
API client lists cameras and recordings pages, logs in and starts/stops streams twice a second.

Every 10 s: RSS, open descriptors, threads, and /stats counters. At the end: every recording
is stopped, every closed file is decoded by ffmpeg, and per camera the recorded seconds are
checked against the seconds the camera sent media (camsim's SESSION/END events, less what a
fault withholds) minus (1.5 s + one GOP) per outage. Passes when: no panic, no 5xx (a 503 for
a player that joins a camera in an outage, "no segment yet", is reported apart: that is the
answer it should get), RSS and descriptors flat over the last half (slopes printed, Theil-Sen; the fitted
change over the half at most max(4 MiB, 5 % of RSS) and 16 descriptors), every
closed recording decodes with 0 errors, and no camera below its recorded floor.

Writes the samples (CSV) and a plot of RSS and descriptors over time (SVG) to SOAK_OUT
(default: a temporary directory), prints a Markdown table, exits 1 on any failure.
"""
import csv
import json
import os
import random
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MINUTES = float(sys.argv[1]) if len(sys.argv) > 1 else 30.0
BIN = os.environ.get("VIGIA_BIN", os.path.join(ROOT, "target/release/vigia"))
OUT = os.environ.get("SOAK_OUT") or tempfile.mkdtemp(prefix="vigia-soak-")
SAMPLE_EVERY = 10.0
GOP = 1.0  # camsim's fixture
PER_OUTAGE = 1.5 + GOP
PASSWORD = "soak-pass-1"

# (kind, count, camsim options, seconds of media per session: None = all of it)
KINDS = [
    ("steady", 48, "", None),
    ("drop", 4, "drop20", None),
    ("stall", 3, "stall20", 20.0),
    ("jump", 3, "jump15", None),
    ("switch", 3, "switch10/drop30", None),
    ("silent", 3, "stall0", 0.0),
]


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


class Api:
    def __init__(self, base):
        self.base = base
        self.token = None
        self.lock = threading.Lock()
        self.statuses = {}

    def call(self, method, path, body=None, token=True, timeout=30, count=True):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, data=data, method=method)
        req.add_header("content-type", "application/json")
        if token and self.token:
            req.add_header("authorization", "Bearer " + self.token)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                st, raw = r.status, r.read()
        except urllib.error.HTTPError as e:
            st, raw = e.code, e.read()
        if count:
            with self.lock:
                self.statuses[st] = self.statuses.get(st, 0) + 1
        try:
            return st, json.loads(raw or b"null")
        except ValueError:
            return st, raw


class Cameras:
    """camsim with --events: when each camera's sessions began and ended."""

    def __init__(self):
        self.proc = subprocess.Popen(
            [BIN, "camsim", "--events", "--listen", "127.0.0.1:0"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )
        self.port = int(self.proc.stdout.readline().split()[1])
        self.sessions = {}  # name -> [[start, end or None]]
        self.lock = threading.Lock()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            now = time.monotonic()
            kind, _, name = line.strip().partition(" ")
            name = name.lstrip("/")
            with self.lock:
                if kind == "SESSION":
                    self.sessions.setdefault(name, []).append([now, None])
                elif kind == "END":
                    open_ = [s for s in self.sessions.get(name, []) if s[1] is None]
                    if open_:
                        open_[0][1] = now

    def media_seconds(self, name, limit, t0, t1):
        """Seconds camera `name` sent media within [t0, t1], and the outages in between."""
        with self.lock:
            ss = [list(s) for s in self.sessions.get(name, [])]
        up, n = 0.0, 0
        for start, end in ss:
            end = end or t1
            media_end = end if limit is None else min(end, start + limit)
            a, b = max(start, t0), min(media_end, t1)
            if b > a:
                up += b - a
                n += 1
        return up, max(n - 1, 0)

    def stop(self):
        self.proc.kill()
        self.proc.wait()


def proc_sample(pid):
    st = open(f"/proc/{pid}/status").read()
    rss = int(re.search(r"VmRSS:\s+(\d+)", st).group(1))
    threads = int(re.search(r"Threads:\s+(\d+)", st).group(1))
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    return rss, fds, threads


def slope_per_hour(ts, ys):
    """Theil-Sen slope of ys over ts (seconds), per hour: the median of the slopes between
    every two samples, so one sample taken while a login hashes (argon2 maps 19 MiB for
    ~50 ms) cannot tilt the fit the way it tilts least squares over a short run."""
    if len(ts) < 3:
        return 0.0
    slopes = [(ys[j] - ys[i]) / (ts[j] - ts[i])
              for i in range(len(ts)) for j in range(i + 1, len(ts)) if ts[j] != ts[i]]
    return 3600.0 * statistics.median(slopes) if slopes else 0.0


def player(api, cams, stop, stats, lock):
    """An LL-HLS player at the live edge that joins, watches 15-45 s, leaves, and again."""
    rnd = random.Random()
    while not stop.is_set():
        ip, kind = rnd.choice(cams)
        st, v = api.call("GET", f"/api/cameras/stream/{ip}")
        if st != 200:
            time.sleep(1)
            continue
        url = v["hls_url"] if v["hls_url"].startswith("http") else api.base + v["hls_url"]
        base, _, query = url.partition("?")
        base = base.rsplit("/", 1)[0]
        until = time.monotonic() + rnd.uniform(15, 45)
        msn = part = None
        while time.monotonic() < until and not stop.is_set():
            q = f"{url}&_HLS_msn={msn}&_HLS_part={part}" if msn is not None else url
            code, body = get(q)
            with lock:
                stats["requests"] += 1
                if code >= 500:
                    outage = code == 503 and kind != "steady" and b"not produced a segment" in body
                    key = "503_outage" if outage else str(code)
                    stats["5xx"][key] = stats["5xx"].get(key, 0) + 1
                elif code >= 400:
                    stats["4xx"][code] = stats["4xx"].get(code, 0) + 1
            if code != 200:
                time.sleep(1)
                msn = None
                continue
            m = re.search(rb'#EXT-X-PRELOAD-HINT:TYPE=PART,URI="part(\d+)\.(\d+)\.m4s', body)
            if not m:
                time.sleep(0.5)
                continue
            msn, part = int(m.group(1)), int(m.group(2))
            code, data = get(f"{base}/part{msn}.{part}.m4s?{query}")
            with lock:
                stats["requests"] += 1
                if code == 200:
                    stats["parts"] += 1
                    stats["bytes"] += len(data)
                elif code >= 500:
                    stats["5xx"][str(code)] = stats["5xx"].get(str(code), 0) + 1
                else:
                    stats["4xx"][code] = stats["4xx"].get(code, 0) + 1
        time.sleep(rnd.uniform(1, 6))


def get(url):
    try:
        with urllib.request.urlopen(url, timeout=30) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except Exception:
        return 599, b""


def api_client(api, ips, stop):
    rnd = random.Random(7)
    while not stop.is_set():
        op = rnd.randrange(6)
        if op == 0:
            api.call("GET", "/api/cameras/list")
        elif op == 1:
            api.call("GET", f"/api/nvr/recordings?limit=50&offset={rnd.randrange(0, 200)}")
        elif op == 2:
            api.call("POST", "/api/auth/login", {"username": "admin", "password": PASSWORD}, token=False)
        elif op == 3:
            api.call("GET", f"/api/cameras/stream/{rnd.choice(ips)}")
        elif op == 4:
            api.call("DELETE", f"/api/cameras/stream/{rnd.choice(ips)}")
        else:
            api.call("GET", "/stats")
        time.sleep(0.5)


def svg(samples, path):
    """RSS (MiB, with and without the HLS windows) and open descriptors over minutes."""
    w, h, pad = 760, 200, 50
    t = [s["t"] / 60 for s in samples]
    tmax = max(t) or 1
    panels = [
        ("memory (MiB)", [("rss_mib", "RSS", "#1f77b4"), ("rss_less_windows_mib", "RSS less HLS windows", "#2ca02c")]),
        ("open descriptors", [("fds", "descriptors", "#d62728")]),
    ]
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{2 * h + 40}" font-family="sans-serif" font-size="12">',
           f'<rect width="{w}" height="{2 * h + 40}" fill="white"/>']
    for i, (title, series) in enumerate(panels):
        top = 20 + i * (h + 20)
        hi = max(s[k] for s in samples for k, _, _ in series) * 1.15 or 1
        x = lambda v: pad + (w - 2 * pad) * v / tmax
        y = lambda v: top + h - 30 - (h - 40) * v / hi
        out.append(f'<text x="{pad}" y="{top}">{title} over {tmax:.1f} minutes</text>')
        out.append(f'<line x1="{pad}" y1="{y(0)}" x2="{w - pad}" y2="{y(0)}" stroke="#888"/>')
        out.append(f'<line x1="{pad}" y1="{y(0)}" x2="{pad}" y2="{y(hi)}" stroke="#888"/>')
        for frac in (0.0, 0.5, 1.0):
            out.append(f'<text x="{pad - 6}" y="{y(hi * frac) + 4}" text-anchor="end">{hi * frac:.0f}</text>')
        step = max(1, int(tmax) // 10)
        for m in range(0, int(tmax) + 1, step):
            out.append(f'<text x="{x(m)}" y="{y(0) + 16}" text-anchor="middle">{m}</text>')
        for k, (key, label, color) in enumerate(series):
            pts = " ".join(f"{x(a):.1f},{y(s[key]):.1f}" for a, s in zip(t, samples))
            out.append(f'<polyline fill="none" stroke="{color}" stroke-width="2" points="{pts}"/>')
            out.append(f'<text x="{w - pad - 160}" y="{top + 16 + 14 * k}" fill="{color}">{label}</text>')
    out.append(f'<text x="{w / 2}" y="{2 * h + 36}" text-anchor="middle">minutes</text></svg>')
    open(path, "w").write("\n".join(out))


def main():
    os.makedirs(OUT, exist_ok=True)
    data = tempfile.mkdtemp(prefix="vigia-soak-data-")
    sim = Cameras()
    port = free_port()
    env = dict(os.environ, LISTEN_ADDR=f"127.0.0.1:{port}", DATA_DIR=data, LOG_LEVEL="info",
               SECRET_KEY="soak-secret-key-0123456789abcdef-0123456789", MAX_STREAMS="128",
               RECORDING_SEGMENT_SECONDS="60", MIN_FREE_DISK_MB="64", STREAM_TIMEOUT="30")
    log = open(os.path.join(OUT, "vigia.log"), "w")
    vigia = subprocess.Popen([BIN, "serve"], env=env, stdout=subprocess.DEVNULL, stderr=log)
    api = Api(f"http://127.0.0.1:{port}")
    for _ in range(200):
        try:
            if api.call("GET", "/health", count=False)[0] == 200:
                break
        except OSError:
            time.sleep(0.05)
    api.call("POST", "/api/auth/register", {"username": "admin", "password": PASSWORD}, count=False)
    api.token = api.call("POST", "/api/auth/login", {"username": "admin", "password": PASSWORD}, count=False)[1]["token"]

    cams = []  # (ip, name, kind, limit)
    n = 0
    for kind, count, opts, limit in KINDS:
        for _ in range(count):
            n += 1
            name = f"{kind}{n}"
            path = f"{name}/audio/{opts}" if n % 2 else f"{name}/{opts}"
            ip = f"127.0.8.{n}"
            st, v = api.call("POST", "/api/cameras", {"ip": ip, "name": name, "rtsp_url": f"rtsp://127.0.0.1:{sim.port}/{path.rstrip('/')}"}, count=False)
            assert st == 201, v
            cams.append((ip, name, kind, limit))
    span = {}  # ip -> [recording asked, recording stopped]
    for ip, *_ in cams:
        span[ip] = [time.monotonic(), None]
        st, v = api.call("POST", f"/api/nvr/record/{ip}", {}, count=False)
        assert st == 201, v

    stop = threading.Event()
    pstats = {"requests": 0, "parts": 0, "bytes": 0, "5xx": {}, "4xx": {}}
    plock = threading.Lock()
    watchable = [(ip, kind) for ip, _, kind, _ in cams if kind != "silent"]
    threads = [threading.Thread(target=player, args=(api, watchable, stop, pstats, plock), daemon=True) for _ in range(32)]
    threads.append(threading.Thread(target=api_client, args=(api, [c[0] for c in cams], stop), daemon=True))
    for t in threads:
        t.start()

    samples = []
    t0 = time.monotonic()
    end = t0 + MINUTES * 60
    while True:
        now = time.monotonic()
        rss, fds, nthreads = proc_sample(vigia.pid)
        st, stats = api.call("GET", "/stats", count=False)
        s = {"t": now - t0, "rss_mib": rss / 1024, "fds": fds, "threads": nthreads}
        if st == 200:
            s.update(streams=stats["streams"]["active"], window_mib=stats["streams"]["hls_window_bytes"] / 1048576,
                     recording=stats["recordings"]["running"], frames_out=stats["recordings"]["frames_out"])
        samples.append(s)
        print(f"  {s['t'] / 60:5.1f} min  rss {s['rss_mib']:6.1f} MiB  fds {fds:4d}  threads {nthreads:3d}  "
              f"streams {s.get('streams')}  window {s.get('window_mib', 0):.1f} MiB  players' parts {pstats['parts']}", flush=True)
        if now >= end or vigia.poll() is not None:
            break
        time.sleep(max(0.0, min(SAMPLE_EVERY, end - time.monotonic())))
    stop.set()
    for ip, *_ in cams:
        api.call("DELETE", f"/api/nvr/record/{ip}", count=False)
        span[ip][1] = time.monotonic()
    for t in threads:
        t.join(timeout=60)
    deadline = time.monotonic() + 60
    rows = []
    while time.monotonic() < deadline:
        rows = []
        offset = 0
        while True:
            st, v = api.call("GET", f"/api/nvr/recordings?limit=500&offset={offset}", count=False)
            rows += v["recordings"]
            if len(v["recordings"]) < 500:
                break
            offset += 500
        if all(r["status"] != "recording" for r in rows):
            break
        time.sleep(1)

    # every closed file decodes without a word (two at a time, one thread each)
    paths = sorted(os.path.join(d, f) for d, _, fs in os.walk(os.path.join(data, "recordings")) for f in fs)
    bad = []
    lock = threading.Lock()

    def decode(chunk):
        for p in chunk:
            out = subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-threads", "1", "-i", p, "-f", "null", "-"],
                                 capture_output=True, text=True)
            if out.returncode != 0 or out.stderr.strip():
                with lock:
                    bad.append((p, out.stderr.strip()[:300]))
    workers = [threading.Thread(target=decode, args=(paths[i::2],)) for i in range(2)]
    for wk in workers:
        wk.start()
    for wk in workers:
        wk.join()

    # recorded seconds against what each camera sent
    short = []
    per_kind = {}
    for ip, name, kind, limit in cams:
        up, outages = sim.media_seconds(name, limit, *span[ip])
        recorded = sum(r["duration_sec"] for r in rows if r["camera_ip"] == ip)
        floor = up - GOP - outages * PER_OUTAGE - 1.0
        k = per_kind.setdefault(kind, {"up": 0.0, "recorded": 0.0, "outages": 0, "cams": 0})
        k["up"] += up
        k["recorded"] += recorded
        k["outages"] += outages
        k["cams"] += 1
        if recorded < floor:
            short.append((name, round(up, 1), round(recorded, 1), outages))

    vigia.terminate()
    try:
        vigia.wait(timeout=30)
    except subprocess.TimeoutExpired:
        vigia.kill()
    sim.stop()
    log.close()
    logtext = open(os.path.join(OUT, "vigia.log")).read()
    panics = logtext.count("panicked")

    with open(os.path.join(OUT, "soak.csv"), "w", newline="") as f:
        wr = csv.DictWriter(f, fieldnames=sorted({k for s in samples for k in s}))
        wr.writeheader()
        wr.writerows(samples)
    for s in samples:
        s["rss_less_windows_mib"] = s["rss_mib"] - s.get("window_mib", 0)
    svg(samples, os.path.join(OUT, "soak.svg"))

    half = [s for s in samples if s["t"] >= samples[-1]["t"] / 2]
    rss_slope = slope_per_hour([s["t"] for s in half], [s["rss_mib"] for s in half])
    fd_slope = slope_per_hour([s["t"] for s in half], [s["fds"] for s in half])
    span_h = (half[-1]["t"] - half[0]["t"]) / 3600 if len(half) > 1 else 0
    rss_mean = statistics.fmean(s["rss_mib"] for s in half)
    # the LL-HLS windows of the cameras being watched come and go with the players: RSS less
    # the windows is what the process itself keeps
    own_slope = slope_per_hour([s["t"] for s in half], [s["rss_mib"] - s.get("window_mib", 0) for s in half])
    api5xx = sum(c for st, c in api.statuses.items() if st >= 500)
    hard5xx = {k: v for k, v in pstats["5xx"].items() if k != "503_outage"}
    checks = [
        ("no panic in the log", panics == 0, f"{panics}"),
        ("no 5xx to the API client", api5xx == 0, f"{api5xx} of {sum(api.statuses.values())} ({dict(sorted(api.statuses.items()))})"),
        ("no 5xx to players (but 503 'no segment yet' on a camera in an outage)", not hard5xx,
         f"{sum(hard5xx.values())} of {pstats['requests']}; outage 503s: {pstats['5xx'].get('503_outage', 0)}; 4xx: {pstats['4xx']}"),
        ("RSS flat over the last half", abs(rss_slope) * span_h <= max(4.0, 0.05 * rss_mean),
         f"{rss_slope:+.2f} MiB/h (mean {rss_mean:.1f} MiB)"),
        ("descriptors flat over the last half", abs(fd_slope) * span_h <= 16, f"{fd_slope:+.1f} fds/h"),
        ("every closed recording decodes with 0 errors", not bad and len(paths) > 0, f"{len(paths)} files, {len(bad)} bad {bad[:3]}"),
        ("recorded ≥ camera-up − (1.5 s + GOP) per outage, every camera", not short, f"{len(short)} short {short[:5]}"),
    ]
    cpu = open("/proc/cpuinfo").read()
    model = (re.search(r"model name\s*:\s*(.*)", cpu) or [None, "?"])[1]
    print()
    print(f"# soak, {MINUTES:g} min, {time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores, {model}")
    print(f"64 cameras recorded (16 with faults), 32 LL-HLS players joining and leaving, an API client; "
          f"samples, log and plot in {OUT}")
    print()
    print("| measure | value |")
    print("|---|---|")
    rs = [s["rss_mib"] for s in samples]
    fd = [s["fds"] for s in samples]
    th = [s["threads"] for s in samples]
    print(f"| RSS first / median / max / last | {rs[0]:.1f} / {statistics.median(rs):.1f} / {max(rs):.1f} / {rs[-1]:.1f} MiB |")
    print(f"| RSS slope over the last half | {rss_slope:+.2f} MiB/h (less the HLS windows: {own_slope:+.2f} MiB/h) |")
    print(f"| descriptors min / median / max / last | {min(fd)} / {statistics.median(fd):.0f} / {max(fd)} / {fd[-1]} |")
    print(f"| descriptor slope over the last half | {fd_slope:+.1f} /h |")
    print(f"| threads min / max | {min(th)} / {max(th)} |")
    print(f"| player requests / parts / MiB | {pstats['requests']} / {pstats['parts']} / {pstats['bytes'] / 1048576:.0f} |")
    print(f"| API requests (statuses) | {sum(api.statuses.values())} {dict(sorted(api.statuses.items()))} |")
    print(f"| recordings closed / files decoded | {len(rows)} / {len(paths)} |")
    for kind, k in per_kind.items():
        pct = 100 * k["recorded"] / k["up"] if k["up"] else 0
        print(f"| {kind} cameras ({k['cams']}): media sent / recorded / outages | {k['up']:.0f} s / {k['recorded']:.0f} s ({pct:.1f} %) / {k['outages']} |")
    print()
    print("| check | pass | detail |")
    print("|---|---|---|")
    for name, ok, detail in checks:
        print(f"| {name} | {'yes' if ok else 'NO'} | {detail} |")
    failed = [c for c in checks if not c[1]]
    if failed:
        print(f"recordings and store kept for a look: {data}")
    else:
        shutil.rmtree(data, ignore_errors=True)
    print(f"soak: {len(checks) - len(failed)} passed, {len(failed)} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
