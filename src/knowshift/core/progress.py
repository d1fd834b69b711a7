"""Progress of a long stage, seen in two places.

A stage runs inside a notebook kernel, so its tqdm bars reach the notebook, not the terminal of
``knowshift run``. :class:`Progress` therefore also writes what it has done to a small JSON file
of the run folder (:meth:`knowshift.core.layout.RunFolder.progress`), and :class:`Watcher`, in the
pipeline, reads that file once a second and shows it in the terminal as a tqdm bar with its
rate and ETA. Work found finished in a cache counts as the bar's starting point, so the ETA is
read from the work actually being done."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

from tqdm.auto import tqdm

from .files import write_json

WRITE_EVERY_S = 0.5


class Progress:
    """A tqdm bar that also writes ``{desc, unit, total, initial, done, detail}`` to ``file``
    (at most every :data:`WRITE_EVERY_S` seconds, and at the end)."""

    def __init__(self, file: str | Path | None, total: int, desc: str, unit: str,
                 initial: int = 0, enabled: bool = True, leave: bool = True):
        self.file = Path(file) if file else None
        self.desc, self.unit, self.total, self.initial = desc, unit, total, initial
        self.done, self.detail, self._written = initial, "", 0.0
        self.bar = tqdm(total=total, desc=desc, unit=unit, initial=initial,
                        disable=not enabled, leave=leave)
        self._write(force=True)

    def update(self, n: int = 1, detail: str = "") -> None:
        self.done += n
        if detail:
            self.detail = detail
            self.bar.set_postfix_str(detail, refresh=False)
        self.bar.update(n)
        self._write()

    def set(self, done: int, detail: str = "") -> None:
        """Move the bar to ``done`` (work counted elsewhere, e.g. by jobs)."""
        self.update(max(0, done - self.done), detail)

    def close(self) -> None:
        self._write(force=True)
        self.bar.close()

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _write(self, force: bool = False) -> None:
        now = time.monotonic()
        if self.file is None or (not force and now - self._written < WRITE_EVERY_S):
            return
        self._written = now
        write_json({"desc": self.desc, "unit": self.unit, "total": self.total,
                    "initial": self.initial, "done": self.done, "detail": self.detail},
                   self.file)


def read(file: str | Path) -> dict | None:
    """What a :class:`Progress` last wrote to ``file`` (None if nothing readable is there)."""
    try:
        state = json.loads(Path(file).read_text())
    except (OSError, ValueError):
        return None
    return state if isinstance(state, dict) and {"desc", "total", "done"} <= set(state) else None


class Watcher:
    """Shows the progress file of a running stage in the terminal, one bar per phase (a phase
    is one ``desc``), until :meth:`stop`. Use as a context manager around the stage."""

    def __init__(self, file: str | Path, label: str, stream=None, every_s: float = 1.0):
        self.file, self.label, self.stream, self.every_s = Path(file), label, stream, every_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._bar, self._phase, self._detail = None, None, ""

    def __enter__(self) -> "Watcher":
        self.file.unlink(missing_ok=True)           # a finished run's file is not this run's
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self._show()                                # the last state, then close
        if self._bar is not None:
            self._bar.close()

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            self._show()

    def _show(self) -> None:
        state = read(self.file)
        if state is None:
            return
        phase = (state["desc"], state["total"])
        if phase != self._phase:
            if self._bar is not None:                # phases run one after the other: the
                self._bar.update(self._bar.total - self._bar.n)    # last one is finished
                self._bar.close()
            self._phase = phase
            self._bar = tqdm(total=state["total"], initial=state.get("initial", 0),
                             desc=f"  {self.label}: {state['desc']}",
                             unit=state.get("unit", "it"), file=self.stream, leave=True,
                             dynamic_ncols=True, mininterval=0.5)
        if state.get("detail") and state["detail"] != self._detail:
            self._detail = state["detail"]
            self._bar.set_postfix_str(state["detail"], refresh=False)
        self._bar.update(max(0, state["done"] - self._bar.n))
