"""``make gpu-wheels``: what ``make gpu-check`` needs beyond PyTorch, as binary wheels for the GPU
machine's Python and platform, downloaded where the package registry is reachable and carried
to a machine that may reach none (``make gpu-check`` installs them into ``.gpu-deps/``).

The list is derived, not written down: the third-party distributions that ``gpucheck``'s import
closure imports (:func:`knowshift.core.provenance.closure`), and everything they require, at the
versions installed here (the tested ones), for the target's Python version and platform. PyTorch
and what only PyTorch requires are left out: the GPU machine has its own CUDA build."""

from __future__ import annotations

import argparse
import importlib.metadata as metadata
import subprocess
import sys
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from .core.provenance import closure, distributions

ENTRY = "gpucheck"
# The machine's own: PyTorch (a CUDA build there) and the CUDA libraries it brings.
PROVIDED = ("torch",)
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64")


def _environment(python: str, platform: str) -> dict[str, str]:
    """Marker values of the target: its Python version and a Linux platform."""
    env = default_environment()
    env.update(python_version=python, python_full_version=f"{python}.0",
               sys_platform="linux", platform_system="Linux",
               platform_machine="aarch64" if "aarch64" in platform else "x86_64")
    return env


def requirements(names, env: dict[str, str], stop=()) -> dict[str, str]:
    """Distribution -> installed version, for ``names`` and everything they require,
    recursively (markers read for ``env``; extras not taken), not descending into ``stop``."""
    stop = {canonicalize_name(d) for d in stop}
    todo, found = list(names), {}
    while todo:
        name = canonicalize_name(todo.pop())
        if name in found or name in stop:
            continue
        dist = metadata.distribution(name)
        found[name] = dist.version
        for line in dist.requires or []:
            req = Requirement(line)
            if req.marker is None or req.marker.evaluate(env | {"extra": ""}):
                todo.append(req.name)
    return dict(sorted(found.items()))


def needed(python: str = "3.12", platform: str = PLATFORMS[0], entry: str = ENTRY
           ) -> dict[str, str]:
    """Distribution -> installed version, for every distribution ``entry`` needs on the target
    besides PyTorch: its imports' distributions and their requirements."""
    return requirements(distributions(closure([entry])), _environment(python, platform),
                        stop=PROVIDED)


def download(dest: Path, python: str, platforms: tuple[str, ...] = PLATFORMS) -> list[str]:
    """Binary wheels of :func:`needed` into ``dest``, for ``python`` on ``platforms``."""
    pins = [f"{name}=={version}" for name, version in needed(python, platforms[0]).items()]
    command = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
               "--implementation", "cp", "--python-version", python, "-d", str(dest)]
    for platform in platforms:
        command += ["--platform", platform]
    subprocess.run(command + pins, check=True)
    return pins


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="gpu-wheels", description=__doc__.split("\n\n")[0])
    parser.add_argument("--python", default="3.12", help="the GPU machine's Python (X.Y)")
    parser.add_argument("--platform", action="append",
                        help=f"wheel platform tags (default: {', '.join(PLATFORMS)})")
    parser.add_argument("--dest", default=".gpu-wheels")
    parser.add_argument("--list", action="store_true", help="print the list, download nothing")
    args = parser.parse_args(argv)
    platforms = tuple(args.platform or PLATFORMS)
    if args.list:
        for name, version in needed(args.python, platforms[0]).items():
            print(f"{name}=={version}")
        return 0
    pins = download(Path(args.dest), args.python, platforms)
    size = sum(f.stat().st_size for f in Path(args.dest).glob("*.whl")) / 2 ** 20
    print(f"gpu-wheels: {len(pins)} distributions for Python {args.python} in {args.dest} "
          f"({size:.0f} MiB); carry it to the GPU machine, then `make gpu-check`")
    return 0


if __name__ == "__main__":
    sys.exit(main())
