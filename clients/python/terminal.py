"""What the CLI draws on a terminal: one status line (progress and interim text) that final
lines scroll above, and clock-style times."""

from __future__ import annotations

import shutil
from typing import TextIO


def clock(t: float) -> str:
    """Seconds as [h:]mm:ss.ss, the way the CLI prints audio times."""
    h, rest = divmod(max(t, 0.0), 3600)
    m, s = divmod(rest, 60)
    return f"{int(h)}:{int(m):02d}:{s:05.2f}" if h else f"{int(m):02d}:{s:05.2f}"


class StatusLine:
    """The bottom line of the terminal, redrawn in place: a progress bar when the length of
    the audio is known, then the tail of the interim text (the part that is changing).

    Disabled when `out` is not a terminal, so pipes and files only get final lines.
    """

    def __init__(self, out: TextIO, *, enabled: bool, total_s: float | None = None) -> None:
        self.out, self.enabled, self.total_s = out, enabled, total_s
        self.done_s = 0.0
        self.interim = ""
        self.note = ""
        self._shown = False

    def render(self, width: int) -> str:
        """The line for a terminal `width` columns wide (always shorter than it)."""
        head = ""
        if self.total_s:
            frac = min(1.0, self.done_s / self.total_s)
            cells = 20
            full = int(frac * cells)
            bar = "█" * full + ("▌" if frac * cells - full >= 0.5 else "")
            head = f"▕{bar.ljust(cells)}▏{frac:4.0%} {clock(self.done_s)[:5]} "
            if width - len(head) < 30:  # a narrow terminal: the words matter more than the bar
                head = f"{frac:4.0%} "
        elif self.done_s:
            head = f"{clock(self.done_s)[:5]} "
        text = self.note or self.interim
        room = width - 1 - len(head)
        if room < 8:
            return head[: width - 1]
        if len(text) > room - 2:
            text = "…" + text[-(room - 3) :]
        return head + ("… " if self.interim and not self.note else "") + text

    def draw(self) -> None:
        if not self.enabled:
            return
        width = shutil.get_terminal_size((80, 24)).columns
        self.out.write("\r\x1b[K" + self.render(width))
        self.out.flush()
        self._shown = True

    def clear(self) -> None:
        """Erase the line, so a final line can be printed where it was."""
        if self.enabled and self._shown:
            self.out.write("\r\x1b[K")
            self.out.flush()
            self._shown = False


class FinalLines:
    """Final lines printed to `out`; a revision rewrites its line in place on a terminal.

    A revision corrects a line the user has already read, so on a terminal it replaces
    that line where it stands (ANSI cursor moves) while it is still on screen and both
    texts fit one row; otherwise (a pipe, a file, a line scrolled away, a longer text) it
    is printed as a new line marked "(revised)" with the time range of the line it
    corrects.
    """

    def __init__(self, out: TextIO, *, in_place: bool) -> None:
        self.out, self.in_place = out, in_place
        self.language = ""
        """The stream's language once known (from its session, or its first final)."""
        self.names: dict[str, str] = {}
        """Speaker label -> name, once the stream sent names (remembered voices)."""
        self._rows: list[tuple[int, int]] = []  # (segment index, terminal rows), oldest first

    @staticmethod
    def _line(start: float, end: float, text: str, revised: bool = False) -> str:
        return f"[{clock(start)} → {clock(end)}] {'(revised) ' if revised else ''}{text}"

    def final(self, index: int, start: float, end: float, text: str, revision: int) -> None:
        line = self._line(start, end, text)
        size = shutil.get_terminal_size((80, 24))
        rows = max(1, -(-len(line) // size.columns))
        if revision and self.in_place and rows == 1:
            below = 0
            for seg, r in reversed(self._rows):
                below += r
                if seg == index:
                    if r == 1 and below < size.lines - 1:
                        # up to the line, rewrite it, back down to where printing goes on
                        self.out.write(f"\x1b[{below}A\r\x1b[2K{line}\x1b[{below}B\r")
                        self.out.flush()
                        return
                    break
        if revision:
            line = self._line(start, end, text, revised=True)
            rows = max(1, -(-len(line) // size.columns))
        print(line, file=self.out, flush=True)
        self._rows.append((index, rows))
        del self._rows[: -size.lines]  # only what can still be on screen
