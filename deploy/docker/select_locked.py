#!/usr/bin/env python3
"""Pick, at image build time, the part of a dependency lock that the chosen plugins need.

An image holds the kernel plus the plugins named by the ``PLUGINS`` build argument (for example
``frontend_http backend_onnx[cpu]``), so a deployment composes only the backends and protocols it uses. The
lock (``requirements/<flavour>.txt``) covers every plugin; this script narrows it in three steps run by the
Dockerfiles, with nothing but the standard library (it runs on the bare base image):

    select_locked.py requirements --plugins "$PLUGINS" SRC > wanted.in   # third-party requirements
    select_locked.py constraints LOCK > constraints.txt                   # the lock without hashes
    pip install --dry-run --ignore-installed --report report.json -c constraints.txt -r wanted.in
    select_locked.py subset LOCK report.json > subset.txt                 # locked lines pip would install
    pip install --require-hashes --no-deps -r subset.txt                  # hash-checked install

pip resolves against the lock's pins, so versions are the lock's; the install itself is hash-checked. A
package the lock lacks stops the build with the name of the stale lock (regenerate it with lock.py).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tomllib
from pathlib import Path

PLUGIN = re.compile(r"^(?P<name>[a-z0-9_]+)(?:\[(?P<extras>[a-z0-9_,-]+)\])?$")
LOCAL_PREFIX = "tritium"


def normalize(name: str) -> str:
    """PEP 503 normalized project name."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirement_name(requirement: str) -> str:
    return normalize(re.split(r"[\s\[<>=!~;(]", requirement.strip(), maxsplit=1)[0])


def parse_plugins(text: str, src: Path) -> list[tuple[Path, list[str]]]:
    """``name[extra,...]`` words -> (plugin folder, extras); unknown names are an error listing the known."""
    known = sorted(p.parent.name for p in (src / "plugins").glob("*/pyproject.toml"))
    chosen = []
    for word in text.split():
        match = PLUGIN.match(word)
        if match is None or match["name"] not in known:
            raise SystemExit(f"select_locked: unknown plugin '{word}' in PLUGINS; known: {', '.join(known)}")
        extras = [e for e in (match["extras"] or "").split(",") if e]
        chosen.append((src / "plugins" / match["name"], extras))
    return chosen


def wanted_requirements(src: Path, plugins: str) -> list[str]:
    """Third-party requirements of the kernel and the chosen plugins (with their chosen extras)."""
    wanted: set[str] = set()
    for folder, extras in [(src / "core", []), *parse_plugins(plugins, src)]:
        project = tomllib.loads((folder / "pyproject.toml").read_text())["project"]
        optional = project.get("optional-dependencies", {})
        for extra in extras:
            if extra not in optional:
                raise SystemExit(f"select_locked: plugin '{folder.name}' has no extra '{extra}'")
        for requirement in [*project.get("dependencies", []), *(r for e in extras for r in optional[e])]:
            if not _requirement_name(requirement).startswith(LOCAL_PREFIX):
                wanted.add(requirement.strip())
    return sorted(wanted, key=str.lower)


def locked_entries(lock_text: str) -> dict[str, str]:
    """Normalized name -> the entry's full text (``name==version`` and its ``--hash`` lines)."""
    entries: dict[str, str] = {}
    for block in re.split(r"\n(?=[A-Za-z0-9])", lock_text):
        first = block.split("\n", 1)[0]
        if first.startswith("#") or "==" not in first:
            continue
        entries[normalize(first.split("==", 1)[0].strip())] = block.strip() + "\n"
    return entries


def constraints(lock_text: str) -> list[str]:
    """The lock's pins without hashes (pip does not take hashes in a constraints file)."""
    return [entry.split(" ", 1)[0].split("\n", 1)[0] for entry in locked_entries(lock_text).values()]


def subset(lock_text: str, report: dict) -> list[str]:
    """The lock entries for every package pip's installation report would install."""
    entries = locked_entries(lock_text)
    names = sorted(normalize(item["metadata"]["name"]) for item in report.get("install", []))
    missing = [name for name in names if name not in entries]
    if missing:
        raise SystemExit(f"select_locked: not in the lock: {', '.join(missing)} (the lock is stale: run lock.py)")
    return [entries[name] for name in names]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    wanted = commands.add_parser("requirements", help="third-party requirements of the kernel and PLUGINS")
    wanted.add_argument("--plugins", required=True)
    wanted.add_argument("src", type=Path, help="folder holding core/ and plugins/")
    folders = commands.add_parser("folders", help="the folders to build wheels from (core first)")
    folders.add_argument("--plugins", required=True)
    folders.add_argument("src", type=Path)
    pins = commands.add_parser("constraints", help="the lock as a constraints file")
    pins.add_argument("lock", type=Path)
    pick = commands.add_parser("subset", help="the lock entries an installation report needs")
    pick.add_argument("lock", type=Path)
    pick.add_argument("report", type=Path)
    args = parser.parse_args(argv)
    if args.command == "requirements":
        lines = wanted_requirements(args.src, args.plugins)
    elif args.command == "folders":
        lines = [str(args.src / "core"), *(str(folder) for folder, _ in parse_plugins(args.plugins, args.src))]
    elif args.command == "constraints":
        lines = constraints(args.lock.read_text())
    else:
        lines = subset(args.lock.read_text(), json.loads(args.report.read_text()))
    sys.stdout.write("".join(line if line.endswith("\n") else line + "\n" for line in lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
