"""How a chapter shows what its stage computed: tables a reader can read, figures sized for the
book's text column, and numbers glued into the chapter's prose.

The notebooks call these after their stage has run; nothing here changes a result. Tables are
pandas Stylers (named columns, rounded, ``–`` where a value does not exist, with a note saying
why); figures are SVG with their text kept as text (:func:`setup`); prose numbers go through
myst-nb's ``glue`` (:func:`say`), so a sentence cannot drift from the table it comes from."""

from __future__ import annotations

from typing import Iterable

import pandas as pd

MISSING = "–"       # shown where a value does not exist (never "NaN")


def setup() -> None:
    """Figures as SVG (the browser can scale and measure them) in the book's style."""
    from matplotlib_inline.backend_inline import set_matplotlib_formats

    from ..study import figures
    figures.use_style()
    set_matplotlib_formats("svg")


def say(key: str, text) -> None:
    """Glue ``text`` (markdown, or a number already formatted) under ``key`` for the chapter's
    prose (``{glue:md}`key```); shows nothing where it is called."""
    from IPython.display import Markdown
    from myst_nb import glue
    glue(key, Markdown(str(text)), display=False)


def points(x: float, digits: int = 1, signed: bool = False) -> str:
    """A share (0-1) in points, as the paper reports accuracies; ``–`` when missing."""
    if x is None or pd.isna(x):
        return MISSING
    return f"{100 * x:{'+' if signed else ''}.{digits}f}"


def table(frame: pd.DataFrame, *, columns: dict[str, str] | None = None,
          percent: Iterable[str] = (), digits: int = 1, note: str | None = None,
          index: bool = False, caption: str | None = None):
    """``frame`` as the book shows it: columns renamed by ``columns`` (and only those, in that
    order, when given), the ``percent`` columns (shares 0-1) in points, other numbers rounded to
    ``digits``, ``–`` where a value is missing, and ``note`` under the table (what ``–`` means,
    what the numbers are)."""
    shown = frame if index else frame.reset_index(drop=frame.index.name is None
                                                  and not isinstance(frame.index,
                                                                     pd.MultiIndex))
    if columns:
        shown = shown[list(columns)].rename(columns=columns)
        percent = [columns.get(c, c) for c in percent]
    percent = set(percent)
    formats = {}
    for name in shown.columns:
        if name in percent:
            formats[name] = lambda v: points(v, digits)
        elif pd.api.types.is_integer_dtype(shown[name]):
            formats[name] = "{:,d}"
        elif pd.api.types.is_float_dtype(shown[name]):
            formats[name] = f"{{:,.{digits}f}}"
    styler = shown.style.format(formats, na_rep=MISSING).format_index(na_rep=MISSING)
    if not index:
        styler = styler.hide(axis="index")
    styler = styler.set_table_attributes('class="knowshift-table"')
    if caption:
        styler = styler.set_caption(caption)
    if note:
        from IPython.display import HTML, display
        display(styler)
        display(HTML(f'<p class="table-note">{note}</p>'))
        return None
    return styler


def parameters(params, stage: str):
    """The parameters this stage ran with (the run's values, not the notebook's defaults)."""
    rows = pd.DataFrame(params.for_stage(stage).rows())
    rows["value"] = rows["value"].map(lambda v: v if isinstance(v, str) else format(v, "g")
                                      if isinstance(v, float) else str(v))
    return table(rows[["parameter", "value", "meaning"]],
                 caption="Parameters this stage ran with (the run's values)")
