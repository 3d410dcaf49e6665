"""Settings declared once, on frozen dataclass fields; flags, environment, `--help`,
validation and the README table are all derived from those declarations.

A field declared `port: int = setting(50051, ge=0, le=65535, help="gRPC port")` is the
only place its type, default, range, help and names live. `load` builds the instance
from argv and the environment (flag > environment > default), checks every value, and
exits with one line per bad value that names the flag, its environment variable, the
value and what is allowed. Nested dataclass fields (`model: ModelSettings`) are walked,
so the flags stay flat (`--beam-size`) while the code reads `settings.model.beam_size`.

Why not pydantic-settings (which speaches uses): measured here (pydantic-settings
2.16.3, pydantic 2.14.4), it adds seven packages (12 MB installed) and 0.26-0.31 s of
imports at start-up (this module: ~15 ms); its CLI names nested fields
`--model.beam-size`, so keeping today's flags needs an alias per field; its errors are
multi-line, name the field path rather than the flag or the variable, and would still
need reformatting; and a `BaseSettings` reads the environment whenever it is
constructed, which tests and benchmarks do with `Settings(port=0, ...)` and
`dataclasses.replace`. This module is ~300 lines of stdlib (argparse), type-checks
under `mypy --strict` without `type: ignore`, and is generic: the bridge
(web_bridge/config.py) can adopt it with its own prefix (its `allowed_origins` tuple
would need a list type added here).
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import re
import shlex
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")
_KEY = "settings_spec"
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}
_TYPES: dict[object, str] = {int: "INT", float: "NUMBER", str: "TEXT", bool: "BOOL", Path: "PATH"}


@dataclass(frozen=True)
class Meta:
    """What `setting()` records on a field besides its default."""

    help: str
    flag: str | None = None
    env: str | None = None
    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None
    choices: tuple[str, ...] = ()
    shown_default: str | None = None
    metavar: str | None = None


def setting(
    default: T,
    *,
    help: str,
    flag: str | None = None,
    env: str | None = None,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    lt: float | None = None,
    choices: Sequence[str] = (),
    shown_default: str | None = None,
    metavar: str | None = None,
) -> T:
    """A dataclass field that is also a setting. `flag` defaults to the field name with
    dashes, `env` to PREFIX + the flag in upper case; ge/gt/le/lt bound numbers;
    `choices` are matched case-insensitively and stored in the spelling given here;
    `shown_default` replaces the default in help and docs when the raw value would
    mislead (an empty model path means the bundled model)."""
    meta = Meta(help, flag, env, ge, gt, le, lt, tuple(choices), shown_default, metavar)
    return dataclasses.field(default=default, metadata={_KEY: meta})


_GIVEN = "given"


def given_field() -> frozenset[str]:
    """A field that is not a setting: `load` fills it with the flags (e.g. `beam-size`)
    whose value came from the command line or the environment, so a default can
    yield to a more specific one (a catalogue model's own) while an explicit value wins."""
    return dataclasses.field(default=frozenset(), metadata={_KEY: _GIVEN})


@dataclass(frozen=True)
class Spec:
    """One setting as seen from outside: its names, type, default and bounds."""

    path: tuple[str, ...]
    """Attribute path from the root object, e.g. ("model", "beam_size")."""
    type: type
    default: object
    flag: str
    env: str
    meta: Meta

    @property
    def option(self) -> str:
        return "--" + self.flag

    def allowed(self) -> str:
        """The allowed values in words, e.g. `1 to 65535`, `> 0`, `sqlite, dynamodb`;
        empty when any value of the type is allowed."""
        m = self.meta
        if m.choices:
            return ", ".join(m.choices)
        if self.type is bool:
            return "true, false"
        low = f"{_num(m.ge)}" if m.ge is not None else None
        high = f"{_num(m.le)}" if m.le is not None else None
        if low is not None and high is not None:
            return f"{low} to {high}"
        parts = [
            f">= {low}" if low is not None else "",
            f"> {_num(m.gt)}" if m.gt is not None else "",
        ]
        parts += [
            f"<= {high}" if high is not None else "",
            f"< {_num(m.lt)}" if m.lt is not None else "",
        ]
        return " and ".join(p for p in parts if p)

    def shown_default(self) -> str:
        if self.meta.shown_default is not None:
            return self.meta.shown_default
        if isinstance(self.default, bool):
            return str(self.default).lower()
        if isinstance(self.default, float):
            return _num(self.default)
        return str(self.default)

    def parse(self, raw: str) -> object:
        """The typed, checked value of `raw`; ValueError says what is wrong."""
        m = self.meta
        if m.choices:
            for choice in m.choices:
                if raw.strip().lower() == choice.lower():
                    return choice
            raise ValueError("is not an allowed value")
        if self.type is bool:
            if raw.strip().lower() in _TRUE | _FALSE:
                return raw.strip().lower() in _TRUE
            raise ValueError("is not true or false")
        if self.type is int or self.type is float:
            try:
                number: float = int(raw) if self.type is int else float(raw)
            except ValueError:
                kind = "an integer" if self.type is int else "a number"
                raise ValueError(f"is not {kind}") from None
            if not math.isfinite(number):
                raise ValueError("is not a finite number")
            if not self._in_range(number):
                raise ValueError("is out of range")
            return number
        if self.type is Path:
            return Path(raw)
        return raw

    def _in_range(self, x: float) -> bool:
        m = self.meta
        return (
            (m.ge is None or x >= m.ge)
            and (m.gt is None or x > m.gt)
            and (m.le is None or x <= m.le)
            and (m.lt is None or x < m.lt)
        )


def _num(x: float | None) -> str:
    return f"{x:g}" if isinstance(x, float) else str(x)


def specs(cls: type[Any], prefix: str) -> list[Spec]:
    """Every setting of dataclass `cls` in declaration order, nested dataclasses walked.
    A leaf field not declared with `setting()` is an error: nothing is configured twice."""
    out: list[Spec] = []
    _walk(cls, (), prefix, out)
    flags = [s.flag for s in out]
    duplicated = sorted({f for f in flags if flags.count(f) > 1})
    if duplicated:
        raise TypeError(f"{cls.__name__}: flags declared twice: {duplicated}")
    return out


def _walk(cls: type[Any], path: tuple[str, ...], prefix: str, out: list[Spec]) -> None:
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        typ = hints[f.name]
        if dataclasses.is_dataclass(typ) and isinstance(typ, type):
            _walk(typ, (*path, f.name), prefix, out)
            continue
        meta = f.metadata.get(_KEY)
        if meta == _GIVEN:
            continue
        if not isinstance(meta, Meta):
            raise TypeError(f"{cls.__name__}.{f.name} is not declared with setting()")
        if typ not in _TYPES:
            raise TypeError(f"{cls.__name__}.{f.name}: unsupported setting type {typ!r}")
        flag = meta.flag or f.name.replace("_", "-")
        env = meta.env or prefix + flag.upper().replace("-", "_")
        out.append(Spec((*path, f.name), typ, f.default, flag, env, meta))


def build_parser(
    cls: type[Any], prefix: str, prog: str, description: str
) -> argparse.ArgumentParser:
    """The command line of `cls`: one `--flag` per setting, every help line saying the
    allowed values, the default and the environment variable."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description=description,
        epilog=f"Every flag can also be set as the environment variable shown with it "
        f"({prefix}<FLAG>); a flag wins over the environment, which wins over the default.",
    )
    for spec in specs(cls, prefix):
        allowed = spec.allowed()
        facts = [f"allowed: {allowed}"] if allowed else []
        facts += [f"default: {spec.shown_default() or '(empty)'}", f"env {spec.env}"]
        parser.add_argument(
            spec.option,
            default=None,
            metavar=spec.meta.metavar or ("NAME" if spec.meta.choices else _TYPES[spec.type]),
            help=f"{spec.meta.help} [{'; '.join(facts)}]".replace("%", "%%"),
        )
    return parser


def load(
    cls: type[T],
    argv: Sequence[str] | None,
    environ: Mapping[str, str],
    *,
    prefix: str,
    prog: str,
    description: str,
) -> T:
    """An instance of `cls` from flags, then environment, then defaults. Exits with
    status 2 and one line per invalid value (no traceback) when any is invalid."""
    parser = build_parser(cls, prefix, prog, description)
    args = vars(parser.parse_args(argv))
    values: dict[tuple[str, ...], object] = {}
    given_flags: set[str] = set()
    errors: list[str] = []
    for spec in specs(cls, prefix):
        raw: str | None = args[spec.flag.replace("-", "_")]
        source = spec.option
        if raw is None and spec.env in environ:
            raw, source = environ[spec.env], spec.env
        if raw is None:
            continue
        try:
            values[spec.path] = spec.parse(raw)
            given_flags.add(spec.flag)
        except ValueError as exc:
            if source == spec.env:
                given, other = f"{spec.env}={shlex.quote(raw)}", f"flag {spec.option}"
            else:
                given, other = f"{spec.option} {shlex.quote(raw)}", f"env {spec.env}"
            errors.append(f"{prog}: error: {given} {exc} (allowed: {spec.allowed()}; {other})")
    if errors:
        parser.exit(2, "\n".join(errors) + "\n")
    return typing.cast(T, _build(cls, (), values, frozenset(given_flags)))


def _build(
    cls: type[Any],
    path: tuple[str, ...],
    values: Mapping[tuple[str, ...], object],
    given: frozenset[str],
) -> Any:
    hints = typing.get_type_hints(cls)
    kwargs: dict[str, object] = {}
    for f in dataclasses.fields(cls):
        typ = hints[f.name]
        if f.metadata.get(_KEY) == _GIVEN:
            kwargs[f.name] = given
            continue
        here = (*path, f.name)
        if dataclasses.is_dataclass(typ) and isinstance(typ, type):
            kwargs[f.name] = _build(typ, here, values, given)
        elif here in values:
            kwargs[f.name] = values[here]
    return cls(**kwargs)


def markdown_table(cls: type[Any], prefix: str) -> str:
    """The README's table of settings: flag and variable, default, allowed, meaning."""
    rows = [
        "| flag / environment variable | default | allowed | meaning |",
        "| --- | --- | --- | --- |",
    ]
    for spec in specs(cls, prefix):
        default = spec.shown_default()
        if default and spec.meta.shown_default is None:
            default = f"`{default}`"  # a literal value, not words about it
        cells = [f"`{spec.option}` `{spec.env}`", default, spec.allowed(), spec.meta.help]
        rows.append("| " + " | ".join(_md(c) for c in cells) + " |")
    return "\n".join(rows) + "\n"


def _md(cell: str) -> str:
    """A table cell: `|` would end it and `<hex>` would vanish as an HTML tag."""
    return re.sub(r"<(?=[A-Za-z/])", "&lt;", cell.replace("|", r"\|"))
