#!/usr/bin/env bash
# Static checks, then the test suite. Any failure (or a run with no tests) exits non-zero.
set -euo pipefail
cd "$(dirname "$0")/.."
echo "== buf lint / format"
buf lint
buf format --diff --exit-code
echo "== buf breaking (against the previous commit)"
if git rev-parse -q --verify HEAD~1 >/dev/null; then
  buf breaking --against '.git#ref=HEAD~1'
fi
echo "== generated TypeScript client is fresh"
buf generate --template clients/typescript/buf.gen.yaml
git diff --exit-code -- clients/typescript/src/gen
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
