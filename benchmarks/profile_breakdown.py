"""Where the server's time goes, from a py-spy raw profile: the command line of
benchmarks/lib/profile.py (which says how stacks are grouped into stages).

    python -m benchmarks.stream_bench --streams 2 --limit 4 --profile /tmp/server.txt
    python -m benchmarks.profile_breakdown /tmp/server.txt
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from benchmarks.lib.profile import breakdown


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("file", help="py-spy record --format raw --threads output")
    p.add_argument("--rate", type=int, default=0, help="py-spy's sampling rate (per second)")
    args = p.parse_args()
    print(json.dumps(breakdown(Path(args.file), args.rate), indent=2))


if __name__ == "__main__":
    main()
