"""A stream's language: detected per decode until its first final, then fixed.

While a multilingual model detects, every decode runs the detector on its own audio
and interim results carry that decode's guess. The decode that makes the first final
result fixes the language: every later decode is forced to it (no switching
mid-transcript, and no detection cost), and the transcript stores it.
"""

from __future__ import annotations

import enum


class LanguageState(enum.Enum):
    """Whether the stream's language is still being detected."""

    DETECTING = "detecting"
    FIXED = "fixed"


class StreamLanguage:
    """The language of one stream's decodes and results."""

    def __init__(self, language: str) -> None:
        """`language` "" detects (multilingual models only); a code fixes it now."""
        self.language = language
        self.state = LanguageState.FIXED if language else LanguageState.DETECTING

    @property
    def forced(self) -> str:
        """What a decode request asks for: the fixed language, or "" (detect)."""
        return self.language if self.state is LanguageState.FIXED else ""

    def on_result(self, decoded: str, is_final: bool) -> tuple[str, bool]:
        """The language of a result from a decode in `decoded`, and whether this result
        fixed it (the caller stores it then)."""
        if self.state is LanguageState.FIXED:
            return self.language, False
        if not is_final:
            return decoded, False
        self.language, self.state = decoded, LanguageState.FIXED
        return decoded, True
