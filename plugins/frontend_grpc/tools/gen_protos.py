"""Generate the gRPC frontend's protobuf module into Tritium's private descriptor pool.

Run with the development virtualenv from the repository root::

    .venv/bin/python plugins/frontend_grpc/tools/gen_protos.py           # regenerate the committed files
    .venv/bin/python plugins/frontend_grpc/tools/gen_protos.py --check   # exit 1 when they are out of date

``grpc_tools.protoc`` compiles ``tritium_frontend_grpc/proto/grpc_service.proto`` (which imports the
kernel's ``tritium/proto/model_config.proto``) into ``grpc_service_pb2.py`` and a ``.pyi`` stub; this script
then rewrites the module so that it adds its file to ``tritium.proto.POOL`` instead of protobuf's default
pool. Why: ``tritonclient.grpc`` registers its own copy of package ``inference`` in the default pool, and
one pool refuses a second, different file defining the same message names; the kernel's ModelConfig lives
in ``tritium.proto.POOL`` already, and our ``ModelConfigResponse`` must reference that very message.
No ``*_pb2_grpc.py`` is generated: the servicer is built from generic method handlers.
"""

from __future__ import annotations

import argparse
import filecmp
import re
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

PLUGIN_SRC = Path(__file__).resolve().parents[1] / "src"
CORE_SRC = Path(__file__).resolve().parents[3] / "core" / "src"
PROTO = "tritium_frontend_grpc/proto/grpc_service.proto"
GENERATED = ("tritium_frontend_grpc/proto/grpc_service_pb2.py", "tritium_frontend_grpc/proto/grpc_service_pb2.pyi")

_DEFAULT_POOL = "_descriptor_pool.Default()"
_ANCHOR = "from google.protobuf.internal import builder as _builder\n"
_POOL_IMPORT = "from tritium.proto import POOL as _tritium_pool\n"


def use_private_pool(source: str) -> str:
    """Rewrite a generated ``_pb2.py`` so it registers in ``tritium.proto.POOL``.

    Raises ValueError when the generated code does not have the expected shape (a new protoc changed it):
    failing here beats silently registering in the default pool.
    """
    if source.count(_DEFAULT_POOL) != 1 or source.count(_ANCHOR) != 1:
        raise ValueError("unexpected generated code: expected one default-pool use and one builder import")
    source = source.replace(_DEFAULT_POOL, "_tritium_pool")
    return source.replace(_ANCHOR, _ANCHOR + _POOL_IMPORT)


def generate(out_dir: Path) -> list[Path]:
    """Compile the proto into ``out_dir`` (a source root) and post-process it; return the files."""
    out_dir.mkdir(parents=True, exist_ok=True)
    well_known = resources.files("grpc_tools") / "_proto"
    cmd = [
        sys.executable,
        "-m",
        "grpc_tools.protoc",
        f"-I{well_known}",
        f"-I{PLUGIN_SRC}",
        f"-I{CORE_SRC}",
        f"--python_out={out_dir}",
        f"--pyi_out={out_dir}",
        PROTO,
    ]
    subprocess.run(cmd, check=True)
    written = [out_dir / rel for rel in GENERATED]
    module = written[0]
    module.write_text(use_private_pool(module.read_text()))
    return written


def _schema(path: Path) -> str | None:
    """The serialized file descriptor a generated module registers (its schema), or None."""
    match = re.search(r"AddSerializedFile\((b'.*?')\)\n", path.read_text(), re.DOTALL)
    return match.group(1) if match else None


def stale_files(committed_dir: Path = PLUGIN_SRC, *, exact: bool = False) -> list[str]:
    """Regenerate into a temporary directory; return the committed files that are missing or whose schema
    differs (``exact``: whose bytes differ at all; other protoc versions word the same schema differently)."""
    with tempfile.TemporaryDirectory() as tmp:
        generate(Path(tmp))
        stale = []
        for rel in GENERATED:
            fresh, committed = Path(tmp) / rel, committed_dir / rel
            if not committed.is_file():
                stale.append(rel)
            elif exact or rel.endswith(".pyi"):
                if exact and not filecmp.cmp(fresh, committed, shallow=False):
                    stale.append(rel)
            elif _schema(fresh) != _schema(committed) or _schema(fresh) is None:
                stale.append(rel)
        return stale


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check that the committed files are current")
    parser.add_argument("--exact", action="store_true", help="with --check: compare bytes, not just the schema")
    args = parser.parse_args(argv)
    if args.check:
        stale = stale_files(exact=args.exact)
        for rel in stale:
            print(f"out of date: {PLUGIN_SRC / rel} (run {Path(__file__).name})", file=sys.stderr)
        return 1 if stale else 0
    for path in generate(PLUGIN_SRC):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
