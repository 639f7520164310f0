#!/usr/bin/env bash
# The whole test suite: lint, format, types, unit + integration tests on the emulator, docs.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export CI=${CI:-true}   # integration tests must run, never skip
export NO_MKDOCS_2_WARNING=1
status=0
step() { echo "==> $*"; "$@" || status=1; }
step .venv/bin/ruff check .
step .venv/bin/ruff format --check .
step .venv/bin/mypy --strict src
if [ -f mkdocs.yml ]; then
    # The site goes to a temp dir that is removed however the script ends.
    site_dir=$(mktemp -d)
    trap 'rm -rf "$site_dir"' EXIT
    step .venv/bin/mkdocs build --strict --quiet --site-dir "$site_dir"
fi
step .venv/bin/python -m pytest -p no:cacheprovider "$@"
exit $status
