"""Decode settings per model: a catalogue model's own defaults (service/models.py), a flag
that still overrides them, `--model-overrides` for one model, all checked at start-up
against the flags' own declarations. No model is loaded here (the scheduler gets a stub
engine); the streams through a server with base are in test_models_languages.py."""

from __future__ import annotations

from collections.abc import Sequence

import grpc
import pytest
from transcribe.v1 import streaming_pb2_grpc

from service import models
from service.config import ENV_PREFIX, PER_MODEL, ModelSettings, Settings, build_settings
from service.engine import DecodeRequest, DecodeResult
from service.metrics import Metrics
from service.model_pool import LoadedModel
from service.models import ModelChoiceError, resolve, settings_for
from service.policy import policy_config
from service.server import RunningServer, model_plan
from service.settings_spec import specs
from tests.helpers import Enc, chunks, config, stream


def _base_default(flag: str) -> object:
    """What base decodes with when nothing is given: its own default, else the declared."""
    declared = {s.flag: s.default for s in specs(Settings, ENV_PREFIX)}
    return dict(models.BASE_DEFAULTS).get(flag, declared[flag])


def _at(settings: object, path: tuple[str, ...]) -> object:
    for name in path:
        settings = getattr(settings, name)
    return settings


class _Stub:
    name = "base"

    def decode_batch(self, requests: Sequence[DecodeRequest]) -> list[DecodeResult]:
        raise AssertionError("not decoded here")


def test_base_decodes_with_its_own_defaults_and_tiny_en_with_the_declared_ones() -> None:
    declared = build_settings([], environ={})
    base = settings_for(resolve("base"), declared)
    assert models.BASE_DEFAULTS, "base declares its measured settings"
    assert base.model.beam_size == _base_default("beam-size")
    assert base.streaming.min_step_s == _base_default("step-seconds")
    assert settings_for(resolve("tiny.en"), declared) == declared  # tiny.en: as declared
    assert all(flag in PER_MODEL for flag, _ in models.BASE_DEFAULTS)


def test_help_and_the_readme_table_show_bases_own_defaults() -> None:
    by_flag = {s.flag: s for s in specs(Settings, ENV_PREFIX)}
    for flag, value in models.BASE_DEFAULTS:
        shown = str(value).lower() if isinstance(value, bool) else f"{value:g}"
        assert f"(base: {shown})" in by_flag[flag].shown_default(), flag


def test_a_flag_or_variable_given_wins_over_the_models_own_default() -> None:
    base = resolve("base")
    flag = settings_for(base, build_settings(["--beam-size", "4"], environ={}))
    assert flag.model.beam_size == 4
    env = settings_for(base, build_settings([], environ={"TRANSCRIBE_STEP_SECONDS": "0.7"}))
    assert env.streaming.min_step_s == 0.7
    assert env.model.beam_size == _base_default("beam-size")  # the rest stays base's


def test_model_overrides_set_one_models_settings_and_win_over_the_flags() -> None:
    settings = build_settings(
        ["--beam-size", "4", "--model-overrides", "base:beam-size=3, step-seconds=1.5"],
        environ={},
    )
    base = settings_for(resolve("base"), settings)
    tiny = settings_for(resolve("tiny.en"), settings)
    assert (base.model.beam_size, base.streaming.min_step_s) == (3, 1.5)
    assert (tiny.model.beam_size, tiny.streaming.min_step_s) == (4, 0.4)  # its declared default


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("base:beam-size=0", "beam-size=0 (model base) is out of range (allowed: >= 1)"),
        ("base:min-encode-seconds=40", "(model base) is out of range (allowed: 0 to 30)"),
        ("base:step-seconds=fast", "is not a number"),
        ("base:port=1", "'port' (model base) is not a per-model setting"),
        ("base", "'base' is not MODEL:FLAG=VALUE"),
        ("base:beam-size", "is not FLAG=VALUE"),
    ],
)
def test_a_bad_override_stops_the_start_with_a_line_saying_what_is_wrong(
    value: str, says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        build_settings(["--model-overrides", value], environ={})
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "--model-overrides" in err and says in err


def test_an_override_of_a_model_not_loaded_is_refused_naming_the_loaded() -> None:
    settings = Settings(model=ModelSettings(models="tiny.en", overrides="base:beam-size=2"))
    with pytest.raises(SystemExit, match="names model 'base', which is not loaded; loaded: tiny"):
        model_plan(settings)


def test_a_catalogue_default_out_of_its_flags_range_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(models, "BASE_DEFAULTS", (("final-beam-size", 0),))
    with pytest.raises(ModelChoiceError, match="its default final-beam-size=0 is out of range"):
        settings_for(resolve("base"), Settings())
    monkeypatch.setattr(models, "BASE_DEFAULTS", (("port", 1),))
    with pytest.raises(ModelChoiceError, match="port is not a per-model setting"):
        settings_for(resolve("base"), Settings())


def test_a_loaded_model_batches_and_decodes_streams_with_its_own_settings() -> None:
    settings = build_settings(
        ["--model-overrides", "base:model-workers=1,max-batch-size=3,final-beam-size=4"],
        environ={},
    )
    loaded = LoadedModel.load(_Stub(), settings_for(resolve("base"), settings), Metrics())
    assert (loaded.scheduler.workers, loaded.scheduler.max_batch) == (1, 3)
    stream = policy_config(settings, silence_s=0.8)  # as the servicer builds it
    cfg = loaded.policy(stream)
    assert (cfg.interim_beam, cfg.final_beam) == (_base_default("beam-size"), 4)
    assert cfg.min_step_s == _base_default("step-seconds")
    assert cfg.silence_s == 0.8  # the stream's own config is kept


async def test_a_stream_on_base_decodes_with_bases_beams_through_the_api(
    multilingual_server: RunningServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server applies base's own settings to base's streams (its scheduler's sizes, its
    streams' beams), and tiny.en's streams keep the declared ones."""
    from tests.multilingual import german_clip

    pool = multilingual_server.deps.models
    base, tiny = pool.get("base"), pool.get("tiny.en")
    declared = {s.flag: s.default for s in specs(Settings, ENV_PREFIX)}
    for spec in specs(Settings, ENV_PREFIX):
        if spec.flag in PER_MODEL:
            assert _at(base.settings, spec.path) == _base_default(spec.flag), spec.flag
            assert _at(tiny.settings, spec.path) == declared[spec.flag], spec.flag
    assert base.scheduler.workers == _base_default("model-workers")
    beams: list[int] = []
    decode = base.scheduler.decode

    async def spy(request: DecodeRequest, low: bool = False) -> DecodeResult:
        beams.append(request.beam_size)
        return await decode(request, low)

    monkeypatch.setattr(base.scheduler, "decode", spy)
    clip = german_clip()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{multilingual_server.port}") as ch:
        stub = streaming_pb2_grpc.TranscriptionServiceStub(ch)
        cfg = config(encoding=Enc.AUDIO_ENCODING_FLAC, model="base", language_code="de")
        run = await stream(stub, cfg, chunks(clip.path.read_bytes(), 16000))
    assert run.code == grpc.StatusCode.OK, run.details
    flags = ("beam-size", "final-beam-size", "shared-beam-size", "revise-beam-size")
    own = {_base_default(f) for f in flags}
    assert beams and set(beams) <= own, beams  # alone: interim, final (and any second pass)
    assert _base_default("beam-size") in beams
