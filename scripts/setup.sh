#!/usr/bin/env bash
# Prepare this checkout on a fresh Debian/Ubuntu machine, as root; safe to run again.
#
#   bash scripts/setup.sh [test|demo]
#
#   test (default)  everything the test command needs: the package with its dev,
#                   sqlalchemy and bench extras (linters, mypy, mkdocs, moto, drivers, ...)
#   demo            only what `rdsiamkit demo` needs: the package and its testing extra
#
# System packages: PostgreSQL server binaries (the emulator runs a real server), the
# PAM headers and a C compiler (the emulator builds its PAM module), Python venv support.
# One line per step says what is happening; pip itself stays quiet.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
what=${1:-test}
case "$what" in
  test) extras='.[dev,sqlalchemy,bench]' ;;
  demo) extras='.[testing]' ;;
  *) echo "usage: bash scripts/setup.sh [test|demo]" >&2; exit 2 ;;
esac
say() { echo "setup: $*"; }

missing=()
for pkg in postgresql libpam0g-dev gcc libc6-dev openssl ca-certificates; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || missing+=("$pkg")
done
if ! "$PYTHON" -c 'import ensurepip, venv' 2>/dev/null; then missing+=(python3-venv); fi
if ((${#missing[@]})); then
  say "updating the apt package lists"
  apt-get update -qq
  say "installing system packages: ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  say "system packages already installed (postgresql, libpam0g-dev, gcc, openssl)"
fi

if [ ! -x .venv/bin/python ]; then
  say "creating the virtualenv .venv ($("$PYTHON" --version))"
  "$PYTHON" -m venv .venv
fi
pip() { .venv/bin/python -m pip -q --disable-pip-version-check "$@"; }
# A stamp records what was installed for which pyproject.toml: a second run of the demo
# skips pip; a changed pyproject.toml installs again. The test setup always runs pip.
stamp() { echo "$1 $(sha256sum pyproject.toml | cut -d' ' -f1)"; }
if [ "$what" = demo ] && [ -x .venv/bin/rdsiamkit ] \
    && grep -qxF -e "$(stamp demo)" -e "$(stamp test)" .venv/.rdsiamkit-setup 2>/dev/null; then
  say "rdsiamkit and its testing extra already installed in .venv"
else
  if [ "$what" = test ]; then
    say "upgrading pip"
    pip install -U pip
  fi
  say "installing rdsiamkit (editable) with ${extras#.} into .venv (pip, quiet)"
  pip install -e "$extras"
  stamp "$what" > .venv/.rdsiamkit-setup
fi
say "ready ($(.venv/bin/python --version), $(ls -d /usr/lib/postgresql/*/bin | tail -n 1))"
