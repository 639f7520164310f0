#!/usr/bin/env bash
# The main job: set up, then walk the IAM-auth scenario against the bundled local emulator.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/rdsiamkit demo "$@"
