#!/usr/bin/env bash
# Static checks, then the test suite. Any failure (or a run with no tests) exits non-zero.
set -euo pipefail
cd "$(dirname "$0")/.."
# The run's Python processes (pytest and its workers, the servers and CLIs the tests
# start) import the same modules: let them share the compiled bytecode (__pycache__ is
# git-ignored) even where the environment turns writing it off. With it off, every
# pytest process compiled the project and rewrote the test modules again: ~6 of its
# ~9 CPU-seconds of collection.
unset PYTHONDONTWRITEBYTECODE
echo "== API: buf lint, format, breaking, CHANGELOG"
bash scripts/check_api.sh
echo "== ruff"
ruff check .
ruff format --check .
echo "== mypy"
targets=()
for d in service web_bridge clients benchmarks scripts tests; do [ -d "$d" ] && targets+=("$d"); done
mypy "${targets[@]}"
# Three phases (tests/conftest.py QUIET and ALONE say why): the tests that may share the
# machine on TEST_WORKERS workers (pytest-xdist; 3 on this 2-core host: two workers kept
# ~1.5 of its 2 cores busy, the rest of the time waiting on real-time pacing and I/O; the
# phase took 643 s at 3 against 685 s at 2 in back-to-back fresh-clone runs, ci21/ci20),
# then the `quiet` ones (Chromium and real-time streams: not beside CPU-heavy tests, but
# QUIET_WORKERS at a time), then the `alone` ones by themselves. Exit 5 is "no test
# selected": fine for a phase, a failure for all three.
echo "== pytest (parallel: ${TEST_WORKERS:=3} workers)"
set +e
python -m pytest -n "$TEST_WORKERS" --dist loadfile -m "not quiet and not alone" "$@"
rc1=$?
echo "== pytest (quiet: ${QUIET_WORKERS:=2} workers)"
python -m pytest -n "$QUIET_WORKERS" --dist loadfile -m quiet "$@"
rc2=$?
echo "== pytest (alone)"
python -m pytest -m alone "$@"
rc3=$?
set -e
if [ "$rc1" -eq 5 ] && [ "$rc2" -eq 5 ] && [ "$rc3" -eq 5 ]; then
  echo "pytest collected no tests: failing"; exit 1
fi
for rc in "$rc1" "$rc2" "$rc3"; do
  if [ "$rc" -ne 0 ] && [ "$rc" -ne 5 ]; then exit "$rc"; fi
done
