"""Whisper's known silence hallucinations, as data: what it learnt from subtitled videos,
whose credits and sign-offs sit over silent audio. Pure; imports only the word helpers.

Two kinds, because one of them is also real speech:
- CREDITS (subtitle credits, channel plugs) are never said in a meeting: they are cut
  wherever they start in a decode, with the rest of their sentence ("Untertitelung des
  ZDF, 2020.");
- CLOSERS ("Vielen Dank.", "Merci.") are: a decode is dropped for one only when the
  phrase is all of its new words and the decode looks like no speech (filters.clean).

Phrases are matched on their letters and digits alone (case, accents as written, spaces
and punctuation ignored), so the aligner's word boundaries and Whisper's punctuation
do not matter, and in every stream whatever its language: Whisper hallucinates Japanese
sign-offs in streams of other languages too (amical#71).

Where each comes from: the reports cited per line. A probe of Whisper base (int8, greedy
and beam 5, no VAD, with and without a prompt) on 5 s of digital silence, white and pink
noise (-50 to -30 dBFS) and the last 2 s of the FLEURS clips in
../shared/speech/multilingual, each language forced, produced none of them: it said
"Ich bin hier.", "...", "y", "e aí", "おはようございます。", "我认为你会不会有这些事"
and loops ("e o que é o que é ..."), with no-speech probability 0.6-0.9 and log-prob
mostly under -1 (the silence rule), some as sure as -0.2 on digital silence, which the
speech gate never sends to the model. The streaming replay (benchmarks/policy_sim.py,
--model base) met one: "E aí, pessoal!" in the final decode after a Portuguese clip.
The rest of the table is for the larger models and long silences of the reports.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence

from service.domain import Word
from service.policy.words import ends_sentence

AMARA = (
    "issue 20's list; Amara.org credits reported in Italian (Purfview/whisper-standalone-win#144)"
    " and English (silverstein/minutes#242)"
)
BRIEF = "issue 20's list (not reproduced by base here)"

CREDITS: tuple[tuple[str, str, str], ...] = (
    # (language, the phrase or its beginning, where it is reported)
    ("en", "Subtitles by the Amara.org community", "silverstein/minutes#242"),
    ("de", "Untertitel der Amara.org-Community", AMARA),
    ("de", "Untertitelung des ZDF", f"{BRIEF}; machinelearningZH/audio-transcription#7"),
    # The ZDF credit as it also begins; German "Untertitel von …" over silence is reported
    # in machinelearningZH/audio-transcription#7.
    ("de", "Untertitel im Auftrag des ZDF", "variant of the line above"),
    ("fr", "Sous-titres réalisés par la communauté d'Amara.org", AMARA),
    ("es", "Subtítulos realizados por la comunidad de Amara.org", AMARA),
    ("pt", "Legendas pela comunidade Amara.org", "the Amara credit in Portuguese (by analogy)"),
    (
        "zh",
        "字幕由Amara.org社区提供",
        f"{AMARA}; zh credits: YaoFANGUK/video-subtitle-generator#29",
    ),
    ("zh", "请不吝点赞 订阅 转发 打赏支持明镜与点点栏目", BRIEF),
)
"""Subtitle credits and channel plugs: never speech. Cut wherever they start."""

CLOSERS: tuple[tuple[str, str, str], ...] = (
    ("en", "Thank you.", "McCloudS/subgen#21, openai/whisper discussion #679"),
    ("en", "Thanks for watching!", "McCloudS/subgen#21, openai/whisper discussion #679"),
    ("en", "Thank you for watching.", "woheller69/whisperIME#57, silverstein/minutes#242"),
    ("de", "Vielen Dank.", BRIEF),
    ("fr", "Merci.", BRIEF),
    ("es", "Gracias.", BRIEF),
    ("pt", "Obrigado.", BRIEF),
    # Said by base itself here: in a final decode of the silence after fleurs_pt_004
    # (policy_sim, dropped by the silence rule as well) and on noise ("e aí").
    ("pt", "E aí, pessoal!", "Whisper base on this machine (policy_sim, FLEURS pt)"),
    ("ja", "ご視聴ありがとうございました", "SYSTRAN/faster-whisper#850, amicalhq/amical#71"),
    ("ja", "ありがとうございました", "amicalhq/amical#71"),
    ("ja", "おやすみなさい", "amicalhq/amical#71"),
    ("ja", "次の動画でお会いしましょう", "Vexa-ai/vexa#617"),
    ("zh", "谢谢大家", "YaoFANGUK/video-subtitle-generator#29"),
)
"""Sign-offs that are also said for real: dropped only as a whole, unsure decode."""

CREDIT_TAIL_WORDS = 3
"""Words after a credit's table text still cut with it when its sentence goes on
("Untertitelung des ZDF, 2020."): a year, a channel name."""


def key(text: str) -> str:
    """Letters and digits of the text, NFKC and case folded: what phrases match on."""
    text = unicodedata.normalize("NFKC", text).casefold()
    return "".join(c for c in text if unicodedata.category(c)[0] in "LN")


_CREDIT_KEYS = tuple(k for k in (key(p) for _, p, _ in CREDITS) if k)
_CLOSER_KEYS = frozenset(k for k in (key(p) for _, p, _ in CLOSERS) if k)


def cut_credits(words: list[Word]) -> list[Word]:
    """The words without any subtitle credit (CREDITS) and the rest of its sentence."""
    keys = [key(w.text) for w in words]
    starts: list[int] = []  # where each word's key starts in the joined key
    pos = 0
    for k in keys:
        starts.append(pos)
        pos += len(k)
    joined = "".join(keys)
    for credit in _CREDIT_KEYS:
        at = joined.find(credit)
        while at >= 0 and at not in starts:  # a match must start at a word
            at = joined.find(credit, at + 1)
        if at < 0:
            continue
        first = starts.index(at)
        end = at + len(credit)
        last = first
        while last + 1 < len(words) and starts[last + 1] < end:
            last += 1
        tail = 0
        while not ends_sentence(words[last]) and last + 1 < len(words) and tail < CREDIT_TAIL_WORDS:
            last, tail = last + 1, tail + 1
        return cut_credits([*words[:first], *words[last + 1 :]])
    return words


def only_closer(words: Sequence[Word]) -> bool:
    """The words are one sign-off (CLOSERS) and nothing else."""
    return bool(words) and key("".join(w.text for w in words)) in _CLOSER_KEYS
