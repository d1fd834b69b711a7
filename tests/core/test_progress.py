"""Progress seen from the terminal: what a stage's bar writes, what the pipeline's watcher shows."""

import io
import time

from knowshift.core import progress
from knowshift.core.progress import Progress, Watcher


def test_a_stage_bar_writes_its_state_and_the_watcher_shows_it_with_a_rate(tmp_path):
    file, out = tmp_path / "slick.json", io.StringIO()
    with Watcher(file, "slick", stream=out, every_s=0.02):
        with Progress(file, 6, "SliCK greedy (T=0)", "answers", enabled=False,
                      initial=2) as bar:
            for i in range(4):
                time.sleep(0.6)                   # slower than the file's write interval
                bar.update(1, f"chunk {i + 3}/6")
        assert progress.read(file) == {"desc": "SliCK greedy (T=0)", "unit": "answers",
                                       "total": 6, "initial": 2, "done": 6,
                                       "detail": "chunk 6/6"}
        with Progress(file, 3, "SliCK sampling (T=0.5)", "answers", enabled=False) as bar:
            bar.update(3)
    shown = out.getvalue()
    assert "slick: SliCK greedy (T=0)" in shown and "6/6" in shown and "chunk 5/6" in shown
    assert "answers/s" in shown or "s/answers" in shown      # a rate, hence an ETA
    assert "slick: SliCK sampling (T=0.5)" in shown and "3/3" in shown


def test_no_file_no_bar_and_a_stale_file_is_not_shown(tmp_path):
    file, out = tmp_path / "finetune.json", io.StringIO()
    file.write_text('{"desc": "from an old run", "total": 9, "done": 9}')
    with Watcher(file, "finetune", stream=out, every_s=0.02):
        time.sleep(0.1)
    assert out.getvalue() == ""
    assert progress.read(tmp_path / "missing.json") is None
