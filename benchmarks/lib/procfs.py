"""CPU time, memory and threads of a process, read from /proc (Linux)."""

from __future__ import annotations

import os
import re
from pathlib import Path


def stat_cpu_s(stat: Path) -> float:
    """User + system CPU seconds from a /proc `stat` file (of a process or a thread)."""
    fields = stat.read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_stats(pid: int) -> tuple[float, int]:
    """(CPU seconds, peak RSS bytes) of a process, from /proc."""
    cpu = stat_cpu_s(Path(f"/proc/{pid}/stat"))
    peak = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            peak = int(line.split()[1]) * 1024
    return cpu, peak


def thread_cpu(pid: int) -> dict[str, float]:
    """CPU seconds of a process by thread name ("main" is the event loop's thread;
    numbered pool threads such as engine_0 and engine_1 add up under "engine")."""
    out: dict[str, float] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            name = (task / "comm").read_text().strip()
            cpu = stat_cpu_s(task / "stat")
        except OSError:  # the thread ended between the listing and the read
            continue
        label = "main" if task.name == str(pid) else re.sub(r"_\d+$", "", name)
        out[label] = out.get(label, 0.0) + cpu
    return out


def child_pid(pid: int) -> int | None:
    for task in Path(f"/proc/{pid}/task").iterdir():
        children = (task / "children").read_text().split()
        if children:
            return int(children[0])
    return None


def proc_counts(pid: int) -> dict[str, float]:
    """RSS (MB), threads, open fds and CPU seconds of a process, from /proc."""
    status = Path(f"/proc/{pid}/status").read_text()
    rss = re.search(r"VmRSS:\s+(\d+)", status)
    threads = re.search(r"Threads:\s+(\d+)", status)
    assert rss and threads
    return {
        "rss_mb": round(int(rss.group(1)) / 1024, 1),
        "threads": int(threads.group(1)),
        "fds": len(os.listdir(f"/proc/{pid}/fd")),
        "cpu_s": stat_cpu_s(Path(f"/proc/{pid}/stat")),
    }


def thread_names(pid: int) -> dict[str, int]:
    """Threads of a process by kernel name (native pools and the server's own pools are
    named; other Python threads are all "python")."""
    names: dict[str, int] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            name = (task / "comm").read_text().strip()
        except OSError:  # ended meanwhile
            continue
        names[name] = names.get(name, 0) + 1
    return dict(sorted(names.items()))
