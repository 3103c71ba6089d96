#!/usr/bin/env bash
# Installs what the test suite needs on a fresh Debian machine (run as root, or with sudo).
# Each package is installed only when missing, so a warm machine spends no time here.
set -euo pipefail

# Debian packages the tests use (tools the tests drive as independent peers).
PACKAGES=(
  ca-certificates
  postgresql
  postgresql-client
  # independent RTSP cameras (GStreamer rtsp-server, run with /usr/bin/python3) and the judge
  gstreamer1.0-rtsp
  gir1.2-gst-rtsp-server-1.0
  gstreamer1.0-plugins-base
  gstreamer1.0-plugins-good
  gstreamer1.0-plugins-ugly
  gstreamer1.0-plugins-bad
  gstreamer1.0-libav
  gstreamer1.0-tools
  python3-gi
  ffmpeg
  # the old Flask backend's database, written by SQLAlchemy with bcrypt and Fernet, for the
  # import test (tests/flask/fixture.py)
  python3-sqlalchemy
  python3-psycopg2
  python3-bcrypt
  python3-cryptography
  # a virtual environment for the PyPI tools below (schemathesis, prometheus_client)
  python3-venv
  # a real browser for hls.js (without --no-install-recommends it pulls an mDNS daemon)
  chromium
  # network namespaces for the silent-range discovery test (unshare, ip)
  util-linux
  iproute2
  # the appliance tests: systemd-analyze for the unit; a loop-mounted ext4 frozen with
  # fsfreeze for the stalled-recorder watchdog test
  systemd
  e2fsprogs
  mount
)

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
missing=()
for p in "${PACKAGES[@]}"; do
  [[ $p == \#* ]] && continue
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "test-deps: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# Node.js comes with the machine image; Debian's is the fallback
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "test-deps: installing nodejs npm"
  DEBIAN_FRONTEND=noninteractive ${SUDO:-} apt-get install -y -qq --no-install-recommends nodejs npm
fi
# hls.js and playwright-core for the browser test, at the versions package-lock.json pins
browser="$(cd "$(dirname "$0")/../tests/browser" && pwd)"
if [ ! -d "$browser/node_modules/hls.js" ] || [ ! -d "$browser/node_modules/playwright-core" ]; then
  echo "test-deps: npm ci in tests/browser"
  (cd "$browser" && npm ci --no-audit --no-fund --loglevel=error)
fi

# schemathesis (the API's conformance to its OpenAPI document) and prometheus_client (an
# independent parser of /metrics), at the versions tests/api/requirements.txt pins, in a
# virtual environment of the project's own
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="$root/target/pyenv"
if ! cmp -s "$root/tests/api/requirements.txt" "$venv/.installed" 2>/dev/null; then
  echo "test-deps: pip install -r tests/api/requirements.txt into target/pyenv"
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check -r "$root/tests/api/requirements.txt"
  cp "$root/tests/api/requirements.txt" "$venv/.installed"
fi
