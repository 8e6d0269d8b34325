"""Generate Tritium's protobuf modules into its private descriptor pool.

Run with the development virtualenv (``make proto`` does)::

    .venv/bin/python core/tools/gen_protos.py            # regenerate the committed tritium/proto/*_pb2.py(i)
    .venv/bin/python core/tools/gen_protos.py --check    # exit 1 when a committed file is out of date

``grpc_tools.protoc`` writes ``<name>_pb2.py`` (and a ``.pyi`` stub for type checkers); this script then
rewrites the generated module so that it registers its descriptors in ``tritium.proto.POOL`` instead of
protobuf's default pool. Why: ``tritonclient.grpc`` registers its own ``inference.ModelConfig`` in the default
pool, and a pool refuses a second, different file defining the same message name. With the private pool both
copies live in one process, and messages cross between them as bytes.

Protos are compiled with ``-I core/src``, so a file's path inside the pool is its import path, e.g.
``tritium/proto/model_config.proto``. Another proto of the project (the gRPC service definitions) may
``import "tritium/proto/model_config.proto";`` and be generated with this script too::

    .venv/bin/python core/tools/gen_protos.py -I plugins/frontend_grpc/src \\
        --out plugins/frontend_grpc/src  tritium_frontend_grpc/proto/grpc_service.proto

(``-I core/src`` is always added; ``--out`` defaults to core/src.)
"""

from __future__ import annotations

import argparse
import filecmp
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

CORE_SRC = Path(__file__).resolve().parents[1] / "src"
DEFAULT_PROTOS = ("tritium/proto/model_config.proto",)
POOL_MODULE = "tritium.proto"

_DEFAULT_POOL = "_descriptor_pool.Default()"
_PRIVATE_POOL = "_tritium_pool"
_ANCHOR = "from google.protobuf.internal import builder as _builder\n"


def use_private_pool(source: str, pool_module: str = POOL_MODULE) -> str:
    """Rewrite a generated ``_pb2.py`` module to add its file to ``<pool_module>.POOL``.

    Raises ValueError when the generated code does not have the expected shape (a new protoc version
    changed it): better to fail here than to register in the default pool silently.
    """
    if source.count(_DEFAULT_POOL) != 1 or source.count(_ANCHOR) != 1:
        raise ValueError("unexpected generated code: expected one default-pool use and one builder import")
    source = source.replace(_DEFAULT_POOL, _PRIVATE_POOL)
    return source.replace(_ANCHOR, f"{_ANCHOR}from {pool_module} import POOL as {_PRIVATE_POOL}\n")


def run_protoc(protos: Sequence[str], include_dirs: Sequence[Path], out_dir: Path) -> None:
    """Compile ``protos`` (paths relative to an include dir) into ``out_dir`` with grpc_tools.protoc."""
    well_known = resources.files("grpc_tools") / "_proto"
    cmd = [sys.executable, "-m", "grpc_tools.protoc", f"-I{well_known}"]
    cmd += [f"-I{d}" for d in include_dirs]
    cmd += [f"--python_out={out_dir}", f"--pyi_out={out_dir}", *protos]
    subprocess.run(cmd, check=True)


def generated_paths(protos: Sequence[str]) -> list[str]:
    """The files protoc writes for ``protos``, relative to the output directory."""
    stems = [p.removesuffix(".proto") for p in protos]
    return [f"{stem}_pb2{ext}" for stem in stems for ext in (".py", ".pyi")]


def generate(
    out_dir: Path,
    protos: Sequence[str] = DEFAULT_PROTOS,
    include_dirs: Sequence[Path] = (),
    pool_module: str = POOL_MODULE,
) -> list[Path]:
    """Generate and post-process ``protos`` into ``out_dir``; return the files written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    run_protoc(protos, [*include_dirs, CORE_SRC], out_dir)
    written = [out_dir / rel for rel in generated_paths(protos)]
    for path in written:
        if path.suffix == ".py":
            path.write_text(use_private_pool(path.read_text(), pool_module))
    return written


def stale_files(
    committed_dir: Path,
    protos: Sequence[str] = DEFAULT_PROTOS,
    include_dirs: Sequence[Path] = (),
    pool_module: str = POOL_MODULE,
) -> list[str]:
    """Regenerate into a temporary directory; return the committed files that differ or are missing."""
    with tempfile.TemporaryDirectory() as tmp:
        generate(Path(tmp), protos, include_dirs, pool_module)
        return [
            rel
            for rel in generated_paths(protos)
            if not (committed_dir / rel).is_file()
            or not filecmp.cmp(Path(tmp) / rel, committed_dir / rel, shallow=False)
        ]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("protos", nargs="*", default=list(DEFAULT_PROTOS), help="proto import paths")
    parser.add_argument("-I", dest="include_dirs", action="append", type=Path, default=[])
    parser.add_argument("--out", type=Path, default=CORE_SRC, help="output root (default: core/src)")
    parser.add_argument("--pool-module", default=POOL_MODULE, help="module defining POOL")
    parser.add_argument("--check", action="store_true", help="only check that the files are current")
    args = parser.parse_args(argv)
    if args.check:
        stale = stale_files(args.out, args.protos, args.include_dirs, args.pool_module)
        for rel in stale:
            print(f"out of date: {args.out / rel} (run core/tools/gen_protos.py)", file=sys.stderr)
        return 1 if stale else 0
    for path in generate(args.out, args.protos, args.include_dirs, args.pool_module):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
