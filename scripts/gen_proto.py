"""Generate the Python gRPC code from proto/ into gen/python/.

The generated tree is committed so that a clone runs without the code generator;
tests/test_generated_code.py regenerates into a temporary directory and fails
when the committed files differ (the proto changed without re-running this).
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTO_DIR = ROOT / "proto"
DEFAULT_OUT = ROOT / "gen" / "python"


def generate(out_dir: Path) -> None:
    """Write *_pb2.py, *_pb2_grpc.py and .pyi stubs for every proto file into out_dir."""
    protos = sorted(str(p.relative_to(PROTO_DIR)) for p in PROTO_DIR.rglob("*.proto"))
    pkg = out_dir / "transcribe"
    if pkg.exists():
        shutil.rmtree(pkg)
    out_dir.mkdir(parents=True, exist_ok=True)
    include = str(Path(protoc.__file__).parent / "_proto")
    bindir = Path(sys.executable).parent  # mypy-protobuf's plugins live beside the interpreter
    args = [
        "protoc",
        f"-I{PROTO_DIR}",
        f"-I{include}",
        f"--plugin=protoc-gen-mypy={bindir / 'protoc-gen-mypy'}",
        f"--plugin=protoc-gen-mypy_grpc={bindir / 'protoc-gen-mypy_grpc'}",
        f"--python_out={out_dir}",
        f"--mypy_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        f"--mypy_grpc_out={out_dir}",
        *protos,
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    for folder in [pkg, *[p for p in pkg.rglob("*") if p.is_dir()]]:
        (folder / "__init__.py").write_text(
            '"""Generated from proto/ by scripts/gen_proto.py; do not edit."""\n'
        )
        (folder / "py.typed").write_text("")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output directory")
    generate(parser.parse_args().out)


if __name__ == "__main__":
    main()
