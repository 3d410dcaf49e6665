"""scripts/check_api.sh on scratch git repositories holding a copy of the real API."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
V1 = Path("proto/transcribe/v1")
ENV = {
    **os.environ,
    "PATH": f"{ROOT / 'node_modules' / '.bin'}{os.pathsep}{os.environ['PATH']}",
    "GIT_AUTHOR_NAME": "t",
    "GIT_AUTHOR_EMAIL": "t@example.com",
    "GIT_COMMITTER_NAME": "t",
    "GIT_COMMITTER_EMAIL": "t@example.com",
}


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", *args], cwd=repo, env=ENV, check=True, capture_output=True, text=True
    )
    return done.stdout


def check(repo: Path, **env: str) -> tuple[int, str]:
    done = subprocess.run(
        ["bash", "scripts/check_api.sh"],
        cwd=repo,
        env={**ENV, **env},
        capture_output=True,
        text=True,
    )
    return done.returncode, done.stdout + done.stderr


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


def note(repo: Path, line: str) -> None:
    with (repo / "CHANGELOG.md").open("a") as f:
        f.write(f"\n- {line}\n")


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A repository whose only commit holds today's API, the changelog and the script."""
    r = tmp_path / "repo"
    (r / "scripts").mkdir(parents=True)
    shutil.copytree(ROOT / "proto", r / "proto")
    for name in ("buf.yaml", "CHANGELOG.md", "scripts/check_api.sh"):
        shutil.copy(ROOT / name, r / name)
    git(r, "init", "-q", "-b", "main")
    git(r, "add", ".")
    git(r, "commit", "-qm", "api")
    (r / "notes.txt").write_text("unrelated\n")  # HEAD~1, the base, then holds the API
    git(r, "add", "notes.txt")
    git(r, "commit", "-qm", "notes")
    return r


def commit(repo: Path, message: str) -> None:
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", message)


def test_unchanged_api_passes_and_a_first_commit_has_nothing_to_compare(
    repo: Path, tmp_path: Path
) -> None:
    code, out = check(repo)
    assert code == 0, out
    assert "buf breaking against" in out
    first = tmp_path / "first"
    git(tmp_path, "clone", "-q", f"file://{repo}", str(first))
    git(first, "reset", "-q", "--hard", "HEAD~1")
    code, out = check(first)
    assert code == 0, out
    assert "no previous commit" in out


def test_breaking_change_fails_and_names_it(repo: Path) -> None:
    edit(repo / V1 / "streaming.proto", "string title = 10;", "string name = 10;")
    note(repo, "renamed title")
    code, out = check(repo)  # uncommitted: the working tree is what is checked
    assert code == 1
    assert "FIELD_SAME_NAME" in out and "streaming.proto" in out
    commit(repo, "rename")
    assert check(repo)[0] == 1  # and once committed, against its parent


def test_compatible_change_needs_a_changelog_entry(repo: Path) -> None:
    edit(
        repo / V1 / "streaming.proto",
        "  bool storage_pending = 8;\n",
        "  bool storage_pending = 8;\n  // A new field.\n  string note = 99;\n",
    )
    code, out = check(repo)
    assert code == 1 and "CHANGELOG" in out
    note(repo, "StreamingTranscriptionResult.note")
    code, out = check(repo)
    assert code == 0, out


def test_comment_only_change_needs_no_changelog(repo: Path) -> None:
    edit(repo / V1 / "common.proto", "// One hypothesis", "// One transcription hypothesis")
    code, out = check(repo)
    assert code == 0, out


def test_breaking_change_is_allowed_in_a_new_package_version(repo: Path) -> None:
    v2 = repo / "proto/transcribe/v2"
    shutil.move(repo / V1, v2)
    for f in v2.glob("*.proto"):
        f.write_text(f.read_text().replace("transcribe.v1", "transcribe.v2").replace(
            "transcribe/v1/", "transcribe/v2/"))  # fmt: skip
    edit(v2 / "streaming.proto", "string title = 10;", "string name = 10;")
    note(repo, "transcribe.v2")
    code, out = check(repo)
    assert code == 0, out
    assert "allowed (new package version): FILE_NO_DELETE" in out


def test_new_version_does_not_excuse_breaking_the_old_one(repo: Path) -> None:
    shutil.copytree(repo / V1, repo / "proto/transcribe/v2")
    for f in (repo / "proto/transcribe/v2").glob("*.proto"):
        f.write_text(f.read_text().replace("transcribe.v1", "transcribe.v2").replace(
            "transcribe/v1/", "transcribe/v2/"))  # fmt: skip
    edit(repo / V1 / "streaming.proto", "string title = 10;", "string name = 10;")
    note(repo, "v2")
    code, out = check(repo)
    assert code == 1
    assert "FIELD_SAME_NAME" in out and "transcribe/v1/streaming.proto" in out


def test_lint_and_format_failures(repo: Path) -> None:
    edit(repo / V1 / "common.proto", "  string word = 3;", "string   word = 3;")
    code, out = check(repo)
    assert code != 0 and "word = 3" in out  # buf format shows the diff
    edit(repo / V1 / "common.proto", "string   word = 3;", "  string Word = 3;")
    code, out = check(repo)
    assert code != 0 and "lower_snake_case" in out


def test_shallow_clone_is_deepened_to_find_the_base(repo: Path, tmp_path: Path) -> None:
    edit(repo / V1 / "streaming.proto", "string title = 10;", "string name = 10;")
    note(repo, "rename")
    commit(repo, "breaking")
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", "--depth", "1", f"file://{repo}", str(clone))
    assert git(clone, "rev-parse", "--is-shallow-repository").strip() == "true"
    code, out = check(clone)
    assert code == 1 and "FIELD_SAME_NAME" in out, out
    code, out = check(clone, API_BASE="HEAD")  # an explicit base: compared against itself
    assert code == 0, out
    code, out = check(clone, API_BASE="no-such-ref")
    assert code == 1 and "not found" in out
