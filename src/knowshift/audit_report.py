"""The audit's HTML report: one self-contained page (figures embedded as PNG) rendered from a
Jinja2 template with autoescaping, so any text in the audited file shows as text."""

from __future__ import annotations

import base64
from io import BytesIO
from pathlib import Path

import jinja2
import matplotlib.pyplot as plt
import pandas as pd

from . import figures

_ENV = jinja2.Environment(loader=jinja2.PackageLoader("knowshift", "templates"),
                          autoescape=True, undefined=jinja2.StrictUndefined)


def _png(fig) -> str:
    buf = BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode()


def render_html(report: dict, table: pd.DataFrame, group_by: list[str]) -> str:
    """The report page for ``report`` (see :func:`knowshift.audit.run`) and its labelled
    ``table``, with one category-mix figure overall and one per ``group_by`` column."""
    figs = [("Category mix", figures.audit_mix(table, None))]
    figs += [(f"Category mix by {col}", figures.audit_mix(table, col)) for col in group_by]
    images = [(title, _png(fig)) for title, fig in figs]
    plt.close("all")
    mix = pd.DataFrame(report["mix"]).T.assign(n=lambda d: d["n"].astype(int),
                                               share=lambda d: d["share"].map("{:.1%}".format))
    unknown = pd.DataFrame(report["most_unknown"])
    effect = report["expected_effect"]
    return _ENV.get_template("audit_report.html.j2").render(
        name=Path(report["data"]).name, report=report, rec=report["recommendation"],
        effect=effect, fit=effect["fit"], ci=effect["unknown_effect_ci"], images=images,
        mix_table=mix.to_html(classes="mix"),
        unknown_table=unknown.to_html(index=False, escape=True) if not unknown.empty else "")
