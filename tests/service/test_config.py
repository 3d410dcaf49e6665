"""Settings: one declaration per setting gives flags, variables, checks, --help and the
README table; production defaults stay what they were."""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from service import settings_spec
from service.config import ENV_PREFIX, Settings, build_parser, build_settings
from service.settings_spec import Spec, setting, specs

ROOT = Path(__file__).resolve().parents[2]
SPECS = specs(Settings, ENV_PREFIX)


def value_at(settings: object, spec: Spec) -> object:
    for name in spec.path:
        settings = getattr(settings, name)
    return settings


def other_value(spec: Spec) -> str:
    """A valid value different from the default, as typed on a command line."""
    m = spec.meta
    if m.choices:
        return next(c for c in m.choices if c != spec.default)
    if spec.type is bool:
        return "false" if spec.default else "true"
    if spec.type in (int, float):
        assert isinstance(spec.default, int | float)
        up = spec.default + 1
        if (m.le is None or up <= m.le) and (m.lt is None or up < m.lt):
            return str(up)
        return str(spec.default / 2 if spec.type is float else spec.default - 1)
    if spec.flag == "model-overrides":
        return "tiny.en:beam-size=4"  # checked at start-up (tests/service/test_model_settings.py)
    return "/somewhere/else"


@pytest.mark.parametrize("spec", SPECS, ids=[s.flag for s in SPECS])
def test_each_setting_reads_its_flag_then_its_variable(spec: Spec) -> None:
    raw = other_value(spec)
    expected = spec.parse(raw)
    assert expected != spec.default
    assert value_at(build_settings([spec.option, raw], {}), spec) == expected
    assert value_at(build_settings([], {spec.env: raw}), spec) == expected
    from_both = build_settings([spec.option, raw], {spec.env: str(spec.default)})
    assert value_at(from_both, spec) == expected  # the flag wins
    assert value_at(build_settings([], {}), spec) == spec.default


def test_every_field_is_one_declared_setting() -> None:
    leaves = []

    def walk(obj: Any, path: tuple[str, ...]) -> None:
        for f in dataclasses.fields(obj):
            value = getattr(obj, f.name)
            if f.name == "given":  # which settings were given: filled by load, not a setting
                continue
            if dataclasses.is_dataclass(value):
                walk(value, (*path, f.name))
            else:
                leaves.append((*path, f.name))

    walk(Settings(), ())
    assert [s.path for s in SPECS] == leaves
    assert all(s.env == ENV_PREFIX + s.flag.upper().replace("-", "_") for s in SPECS)
    assert build_settings([], {}) == Settings()


def test_production_defaults_are_unchanged() -> None:
    """The values production ran with before settings were declared in one place."""
    s = build_settings([], {})
    m, st, lim = s.model, s.streaming, s.limits
    assert (s.host, s.port, s.grace_s, s.auth, s.log_level, s.log_format) == (
        "127.0.0.1", 50051, 10.0, "auto", "INFO", "text",
    )  # fmt: skip
    assert (m.path, m.name, m.device, m.compute_type, m.cpu_threads, m.workers) == (
        "", "", "cpu", "int8", 1, 2,
    )  # fmt: skip
    # one model, the bundled tiny.en, named so (--model-name now names only a directory)
    from service.models import plan

    assert [spec.name for spec in plan(m)] == ["tiny.en"] and m.models == ""
    assert (m.beam_size, m.shared_beam_size, m.final_beam_size, m.max_batch_size) == (5, 2, 5, 8)
    assert m.min_encode_s == 10.0
    assert (st.min_step_s, st.shared_step_s, st.max_buffer_s, st.shared_max_buffer_s) == (
        0.4, 0.5, 15.0, 9.0,
    )  # fmt: skip
    assert (st.default_silence_s, st.default_max_utterance_s, st.vad_threshold) == (0.5, 12, 0.5)
    assert (st.commit_margin_s, st.revise) == (0.6, True)
    assert (st.revise_beside, st.revise_shared, st.revise_shared_idle) == (True, True, True)
    assert (s.storage.backend, s.storage.data_dir) == ("sqlite", Path("data"))
    assert (lim.max_streams, lim.max_stream_s, lim.max_message_bytes) == (16, 14400, 4 << 20)
    assert (lim.idle_timeout_s, lim.max_page_size, lim.live_max_speed, lim.live_burst_s) == (
        60, 100, 2, 60,
    )  # fmt: skip
    assert (s.metrics_port, s.malloc_arenas) == (0, 2)


@pytest.mark.parametrize(
    ("argv", "env", "named", "allowed"),
    [
        (["--step-seconds", "0"], {}, "--step-seconds 0", "> 0"),
        (["--max-streams", "-1"], {}, "--max-streams -1", ">= 1"),
        (["--beam-size", "0"], {}, "--beam-size 0", ">= 1"),
        ([], {"TRANSCRIBE_PORT": "abc"}, "TRANSCRIBE_PORT=abc", "0 to 65535"),
    ],
)
def test_server_refuses_a_bad_value_at_start_in_one_line(
    argv: list[str], env: dict[str, str], named: str, allowed: str
) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "service.server", *argv],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr  # no usage dump, no traceback
    flag = named.split("=")[0].split(" ")[0]
    spec = next(s for s in SPECS if flag in (s.option, s.env))
    for part in (named, spec.option, spec.env, f"allowed: {allowed}"):
        assert part in lines[0]


@pytest.mark.parametrize(
    ("argv", "env", "says"),
    [
        (["--vad-threshold", "nan"], {}, "--vad-threshold nan is not a finite number"),
        (["--max-stream-seconds", "inf"], {}, "is not a finite number"),
        (["--port", "1.5"], {}, "--port 1.5 is not an integer"),
        (["--step-seconds", "fast"], {}, "--step-seconds fast is not a number"),
        (["--storage", "postgres"], {}, "allowed: sqlite, dynamodb"),
        ([], {"TRANSCRIBE_REVISE": "maybe"}, "TRANSCRIBE_REVISE=maybe is not true or false"),
        ([], {"TRANSCRIBE_MAX_BUFFER_SECONDS": "31"}, "allowed: > 0 and <= 30"),
        ([], {"TRANSCRIBE_DEFAULT_SILENCE_SECONDS": "0"}, "allowed: 0.1 to 10"),
    ],
)
def test_malformed_values_are_named(
    argv: list[str], env: dict[str, str], says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        build_settings(argv, env)
    assert exit_.value.code == 2
    assert says in capsys.readouterr().err


def test_every_bad_value_is_reported_not_only_the_first(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        build_settings(["--beam-size", "0"], {"TRANSCRIBE_PORT": "70000"})
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2 and "TRANSCRIBE_PORT=70000" in err[0] and "--beam-size 0" in err[1]


def test_choices_ignore_case_and_keep_the_declared_spelling() -> None:
    s = build_settings(["--storage", "DynamoDB", "--log-level", "debug"], {})
    assert (s.storage.backend, s.log_level) == ("dynamodb", "DEBUG")


def test_help_shows_range_default_and_variable_of_every_flag() -> None:
    text = " ".join(build_parser().format_help().split("options:", 1)[1].split())
    for spec in SPECS:
        start = re.search(rf"{spec.option} [A-Z]+ ", text)  # the option, not a mention
        assert start, spec.option
        entry = text[start.start() : text.index("]", start.start()) + 1]
        assert f"env {spec.env}]" in entry
        if spec.allowed():
            assert f"allowed: {spec.allowed()}" in entry
        assert "default: " in entry


def test_readme_settings_table_is_fresh() -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gen_settings_doc.py"), "--check"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, "run `python scripts/gen_settings_doc.py`: " + proc.stdout


def test_readme_table_has_a_row_per_setting() -> None:
    readme = (ROOT / "README.md").read_text()
    for spec in SPECS:
        assert re.search(rf"^\| `{spec.option}` `{spec.env}` \|", readme, re.M), spec.flag


def test_an_undeclared_or_duplicated_field_is_refused() -> None:
    @dataclasses.dataclass(frozen=True)
    class Undeclared:
        a: int = setting(1, help="a")
        b: int = 2

    @dataclasses.dataclass(frozen=True)
    class Twice:
        a: int = setting(1, help="a", flag="x")
        b: int = setting(2, help="b", flag="x")

    with pytest.raises(TypeError, match=r"Undeclared\.b is not declared"):
        settings_spec.specs(Undeclared, "P_")
    with pytest.raises(TypeError, match="declared twice"):
        settings_spec.specs(Twice, "P_")
