#!/usr/bin/env bash
# API hygiene for proto/: buf lint, buf format, buf breaking against a base commit, and a
# CHANGELOG entry for every change to the API.
#
# The base is $API_BASE when set (CI: the pull request's base or the pushed range's
# "before" commit), else the previous commit (HEAD~1). The current side is the working
# tree, so uncommitted edits are checked too. A shallow clone is deepened to reach the
# base; with no base commit at all (the first commit) there is nothing to compare.
#
# Breaking changes fail, except one: a package version that disappears while a newer
# version of the same package exists (transcribe.v1 removed, transcribe.v2 present).
# Breaking changes inside a version that still exists always fail, whatever else changed.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v buf >/dev/null || PATH="$PWD/node_modules/.bin:$PATH"
command -v buf >/dev/null || { echo "check_api: buf not found (npm install)" >&2; exit 1; }

echo "== buf lint"
buf lint
echo "== buf format"
buf format --diff --exit-code

base="${API_BASE:-HEAD~1}"
if ! git rev-parse -q --verify "$base^{commit}" >/dev/null; then
  if [ "$(git rev-parse --is-shallow-repository)" = true ]; then
    echo "== deepening the shallow clone to reach $base"
    git fetch -q --deepen=1 || true
    [ -n "${API_BASE:-}" ] && git fetch -q origin "$API_BASE" 2>/dev/null || true
  fi
fi
if ! sha=$(git rev-parse -q --verify "$base^{commit}"); then
  if [ -z "${API_BASE:-}" ] && [ "$(git rev-parse --is-shallow-repository)" = false ] \
    && [ "$(git rev-list --count HEAD)" -le 1 ]; then
    echo "== buf breaking: no previous commit, nothing to compare"
    exit 0
  fi
  echo "check_api: base commit '$base' not found; fetch it or set API_BASE" >&2
  exit 1
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir "$tmp/base"
git archive "$sha" | tar -x -C "$tmp/base"
if [ ! -f "$tmp/base/buf.yaml" ]; then
  echo "== buf breaking: ${sha:0:12} has no buf.yaml, nothing to compare"
  exit 0
fi

echo "== buf breaking against ${sha:0:12} ($base)"
set +e
buf breaking --against "$tmp/base" --error-format=json >"$tmp/breaking.json"
rc=$?
set -e
if [ "$rc" -ne 0 ] && [ ! -s "$tmp/breaking.json" ]; then
  echo "check_api: buf breaking failed to run (exit $rc)" >&2
  exit "$rc"
fi
# Each reported change names its file; a deleted file only in its message.
python3 - "$tmp/breaking.json" <<'EOF'
import json, re, sys
from pathlib import Path

PROTO = Path("proto")  # the module root named in buf.yaml


def major(d: Path) -> "int | None":
    m = re.fullmatch(r"v(\d+)((alpha|beta)\d*)?", d.name)
    return int(m.group(1)) if m else None


def superseded(file: str) -> bool:
    """True when the file's version directory is gone and a newer version of it exists."""
    rel = Path(file.removeprefix(f"{PROTO}/")).parent
    here, n = PROTO / rel, major(rel)
    if n is None or here.exists():
        return False
    return any((major(s) or 0) > n for s in here.parent.glob("v*") if s.is_dir())


failed = 0
for line in Path(sys.argv[1]).read_text().splitlines():
    issue = json.loads(line)
    file = issue.get("path") or next(iter(re.findall(r'file "([^"]+)"', issue["message"])), "")
    if superseded(file):
        print(f"  allowed (new package version): {issue['type']}: {issue['message']}")
        continue
    failed += 1
    print(f"{file or '?'}:{issue.get('start_line', 0)}: {issue['type']}: {issue['message']}")
if failed:
    print(f"check_api: {failed} breaking change(s). Keep the API compatible, or make the"
          " change in a new package version (e.g. transcribe.v2) next to the old one.")
    sys.exit(1)
EOF

echo "== CHANGELOG entry for API changes"
buf build --exclude-source-info -o "$tmp/current.binpb"
buf build "$tmp/base" --exclude-source-info -o "$tmp/base.binpb"
if ! cmp -s "$tmp/current.binpb" "$tmp/base.binpb"; then
  if git diff --quiet "$sha" -- CHANGELOG.md; then
    echo "check_api: the API changed since ${sha:0:12} but CHANGELOG.md did not; add an entry" >&2
    exit 1
  fi
fi
echo "API checks passed"
