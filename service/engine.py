"""The speech model behind a small Protocol: faster-whisper / CTranslate2 today.

Streaming re-decodes a rolling buffer of at most ~15 s many times, so the
engine does not pad every call to Whisper's 30 s window as `transcribe()` does
(the encoder cost is proportional to the padded length). It pads the audio to
a bucket of at least 10 s (multiples of 2 s), runs the encoder, greedy or beam
decoding and the cross-attention alignment that gives word timestamps, all
batched across the requests of several streams.

A multilingual model decodes each request in its own language: a request without
one has its language detected from the encoder output the batch computes anyway
(CTranslate2's `detect_language`, ~0.04 s per item), and the prompt of every request
starts with its language's token; languages mix freely in a batch (the prompt length
does not depend on the language).

Everything here is blocking and runs on the scheduler's worker threads (the one
model runs up to `workers` batches at once: CTranslate2's inter-op workers).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from service.audio import SAMPLE_RATE
from service.config import ModelSettings
from service.domain import Word
from service.models import ModelSpec, plan
from service.text import NO_SPACE_LANGUAGES, join_words, no_space_char

logger = logging.getLogger(__name__)

HOP = 160
MIN_BUCKET_FRAMES = 1000
BUCKET_STEP_FRAMES = 200
MAX_FRAMES = 3000
TAIL_FRAMES = 100
TOKENS_PER_SECOND_MAX = 8.0
CONTEXT_TOKENS = 32
PROMPT_TOKENS = 64


@dataclass(frozen=True)
class DecodeRequest:
    """One stream's buffer to transcribe."""

    audio: npt.NDArray[np.float32]
    """16 kHz mono float32, at most 30 s."""
    prompt: str = ""
    """The user's priming text (agenda, vocabulary); kept whole (its last 64 tokens)."""
    context: str = ""
    """Final text just before the buffer: its last CONTEXT_TOKENS tokens, or none."""
    hotwords: str = ""
    """Words to prefer, placed before the prompt as faster-whisper does."""
    beam_size: int = 1
    language: str = ""
    """Language to transcribe in ("de"); "" detects it on a multilingual model. An
    English-only model always transcribes English."""
    whole: bool = False
    """Decode as offline Whisper decodes a window (faster-whisper's `transcribe`: the
    input padded to 30 s, timestamp tokens, the prompt as previous text): a turn's pass
    (service/policy/turns.py). Decoded alone, never in a shared encoder batch."""


@dataclass(frozen=True)
class DecodeResult:
    """Words with times relative to the start of the request's audio."""

    words: tuple[Word, ...]
    no_speech_prob: float
    avg_logprob: float
    language: str = "en"
    """The language decoded in: the request's, or the one detected."""
    language_probability: float = 1.0
    """The detector's confidence in `language` (1.0 when it was given)."""

    @property
    def text(self) -> str:
        return join_words(w.text for w in self.words)


class SpeechEngine(Protocol):
    """What the streaming side needs from a model."""

    name: str

    def decode_batch(self, requests: Sequence[DecodeRequest]) -> list[DecodeResult]:
        """Transcribe several buffers at once (blocking)."""


def _bucket_frames(n_frames: int, min_frames: int = MIN_BUCKET_FRAMES) -> int:
    # At least TAIL_FRAMES of silence after the audio: without it Whisper tends to
    # loop or stop early on a buffer that ends mid-speech.
    needed = n_frames + TAIL_FRAMES
    frames = max(min_frames, -(-needed // BUCKET_STEP_FRAMES) * BUCKET_STEP_FRAMES)
    return min(frames, MAX_FRAMES)


def language_code(token: object) -> str:
    """The language code of a token CTranslate2's detect_language ranks ("<|de|>" -> "de")."""
    return str(token)[2:-2]


def _rows(encoder_output: Any, rows: list[int]) -> Any:
    """The encoder output of some batch items (the output must be in host memory)."""
    import ctranslate2

    if encoder_output.device != "cpu":
        raise RuntimeError(f"encoder output on {encoder_output.device}, expected host memory")
    picked = np.ascontiguousarray(np.asarray(encoder_output)[rows])
    return ctranslate2.StorageView.from_array(picked)


class WhisperEngine:
    """faster-whisper's model with variable-length, batched encode/generate/align."""

    def __init__(self, settings: ModelSettings, spec: ModelSpec | None = None) -> None:
        """Load `spec` (default: the first model `settings` names, tiny.en unless set)."""
        from faster_whisper.tokenizer import _LANGUAGE_CODES

        spec = spec or plan(settings)[0]
        self.name = spec.name
        self.description = spec.description
        self.spec = spec
        self._min_frames = max(200, round(settings.min_encode_s * SAMPLE_RATE / HOP))
        self._model = spec.load(
            settings.device, settings.compute_type, settings.cpu_threads, settings.workers
        )
        self.multilingual = bool(self._model.model.is_multilingual)
        hf = self._model.hf_tokenizer
        self.languages: tuple[str, ...] = (
            tuple(c for c in _LANGUAGE_CODES if hf.token_to_id(f"<|{c}|>") is not None)
            if self.multilingual
            else ("en",)
        )
        self._tokenizers: dict[str, Any] = {}
        self._tokenizer = self.tokenizer("en")

    def tokenizer(self, language: str) -> Any:
        """faster-whisper's tokenizer for transcribing `language` (cached per language)."""
        from faster_whisper.tokenizer import Tokenizer

        tok = self._tokenizers.get(language)
        if tok is None:
            tok = Tokenizer(
                self._model.hf_tokenizer, self.multilingual, task="transcribe", language=language
            )
            self._tokenizers[language] = tok
        return tok

    def _languages(
        self, requests: Sequence[DecodeRequest], encoder_output: Any
    ) -> list[tuple[str, float]]:
        """Each request's language and its probability: given, English on an English-only
        model, else the detector's top language on the request's encoder rows."""
        out = [(r.language if self.multilingual else "en", 1.0) for r in requests]
        detect = [i for i, r in enumerate(requests) if self.multilingual and not r.language]
        if not detect:
            return out
        enc = encoder_output if len(detect) == len(requests) else _rows(encoder_output, detect)
        for i, ranked in zip(detect, self._model.model.detect_language(enc), strict=True):
            token, prob = ranked[0]
            out[i] = (language_code(token), float(prob))
        return out

    def features(self, audio: npt.NDArray[np.float32]) -> tuple[npt.NDArray[np.float32], int]:
        """Log-mel features padded to a bucket, and the number of frames holding audio."""
        n_frames = min(len(audio) // HOP, MAX_FRAMES)
        bucket = _bucket_frames(n_frames, self._min_frames)
        padded = np.zeros(bucket * HOP, dtype=np.float32)
        padded[: min(len(audio), bucket * HOP)] = audio[: bucket * HOP]
        feats = self._model.feature_extractor(padded, padding=0)[:, :bucket]
        return np.ascontiguousarray(feats, dtype=np.float32), max(1, n_frames)

    def _prompt_tokens(
        self, request: DecodeRequest, language: str = "en", shared: bool = True
    ) -> list[int]:
        tok = self.tokenizer(language)
        prompt: list[int] = []
        hot = tok.encode(" " + request.hotwords.strip()) if request.hotwords.strip() else []
        user = tok.encode(" " + request.prompt.strip()) if request.prompt.strip() else []
        context = tok.encode(" " + request.context.strip()) if request.context.strip() else []
        # CTranslate2 batches only prompts whose <|startoftranscript|> sits at the same
        # position (CTranslate2#1118): in a shared batch context is exactly CONTEXT_TOKENS
        # tokens or none, so streams without a prompt of their own share one generate
        # call from the start (cut at every length, each new stream's first sentences had
        # a call of their own). A request alone keeps what it has.
        if shared and len(context) < CONTEXT_TOKENS:
            context = []
        context = context[-CONTEXT_TOKENS:]
        if hot or user or context:
            prompt.append(tok.sot_prev)
            prompt.extend(hot[:100])
            prompt.extend(user[-PROMPT_TOKENS:])
            prompt.extend(context)
        prompt.extend(tok.sot_sequence)
        prompt.append(tok.no_timestamps)
        return prompt

    def decode_batch(self, requests: Sequence[DecodeRequest]) -> list[DecodeResult]:
        """One encoder call for the whole batch, one generate call per (beam width, prompt
        length) and one alignment call: every stream shares the encoder. A `whole` request
        is decoded on its own (`_decode_whole`)."""
        import ctranslate2

        if any(r.whole for r in requests):
            return self._split_whole(requests)
        feats = [self.features(r.audio) for r in requests]
        width = max(f.shape[1] for f, _ in feats)
        batch = np.zeros((len(feats), feats[0][0].shape[0], width), dtype=np.float32)
        for i, (f, _) in enumerate(feats):
            batch[i, :, : f.shape[1]] = f
            if f.shape[1] < width:  # pad with the value silence takes in this row
                batch[i, :, f.shape[1] :] = f.min()
        num_frames = [n for _, n in feats]
        # to_cpu=True: the batch is split into (beam, prompt length) groups and the
        # alignment takes only rows with text, both by indexing the encoder output as a
        # numpy array, which is only possible for host memory. On the CPU this copies
        # nothing; on a GPU it costs one device-to-host copy per batch, and generate and
        # find_alignment move the rows back (faster-whisper passes host-side encoder
        # output to generate the same way when a model spans several GPUs). Before, a
        # CUDA model's mixed batch raised here and every request was decoded alone.
        encoder_output = self._model.model.encode(
            ctranslate2.StorageView.from_array(batch), to_cpu=True
        )
        languages = self._languages(requests, encoder_output)
        # One generate call per (beam, prompt length): see CONTEXT_TOKENS.
        prompts = [
            self._prompt_tokens(r, lang, shared=len(requests) > 1)
            for r, (lang, _) in zip(requests, languages, strict=True)
        ]
        groups: dict[tuple[int, int], list[int]] = {}
        for i, req in enumerate(requests):
            groups.setdefault((max(1, req.beam_size), len(prompts[i])), []).append(i)
        gens: list[Any] = [None] * len(requests)
        for (beam, _), idxs in groups.items():
            enc = encoder_output
            if len(idxs) != len(requests):
                enc = _rows(encoder_output, idxs)
            group = self._generate(
                enc, [prompts[i] for i in idxs], [num_frames[i] for i in idxs], beam
            )
            for i, g in zip(idxs, group, strict=True):
                gens[i] = g
        eot = self._tokenizer.eot
        token_lists = [[t for t in g.sequences_ids[0] if t < eot] for g in gens]
        words_per_item = self._align(
            encoder_output, token_lists, num_frames, [lang for lang, _ in languages]
        )
        out = []
        for g, words, (lang, lang_prob) in zip(gens, words_per_item, languages, strict=True):
            logprob = float(g.scores[0]) if g.scores else 0.0
            out.append(
                DecodeResult(
                    words=tuple(words),
                    no_speech_prob=float(g.no_speech_prob),
                    avg_logprob=logprob,
                    language=lang or "en",
                    language_probability=lang_prob,
                )
            )
        return out

    def _generate(
        self,
        encoder_output: Any,
        prompts: list[list[int]],
        num_frames: list[int],
        beam: int,
    ) -> list[Any]:
        # Speech rarely exceeds ~4 tokens/s; bounding the length stops runaway loops early.
        longest_s = max(num_frames) * HOP / SAMPLE_RATE
        max_new = int(12 + TOKENS_PER_SECOND_MAX * longest_s) + max(len(p) for p in prompts)
        return list(
            self._model.model.generate(
                encoder_output,
                prompts,
                beam_size=beam,
                return_scores=True,
                return_no_speech_prob=True,
                max_length=min(448, max_new),
                suppress_blank=True,
                suppress_tokens=[-1],
            )
        )

    def _align(
        self,
        encoder_output: Any,
        token_lists: list[list[int]],
        num_frames: list[int],
        languages: list[str],
    ) -> list[list[Word]]:
        """Word timestamps from cross-attention (DTW), for the items that have text: one
        call per language (its tokens start the aligned sequence and decide where words
        split)."""
        words: list[list[Word]] = [[] for _ in token_lists]
        by_language: dict[str, list[int]] = {}
        for i, tokens in enumerate(token_lists):
            if tokens:
                by_language.setdefault(languages[i], []).append(i)
        for language, keep in by_language.items():
            enc = encoder_output if len(keep) == len(token_lists) else _rows(encoder_output, keep)
            alignments = self._model.find_alignment(
                self.tokenizer(language),
                [token_lists[i] for i in keep],
                enc,
                [num_frames[i] for i in keep],
            )
            for i, alignment in zip(keep, alignments, strict=True):
                words[i] = _words(alignment, num_frames[i], language)
        return words

    def _split_whole(self, requests: Sequence[DecodeRequest]) -> list[DecodeResult]:
        rest = [i for i, r in enumerate(requests) if not r.whole]
        out: dict[int, DecodeResult] = {}
        if rest:
            out.update(zip(rest, self.decode_batch([requests[i] for i in rest]), strict=True))
        for i, r in enumerate(requests):
            if r.whole:
                out[i] = self._decode_whole(r)
        return [out[i] for i in range(len(requests))]

    def _decode_whole(self, request: DecodeRequest) -> DecodeResult:
        """`request` through faster-whisper's own `transcribe`, as the offline reference
        decodes a clip (beam, 30 s input, timestamp tokens, word alignment); the prompt and
        context as its previous text. No VAD: the policy chose the audio."""
        language = request.language or None
        if not self.multilingual:
            language = "en"
        previous = join_words(p.strip() for p in (request.prompt, request.context) if p.strip())
        segments, info = self._model.transcribe(
            request.audio,
            beam_size=max(1, request.beam_size),
            language=language,
            word_timestamps=True,
            initial_prompt=previous or None,
            hotwords=request.hotwords.strip() or None,
        )
        segs = list(segments)
        pieces = [
            {"word": w.word, "start": w.start, "end": w.end, "probability": w.probability}
            for s in segs
            for w in s.words or ()
        ]
        lang = str(info.language)
        words = _words(pieces, len(request.audio) // HOP, lang)
        tokens = sum(len(s.tokens) for s in segs)
        logprob = sum(s.avg_logprob * len(s.tokens) for s in segs) / tokens if tokens else 0.0
        return DecodeResult(
            words=tuple(words),
            no_speech_prob=min((s.no_speech_prob for s in segs), default=1.0),
            avg_logprob=logprob,
            language=lang,
            language_probability=float(info.language_probability),
        )

    def transcribe_offline(
        self, audio: npt.NDArray[np.float32], beam_size: int = 5, language: str | None = None
    ) -> str:
        """The whole clip through faster-whisper's own `transcribe` (30 s windows), in
        `language` (None: English on an English-only model, else detected).

        The baseline that streaming accuracy is judged against (benchmarks, tests).
        """
        if not self.multilingual:
            language = "en"
        segments, _ = self._model.transcribe(audio, beam_size=beam_size, language=language)
        return join_words(s.text.strip() for s in segments)


def _words(alignment: list[dict[str, Any]], num_frames: int, language: str) -> list[Word]:
    """One item's aligned pieces as words. A piece without a leading space continues the
    previous word ("10" ",000"), except where both sides of the seam are characters
    written without spaces, in a language written so: there every piece (a character or
    a few) stays a word of its own, while "Py" "thon" and "2021" "年" stay glued, so that
    `join_words` gives back exactly the text Whisper wrote."""
    from faster_whisper.transcribe import merge_punctuations

    out: list[Word] = []
    if not alignment:
        return out
    merge_punctuations(alignment, "\"'“¿([{-", "\"'.。,，!！?？:：”)]}、")
    limit = num_frames * HOP / SAMPLE_RATE
    no_space = language in NO_SPACE_LANGUAGES
    for w in alignment:
        raw = str(w["word"])
        text = raw.strip()
        if not text:
            continue
        start = min(float(w["start"]), limit)
        end = min(max(float(w["end"]), start), limit)
        prob = float(w["probability"])
        if (
            out
            and not raw.startswith(" ")
            and not (no_space and no_space_char(out[-1].text[-1]) and no_space_char(text[0]))
        ):
            prev = out[-1]
            out[-1] = Word(prev.text + text, prev.start, end, min(prev.probability, prob))
        else:
            out.append(Word(text, start, end, prob))
    return out
