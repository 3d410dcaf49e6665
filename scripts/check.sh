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
# Two phases (tests/conftest.py SERIAL says why): the tests that may share the machine on
# TEST_WORKERS workers (pytest-xdist, one per core here), then the `serial` ones alone.
# Exit 5 is "no test selected": fine for one phase, a failure for both.
echo "== pytest (parallel: ${TEST_WORKERS:=2} workers)"
set +e
python -m pytest -n "$TEST_WORKERS" --dist loadfile -m "not serial" "$@"
rc1=$?
echo "== pytest (serial)"
python -m pytest -m serial "$@"
rc2=$?
set -e
if [ "$rc1" -eq 5 ] && [ "$rc2" -eq 5 ]; then echo "pytest collected no tests: failing"; exit 1; fi
for rc in "$rc1" "$rc2"; do
  if [ "$rc" -ne 0 ] && [ "$rc" -ne 5 ]; then exit "$rc"; fi
done
