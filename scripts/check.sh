#!/usr/bin/env bash
# Static checks, then the test suite. Any failure (or a run with no tests) exits non-zero.
set -euo pipefail
cd "$(dirname "$0")/.."
echo "== API: buf lint, format, breaking, CHANGELOG"
bash scripts/check_api.sh
echo "== ruff"
ruff check .
ruff format --check .
echo "== mypy"
targets=()
for d in service web_bridge clients benchmarks scripts; do [ -d "$d" ] && targets+=("$d"); done
mypy "${targets[@]}"
echo "== pytest"
set +e
python -m pytest "$@"
rc=$?
set -e
if [ "$rc" -eq 5 ]; then echo "pytest collected no tests: failing"; exit 1; fi
exit "$rc"
