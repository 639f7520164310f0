#!/usr/bin/env bash
# Prepare this checkout on a fresh Debian/Ubuntu machine, as root; safe to run again.
# System packages: PostgreSQL server binaries (the emulator runs a real server), the
# PAM headers and a C compiler (the emulator builds its PAM module), Python venv support.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}

missing=()
for pkg in postgresql libpam0g-dev gcc libc6-dev openssl ca-certificates; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || missing+=("$pkg")
done
if ! "$PYTHON" -c 'import ensurepip, venv' 2>/dev/null; then missing+=(python3-venv); fi
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ ! -x .venv/bin/python ]; then "$PYTHON" -m venv .venv; fi
.venv/bin/python -m pip install -q --disable-pip-version-check -U pip
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[dev,sqlalchemy,bench]'
echo "setup: ready ($(.venv/bin/python --version), $(ls -d /usr/lib/postgresql/*/bin | tail -n 1))"
