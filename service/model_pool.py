"""The models a server has loaded, each with its own scheduler, and the one rule that
checks a request's `model` and `language_code` against them (streams and uploads).

Each model batches only its own streams: a batch is one encoder call, and a stream on
tiny.en must not wait for base's slower batches (nor share their beam settings).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from service.config import Settings
from service.engine import SpeechEngine
from service.errors import InvalidArgumentError
from service.idle_lane import IdleLane
from service.metrics import Metrics
from service.policy.config import PolicyConfig, for_model
from service.scheduler import DecodeScheduler

AUTO = "auto"


@dataclass(frozen=True)
class LoadedModel:
    """A model in memory, what it can do, and the scheduler that batches its streams."""

    engine: SpeechEngine
    scheduler: DecodeScheduler
    languages: tuple[str, ...] = ("en",)
    """Languages it transcribes (primary subtags)."""
    multilingual: bool = False
    """It detects the language of a stream that gives none."""
    description: str = ""
    settings: Settings | None = None
    """The settings this model decodes with (its own defaults and overrides applied,
    service/models.settings_for); None: the server's as they are."""
    idle: IdleLane | None = None
    """Where shared streams' second passes run, with `--revise-shared-idle`."""

    @classmethod
    def of(
        cls, engine: SpeechEngine, scheduler: DecodeScheduler, settings: Settings | None = None
    ) -> LoadedModel:
        """What the engine says it can do; an engine that does not say (a test double
        around the real one) is English-only."""
        return cls(
            engine,
            scheduler,
            tuple(getattr(engine, "languages", ("en",))),
            bool(getattr(engine, "multilingual", False)),
            str(getattr(engine, "description", "")),
            settings,
        )

    @classmethod
    def load(cls, engine: SpeechEngine, own: Settings, metrics: Metrics) -> LoadedModel:
        """`engine` with a scheduler sized by the model's own settings `own` (computed
        once at start-up: service/models.settings_for)."""
        m, st = own.model, own.streaming
        loaded = cls.of(engine, DecodeScheduler(engine, m.max_batch_size, metrics, m.workers), own)
        spec = getattr(engine, "spec", None)
        if st.revise_shared and st.revise_shared_idle and spec is not None:
            loaded = replace(loaded, idle=IdleLane(spec, m))
        return loaded

    def policy(self, cfg: PolicyConfig) -> PolicyConfig:
        """A stream's policy with this model's beams, steps and buffer caps."""
        return cfg if self.settings is None else for_model(cfg, self.settings)

    @property
    def name(self) -> str:
        return self.engine.name

    @property
    def second_pass_beside(self) -> bool:
        """A lone stream's second passes run beside its first passes, on the worker it
        leaves idle (service/side_pass), when the model's settings ask for it
        (`--revise-beside`) and it decodes two batches at once."""
        beside = self.settings is not None and self.settings.streaming.revise_beside
        return beside and self.scheduler.workers > 1

    def can_do(self, language: str) -> str:
        """Why it cannot transcribe `language` (a primary subtag), or "" when it can."""
        if language in self.languages:
            return ""
        if self.multilingual:
            return (
                f"model '{self.name}' does not know the language {language!r}; it "
                f"transcribes any of its {len(self.languages)} languages (see "
                "ListModels), or detects it with '' / 'auto'"
            )
        return (
            f"model '{self.name}' transcribes only {', '.join(self.languages)}; "
            "choose a multilingual model with config.model (see ListModels)"
        )


@dataclass(frozen=True)
class Choice:
    """A validated model and language: "" means the model detects the language."""

    model: LoadedModel
    language: str


def primary_subtag(code: str) -> str:
    """`"pt-BR"` -> `"pt"`, `" DE "` -> `"de"`, `""` and `"auto"` -> `""` (detect)."""
    code = code.strip().replace("_", "-").split("-")[0].lower()
    return "" if code == AUTO else code


class ModelPool:
    """The loaded models in load order; the first is the default."""

    def __init__(self, models: Sequence[LoadedModel]) -> None:
        if not models:
            raise ValueError("a server needs at least one model")
        self.models = tuple(models)
        self.default = self.models[0]

    def names(self) -> str:
        return ", ".join(m.name for m in self.models)

    def get(self, name: str, field: str = "config.model") -> LoadedModel:
        """The model called `name` ("" the default); InvalidArgumentError lists the loaded."""
        if not name.strip():
            return self.default
        for m in self.models:
            if m.name == name.strip():
                return m
        raise InvalidArgumentError(
            f"{field} {name.strip()!r} is not loaded on this server; loaded: {self.names()}"
        )

    def choose(self, model: str, language_code: str, prefix: str = "config") -> Choice:
        """The model and language a stream or an upload asked for. An English-only model
        gets "en" for ""/"auto"; a language the model cannot do is InvalidArgumentError
        saying which it can."""
        chosen = self.get(model, f"{prefix}.model")
        language = primary_subtag(language_code)
        if not language:
            return Choice(chosen, "" if chosen.multilingual else chosen.languages[0])
        why = chosen.can_do(language)
        if why:
            raise InvalidArgumentError(f"{prefix}.language_code {language_code!r}: {why}")
        return Choice(chosen, language)

    def resume(
        self, stored_model: str, stored_language: str, model: str, language_code: str
    ) -> Choice:
        """What a resumed transcript continues with: its stored model and language. An
        explicit config.model or language_code that differs is InvalidArgumentError (a
        transcript is in one model's words and one language)."""
        if model.strip() and model.strip() != stored_model:
            raise InvalidArgumentError(
                f"config.model {model.strip()!r}: the transcript was made with model "
                f"'{stored_model}'; resume it with that model or leave config.model empty"
            )
        asked = primary_subtag(language_code)
        if asked and stored_language and asked != stored_language:
            raise InvalidArgumentError(
                f"config.language_code {language_code!r}: the transcript is in "
                f"{stored_language!r}; resume it in that language or leave language_code empty"
            )
        self.get(stored_model, "the transcript's model")  # loaded here, or refused
        return self.choose(stored_model, asked or stored_language)

    def start(self) -> None:
        for m in self.models:
            m.scheduler.start()

    async def stop(self) -> None:
        for m in self.models:
            await m.scheduler.stop()
            if m.idle is not None:
                m.idle.stop()
