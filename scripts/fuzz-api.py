"""schemathesis against a seeded vigia, once per role (see scripts/fuzz-api.sh).

Run inside a network namespace of its own (the wrapper does it): generated scan ranges then
reach nothing but this namespace's loopback. Starts camsim and a vigia (embedded store) on
loopback, seeds an admin, a user and a viewer, four cameras (two assigned to the user, one to
the viewer), a running live session, two finished recordings and one being written; then runs
schemathesis on /api/openapi.json with each role's token in turn: every operation, generated
parameters and bodies (valid and invalid), checks not_a_server_error,
status_code_conformance, content_type_conformance and response_schema_conformance.
Operations that end the caller's session (logout, password changes, user changes) run last
for each role, so the rest is tested with a live token. Exits non-zero on any failure.
  python3 scripts/fuzz-api.py EXAMPLES_PER_OPERATION
Env: VIGIA_BIN (the binary), ST (the schemathesis command), FUZZ_OUT (reports and logs),
FUZZ_CHECKS (other checks, e.g. `all`, for exploring).
"""

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

BIN = os.environ["VIGIA_BIN"]
ST = os.environ["ST"]
OUT = os.path.abspath(os.environ.get("FUZZ_OUT") or tempfile.mkdtemp(prefix="vigia-fuzz-"))
PASSWORD = "fuzz-password-1"
CHECKS = os.environ.get("FUZZ_CHECKS") or \
    "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"
# what ends or changes the caller's own session: run after everything else
LAST = ["logout", "changePassword", "updateUser", "deleteUser", "logoutAll"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Api:
    def __init__(self, base):
        self.base = base

    def call(self, method, path, body=None, token=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method)
        req.add_header("Content-Type", "application/json")
        if token:
            req.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status, json.loads(r.read() or b"null")
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"null")

    def ok(self, method, path, body=None, token=None, want=(200, 201)):
        st, v = self.call(method, path, body, token)
        if st not in want:
            sys.exit(f"fuzz-api: seeding failed: {method} {path} -> {st} {v}")
        return v


def seed(api, camsim_port):
    api.ok("POST", "/api/auth/register", {"username": "admin", "password": PASSWORD})
    admin = api.ok("POST", "/api/auth/login", {"username": "admin", "password": PASSWORD})["token"]
    uids = {}
    for name, role in (("user1", "user"), ("viewer1", "viewer")):
        v = api.ok("POST", "/api/auth/register", {"username": name, "password": PASSWORD, "role": role}, admin)
        uids[name] = v["user"]["id"]
    cams = []
    for i in range(1, 5):
        ip = f"127.0.8.{i}"
        api.ok("POST", "/api/cameras", {"ip": ip, "name": f"cam {i}", "rtsp_url": f"rtsp://127.0.0.1:{camsim_port}/cam{i}"}, admin)
        cams.append(ip)
    api.ok("POST", f"/api/users/{uids['user1']}/cameras", {"camera_ips": cams[:2]}, admin)
    api.ok("POST", f"/api/users/{uids['viewer1']}/cameras", {"camera_ips": cams[1:2]}, admin)
    api.ok("GET", f"/api/cameras/stream/{cams[0]}", token=admin)
    for cam in cams[:2]:
        api.ok("POST", f"/api/nvr/record/{cam}", {"duration": 2}, admin)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        done = api.ok("GET", "/api/nvr/recordings", token=admin)["recordings"]
        if len(done) == 2 and all(r["status"] == "completed" for r in done):
            break
        time.sleep(0.2)
    else:
        sys.exit(f"fuzz-api: the two seed recordings did not complete: {done}")
    api.ok("POST", f"/api/nvr/record/{cams[2]}", None, admin)  # continuous, left running
    tokens = {"admin": admin}
    for name in ("user1", "viewer1"):
        tokens[name] = api.ok("POST", "/api/auth/login", {"username": name, "password": PASSWORD})["token"]
    recordings = [r["id"] for r in api.ok("GET", "/api/nvr/recordings", token=admin)["recordings"]]
    return tokens, {"cameras": cams, "users": [1, *uids.values()], "recordings": recordings,
                    "files": live_files(api, admin, cams[0])}


def live_files(api, token, cam):
    """Names in the live playlist of `cam`: the init segment, a segment and a part."""
    req = urllib.request.Request(f"{api.base}/api/cameras/streams/{cam}/index.m3u8")
    req.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(req, timeout=30) as r:
        text = r.read().decode()
    names = {"index.m3u8"}
    for line in text.splitlines():
        for key in ('URI="', ""):
            at = line.find(key) if key else (0 if line and not line.startswith("#") else -1)
            if at >= 0:
                name = line[at + len(key):].split('"')[0].split("?")[0]
                if name.endswith((".mp4", ".m4s")):
                    names.add(name)
    return sorted(names)


def seeded_document(base, ids):
    """The served document, with the seeded ids as examples of the path and query parameters
    (so the examples and coverage phases reach existing cameras, users, recordings and live
    files; fuzzing still generates values of its own)."""
    with urllib.request.urlopen(f"{base}/api/openapi.json", timeout=30) as r:
        doc = json.load(r)
    for path, ops in doc["paths"].items():
        for op in ops.values():
            for p in op.get("parameters", []):
                name = p["name"]
                values = {"camera": ids["cameras"], "camera_ip": ids["cameras"], "file": ids["files"]}.get(name)
                if name == "id":
                    values = ids["users"] if path.startswith("/api/users") else ids["recordings"]
                if values:
                    p["examples"] = {f"seeded{i}": {"value": v} for i, v in enumerate(values)}
    path = os.path.join(OUT, "openapi-seeded.json")
    json.dump(doc, open(path, "w"), indent=1)
    return path


# The one 5xx the API answers by design: a live playlist of a camera that has not produced a
# segment within 20 s (the fuzzer's own changes can point the seeded camera anywhere) is a
# 503 with Retry-After, which players retry (tests/faults.rs). Everything else stays a failure.
CONFIG = """
[[operations]]
include-operation-id = "liveFile"
checks.not_a_server_error.expected-statuses = ["2xx", "3xx", "4xx", "503"]
"""


def schemathesis(base, doc, role, token, examples, last):
    select = []
    for op in LAST:
        select += ["--include-operation-id" if last else "--exclude-operation-id", op]
    name = f"{role}-{'last' if last else 'main'}"
    config = os.path.join(OUT, "schemathesis.toml")
    open(config, "w").write(CONFIG)
    cmd = [ST, "--config-file", config, "run", doc, "--url", base, "--checks", CHECKS, "-H", f"Authorization: Bearer {token}",
           "--max-examples", str(examples), "--phases", "examples,coverage,fuzzing", "--seed", "1",
           "--request-timeout", "30", "--report", "junit", "--report-junit-path", os.path.join(OUT, f"{name}.xml"),
           "--output-sanitize", "true", *select]
    print(f"== schemathesis as {role} ({'session-ending operations' if last else 'every other operation'})", flush=True)
    t0 = time.monotonic()
    # run in OUT: schemathesis keeps a cache of past failures in its working directory
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=OUT)
    log = os.path.join(OUT, f"{name}.log")
    open(log, "w").write(r.stdout)
    tail = r.stdout.strip().splitlines()
    summary = [l for l in tail if "test cases" in l.lower() or "passed" in l.lower() or "failed" in l.lower()]
    print("\n".join(summary[-4:]) or "\n".join(tail[-5:]))
    print(f"   {time.monotonic() - t0:.0f} s, exit {r.returncode}, log {log}", flush=True)
    if r.returncode != 0:
        print("\n".join(tail[-120:]))
    return r.returncode == 0


def main():
    examples = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    os.makedirs(OUT, exist_ok=True)
    data = tempfile.mkdtemp(prefix="vigia-fuzz-data-")
    sim = subprocess.Popen([BIN, "camsim", "--listen", "127.0.0.1:0"], stdout=subprocess.PIPE,
                           stderr=subprocess.DEVNULL, text=True)
    camsim_port = int(sim.stdout.readline().split()[1])
    port = free_port()
    env = dict(os.environ, LISTEN_ADDR=f"127.0.0.1:{port}", DATA_DIR=data, LOG_LEVEL="info",
               DEFAULT_NETWORK_RANGE="127.0.9.0/29", ONVIF_TIMEOUT="1", MIN_FREE_DISK_MB="16",
               METRICS_TOKEN="fuzz-metrics-token-0123456789")
    log_path = os.path.join(OUT, "vigia.log")
    vigia = subprocess.Popen([BIN, "serve"], env=env, stdout=subprocess.DEVNULL, stderr=open(log_path, "w"))
    base = f"http://127.0.0.1:{port}"
    api = Api(base)
    ok = False
    try:
        for _ in range(200):
            try:
                if api.call("GET", "/health")[0] == 200:
                    break
            except OSError:
                time.sleep(0.05)
        tokens, ids = seed(api, camsim_port)
        print(f"fuzz-api: seeded {ids}", flush=True)
        doc = seeded_document(base, ids)
        results = []
        for last in (False, True):
            for role in ("viewer1", "user1", "admin"):
                results.append(schemathesis(base, doc, role, tokens[role], examples, last))
        alive = vigia.poll() is None
        panics = [l for l in open(log_path) if "panicked" in l]
        ok = all(results) and alive and not panics
        print(f"fuzz-api: {sum(results)} of {len(results)} runs passed; server {'alive' if alive else 'DIED'}; "
              f"{len(panics)} panic line(s) in {log_path}")
    finally:
        vigia.terminate()
        sim.terminate()
        vigia.wait(timeout=30)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
