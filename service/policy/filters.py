"""Hallucination filters: what of a decode's words to believe. Pure functions; imports
the job types and the word helpers.

Whisper invents text on silence and noise ("Thanks for watching."), repeats itself in a
loop, and re-hears the words it was primed with. Each threshold below says what it
guards and where its value comes from.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence

from service.domain import Word
from service.engine import DecodeResult
from service.policy.jobs import DecodeJob, JobKind
from service.policy.phrases import cut_credits, only_closer
from service.policy.words import instant, normalize, text_of

LOOP_RATIO = 2.4
"""Whisper's loop detector (`compression_ratio_threshold`, the same in openai-whisper
and faster-whisper): text that gzip compresses better than this repeats itself. It holds
for Chinese and Japanese as well, because the ratio is of UTF-8 bytes (openai/whisper#561
made it so for that reason): on real text, windows of 60/120/240 characters (about 8, 15
and 30 s of speech) compress at most 1.19/1.45/1.51 in Chinese and 1.51/1.66/1.88 in
Japanese, against 1.6 for 400 characters of German; 800 characters of Japanese, far more
than a window holds, 2.16. Measured on the FLEURS references and Chinese and Japanese
prose (tests/service/policy/test_languages.py keeps one of each)."""
UNSURE_LOGPROB = -1.0
"""Whisper's `log_prob_threshold`: a decode whose average token log-probability is below
this is unsure of itself."""
NO_SPEECH_PROB = 0.3
"""An unsure decode (UNSURE_LOGPROB) whose no-speech probability is above this is taken
for silence and dropped whole. Whisper's rule (openai-whisper's and faster-whisper's
`no_speech_threshold`) uses 0.6; it was lowered to 0.3 (drops more unsure decodes) in
commit 704dbdb of 24 Nov 2026, with final-on-agreement, and no measurement of its own is
recorded: a candidate for tuning, kept as it is here."""
LOOP_RUN = 3
"""This many zero-length words in a row: the decoder is looping past the speech, saying
the whole buffer again (seen on the long recordings); the words from there are cut."""
END_TAIL_S = 0.05
"""A zero-length word starting this close to the end of the decoded audio is invented
("Thank you." piled up at the very end)."""
COMMITTED_SLACK_S = 0.1
"""Words starting more than this before the end of the last committed word were already
committed (the aligner's times move by about this much between decodes)."""
SEAM_S = 0.25
"""A repeat of committed words starting within this of their end is the seam of two
decodes, whatever its length."""
REPEAT_WORDS = 4
"""Later than the seam, an immediate repeat of this many committed words or more is
Whisper looping over its prompt ("Became lawless in the extreme." twice); a shorter one
may be real speech ("no, no")."""


def compression_ratio(text: str) -> float:
    """gzip ratio of the text; Whisper's loop detector (> LOOP_RATIO means repetition)."""
    raw = text.encode("utf-8")
    return len(raw) / max(1, len(zlib.compress(raw)))


def looped(words: Sequence[Word]) -> bool:
    """The words repeat themselves (Whisper's loop detector on their text)."""
    return compression_ratio(text_of(words)) > LOOP_RATIO


def cut_loop(words: list[Word]) -> list[Word]:
    """The words before a run of zero-length ones: the aligner's sign of text the model
    invented past the speech, saying the whole buffer again where the speech stops."""
    for i in range(len(words) - LOOP_RUN + 1):
        if all(instant(w) for w in words[i : i + LOOP_RUN]):
            return words[:i]
    return words


def heard(job: DecodeJob, result: DecodeResult) -> list[Word]:
    """A decode's words in stream time, without what the model invented past the speech:
    zero-length words are the aligner's sign of it, piled up at the very end of the audio
    ("Thank you."), or a run of them where the speech stops, saying the whole buffer again.
    Cut there, keeping the real words before (judged on the whole text, the loop dropped
    them as well, and a final decode that looped lost its utterance). Subtitle credits
    ("Untertitel der Amara.org-Community", phrases.CREDITS) are cut wherever they are."""
    words = [
        Word(w.text, job.start_s + w.start, job.start_s + w.end, w.probability)
        for w in result.words
    ]
    words = [w for w in cut_loop(words) if not (instant(w) and w.start >= job.end_s - END_TAIL_S)]
    return cut_credits(words)


def unsure(result: DecodeResult) -> bool:
    """The decode is unsure of itself (Whisper's log-prob rule)."""
    return result.avg_logprob < UNSURE_LOGPROB


def silent(result: DecodeResult) -> bool:
    """Whisper's own silence rule, a little stricter: a decode it is unsure of and that
    looks like no speech is the classic "Thanks for watching." on a pause."""
    return unsure(result) and result.no_speech_prob > NO_SPEECH_PROB


def drop_repeat(words: list[Word], recent: Sequence[Word], committed_end: float) -> list[Word]:
    """Without a leading repeat of the last committed words (`recent`): at the seam of two
    decodes any repeat, later only one of REPEAT_WORDS or more."""
    if not words:
        return words
    tail = [normalize(w.text) for w in recent]
    at_seam = words[0].start <= committed_end + SEAM_S
    for n in range(min(len(tail), len(words)), 0, -1):
        if tail[-n:] == [normalize(w.text) for w in words[:n]]:
            if at_seam or n >= REPEAT_WORDS:
                words = words[n:]
            break
    return words


def clean(
    job: DecodeJob,
    result: DecodeResult,
    *,
    pending: bool,
    has_speech: Callable[[float, float], bool],
    committed_end: float,
    recent: Sequence[Word],
) -> list[Word]:
    """Stream-time words of a first-pass decode, minus hallucinations and words already
    committed. `pending`: words are committed or tentative (not yet final);
    `has_speech(start, end)`: the speech gate heard speech there; `committed_end`: end of
    the last committed word; `recent`: the last committed words."""
    if silent(result):
        return []
    # A final decode of what is left after the committed words, that no interim
    # decode heard words in and that the model is unsure of, re-hears the tail of
    # the last word ("Psalm 55." then "Five, five.").
    if job.kind is JobKind.FINAL and not pending and unsure(result):
        return []
    words = [w for w in heard(job, result) if has_speech(w.start, w.end)]
    # Whisper's loop detector, on what is left (a loop spread over the speech).
    if looped(words):
        return []
    words = [w for w in words if w.start >= committed_end - COMMITTED_SLACK_S]
    words = drop_repeat(words, recent, committed_end)
    # A sign-off alone ("Vielen Dank.", "ご視聴ありがとうございました", phrases.CLOSERS) in
    # a decode that is unsure or suspects no speech: Whisper's outro on a pause.
    if only_closer(words) and (unsure(result) or result.no_speech_prob > NO_SPEECH_PROB):
        return []
    return words
