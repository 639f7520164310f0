#!/usr/bin/env bash
# The main job: set up (the package and its testing extra only, not the dev toolchain),
# then walk the IAM-auth scenario against the bundled local emulator.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh demo
exec .venv/bin/rdsiamkit demo "$@"
