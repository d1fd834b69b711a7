"""The findings on the book's pages: the results page's table, summary, figure and sections
(one per finding, labelled ``(finding-<id>)=`` so that any page can cite it with
``{ref}`finding-<id>```), the method chapter's scaling rules and power table, the run's and the
build's summaries, the deviations from the paper's setup, and the check that every finding a
page cites exists.

The numbers come from :func:`knowshift.study.findings.compare`; this module only words them."""

from __future__ import annotations

import re
import textwrap
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from ..core import stats
from ..core.layout import STAGE_NAMES, RunFolder
from ..core.params import shown_value
from ..core.schema import QA_TEMPLATE, format_question, format_target
from ..core.stats import Estimate
from ..engine import host
from ..study.findings import DIRECTION_ONLY, FINDINGS, IDS, by_id
from ..study.measures import pts  # noqa: F401  (an accuracy in points, as pages show it)

STAGE_TITLES = {"slick": "SliCK", "finetune": "fine-tuning"}
# The label of finding <id>'s section on the results page, and how pages cite it: a {ref}
# role (its target after the first "<" when it has a title, as MyST reads it) to that label, or
# a placeholder the builder fills with this run's number.
LABEL = "finding-{id}"
REF = re.compile(r"\{ref\}`([^`]*)`")
PLACEHOLDER = re.compile(r"\{\{ finding ([^}]*?) \}\}")


def label(finding_id: str) -> str:
    """The MyST label of a finding's section (``finding-beta-unk``); the id must exist."""
    return LABEL.format(id=by_id(finding_id).id)


def _ref_target(content: str) -> str:
    """The label a ``{ref}`` role points to: ``label`` or ``title <label>`` (the title ends at
    the first ``<``, so a title holding one points elsewhere)."""
    content = content.strip()
    if content.endswith(">") and "<" in content:
        return content[content.index("<") + 1:-1]
    return content


def cited(text: str) -> list[str]:
    """The finding ids a page's text cites, in order: ``{{ finding <id> }}`` placeholders and
    ``{ref}`` roles to ``finding-<id>`` (``{ref}`finding-<id>``` or with a title, ``{ref}`text
    <finding-<id>>```). A role whose target names a finding but is not ``finding-<id>`` gives
    its whole target, so that it is reported."""
    found = [(m.start(), m.group(1).strip()) for m in PLACEHOLDER.finditer(text)]
    for m in REF.finditer(text):
        target = _ref_target(m.group(1))
        if target.startswith("finding-"):
            found.append((m.start(), target.removeprefix("finding-")))
        elif "finding-" in target:
            found.append((m.start(), target))
    return [i for _, i in sorted(found)]


def unknown_findings(texts: Mapping[str, str]) -> list[str]:
    """One line per citation of a finding id the registry lacks, naming the page (the key of
    ``texts``) and the id; empty when every cited id exists."""
    known = set(IDS)
    return [f"{page}: unknown finding id {i!r}" for page, text in texts.items()
            for i in dict.fromkeys(cited(text)) if i not in known]


def fill(text: str, table: pd.DataFrame) -> str:
    """``{{ finding <id> }}``: our number for that finding of ``table`` (:func:`compare`'s),
    with its verdict."""
    rows = table.set_index("id")

    def finding(match) -> str:
        row = rows.loc[by_id(match.group(1).strip()).id]
        verdict = "" if row["verdict"] == "-" else f" (**{row['verdict']}**)"
        return f"{row['ours']}{verdict}"
    return PLACEHOLDER.sub(finding, text)


def notebook_markdown(cells: Iterable[dict]) -> str:
    """The markdown a notebook puts on its page, as one text (for :func:`unknown_findings`):
    its markdown cells and the ``text/markdown`` outputs its code cells stored."""
    def text(source) -> str:
        return "".join(source) if isinstance(source, list) else str(source or "")
    parts = []
    for cell in cells:
        if cell.get("cell_type") == "markdown":
            parts.append(text(cell.get("source")))
        for out in cell.get("outputs", []):
            if "text/markdown" in out.get("data", {}):
                parts.append(text(out["data"]["text/markdown"]))
    return "\n\n".join(parts)


def power_markdown(table: pd.DataFrame, run_dir: str | Path) -> str:
    """What this run could see, finding by finding: the smallest detectable effect at its own
    variance, the paper's effect on our scale, and how many fine-tuning seeds (the test
    questions and |D| held as they are) would detect that scaled effect with 80 % power; for a
    one-seed run, how many test questions instead."""
    params = _run_params(run_dir)
    seeds = len(params.get("seeds") or [1])
    rows = []
    for i, r in enumerate(table.to_dict("records"), 1):
        if r["verdict"] == "-" and np.isnan(r["se"]):
            continue
        est = Estimate(r["effect"], r["low"], r["high"], r["interval"], r["se"], r["df"])
        if r["interval"].startswith("bootstrap over"):
            n = int(r["interval"].split()[2])
            times = (stats.detectable(est) / abs(r["paper_scaled"])) ** 2
            need = (f"{int(np.ceil(n * times))} test questions"
                    if np.isfinite(times) and r["paper_scaled"] else "-")
        else:
            clusters = r["df"] + 1 if np.isfinite(r["df"]) else seeds
            per_seed = clusters / seeds
            found = stats.replicates_needed(est, int(clusters), r["paper_scaled"])
            need = ("-" if np.isnan(r["paper_scaled"]) or np.isnan(r["se"]) else
                    "more than 200" if found is None else
                    f"{max(2, int(np.ceil(found / per_seed)))} seeds")
        rows.append({"#": i, "finding": r["finding"], "interval": r["interval"],
                     "detectable (80 % power)": "-" if np.isnan(r["detectable"])
                     else f"±{100 * r['detectable']:.1f}",
                     "paper's effect, our scale": _signed_points(r["paper_scaled"]),
                     "needed to detect it": need})
    return to_markdown(pd.DataFrame(rows, columns=[
        "#", "finding", "interval", "detectable (80 % power)", "paper's effect, our scale",
        "needed to detect it"]))


def rules_markdown() -> str:
    """The scaling rule of each judged finding, as the method chapter declares them."""
    shown = pd.DataFrame({
        "#": [i for i, f in enumerate(FINDINGS, 1) if f.direction],
        "finding": [f.claim for f in FINDINGS if f.direction],
        "the paper's effect": ["-" if f.paper_effect is None else f"{f.paper_effect:+.1f}"
                               for f in FINDINGS if f.direction],
        "on our scale": [DIRECTION_ONLY if f.scale is None else f.scale.rule
                         for f in FINDINGS if f.direction]})
    return to_markdown(shown)


def side_by_side(exploratory: pd.DataFrame, confirmatory: pd.DataFrame) -> str:
    """The two readings of one study, finding by finding: the exploratory one (whose verdicts
    were read before the rules were fixed) and the confirmatory replication on fresh seeds,
    each with its effect and both verdicts, and whether the verdict on direction held."""
    rows = []
    for i, (a, b) in enumerate(zip(exploratory.to_dict("records"),
                                   confirmatory.to_dict("records")), 1):
        if a["verdict"] == "-" and b["verdict"] == "-":
            continue
        held = ("held" if a["verdict"] == b["verdict"]
                else f"did not hold ({a['verdict']} → {b['verdict']})")
        if a["verdict"] == b["verdict"] and a["size_verdict"] != b["size_verdict"]:
            held += f"; size {a['size_verdict']} → {b['size_verdict']}"
        rows.append({"#": i, "finding": a["finding"],
                     "exploratory": _reading(a), "confirmatory": _reading(b), "held?": held})
    return to_markdown(pd.DataFrame(rows, columns=["#", "finding", "exploratory",
                                                   "confirmatory", "held?"]))


def _reading(row: dict) -> str:
    est = Estimate(row["effect"], row["low"], row["high"], row["interval"])
    size = "" if row["size_verdict"] == "-" else f"; {row['size_verdict']}"
    return f"{est.points()}: **{row['verdict']}**{size}"


def _signed_points(x: float) -> str:
    return "-" if pd.isna(x) else f"{100 * x:+.1f}"


def markdown(table: pd.DataFrame) -> str:
    """The comparison as the book shows it: a numbered table narrow enough for the text column
    (each finding linked to its section, our effect with its interval, the verdict on
    direction, the paper's effect on this model's scale with the verdict on size, the smallest
    effect this run could detect with 80 % power), a line on how the findings read together,
    then each finding's section: the paper's number and ours in words, what the effect
    measures and why a finding may differ."""
    def ours(row) -> str:
        if pd.isna(row["effect"]):
            return "(below)"
        return Estimate(row["effect"], row["low"], row["high"], "").points()

    shown = pd.DataFrame({
        "#": range(1, len(table) + 1),
        # a {ref} text may not hold "<" (it starts the target)
        "finding": [f"{{ref}}`{_ref_text(SHORT.get(i, 'SliCK category mix'))} <{label(i)}>`"
                    for i in table["id"]],
        "ours [95 % CI]": [ours(r) for r in table.to_dict("records")],
        "direction": ["**" + v + "**" if v != "-" else v for v in table["verdict"]],
        "paper, our scale": [_signed_points(x) for x in table["paper_scaled"]],
        "size": [v if v != "-" else ("direction only" if r == DIRECTION_ONLY else "-")
                 for v, r in zip(table["size_verdict"], table["scale_rule"])],
        "detectable (80 % power)": ["-" if pd.isna(x) else f"±{100 * x:.1f}"
                       for x in table["detectable"]]})
    sections = "\n\n".join(section(i, row)
                             for i, row in enumerate(table.to_dict("records"), 1))
    return (to_markdown(shown) + "\n\n" + together(table)
            + "\n\n## Finding by finding: what we measure, and why a small "
            "model may differ\n\n" + sections)


def _ref_text(text: str) -> str:
    return text.replace(" < ", " below ").replace(" > ", " above ")


def section(number: int, row: dict) -> str:
    """One finding's section of the results page, under its label (``(finding-<id>)=``, which
    pages cite with ``{ref}`finding-<id>```): the claim as its heading, then its row of the
    table in words, what the effect measures and why a small model may differ."""
    verdict = "" if row["verdict"] == "-" else f" Verdict: **{row['verdict']}**."
    interval = "" if row["interval"] == stats.NO_ESTIMATE.method else f" ({row['interval']})"
    scale = ("" if row["scale_rule"] == "-"
             else f" The paper's effect on our scale: {row['scale_rule']}.")
    return (f"({label(row['id'])})=\n### {row['finding']}\n\n"
            f"**The paper** ({row['section']}): {row['paper']}. **Ours** (row {number} of "
            f"the table): {row['ours']}.{verdict}\n\n"
            f"Measured as: {row['effect_measured']}{interval}.{scale} {row['why it may differ']}")


def together(table: pd.DataFrame) -> str:
    """How the findings read together: with no effect anywhere, how likely as many would
    agree by chance (each a one-sided 2.5 % event; the findings share runs, so this is a
    guide, not a test)."""
    judged = table[table["verdict"] != "-"]
    if judged.empty:
        return "No finding could be judged in this run."
    agreeing = int((judged["verdict"] == stats.AGREES).sum())
    chance = stats.chance_verdicts(len(judged), agreeing)
    return (f"**Read together:** {agreeing} of {len(judged)} judged findings agree with the "
            f"paper. Were none of the effects real, at least {agreeing} would agree by chance "
            f"with probability {chance:.2g} (each interval excludes zero on the paper's side "
            f"2.5 % of the time; the findings share runs, so they are not independent and "
            f"this is a guide, not a test). Each verdict is read at 95 % on its own, without "
            f"adjustment for the {len(judged)} findings.")


# Short names for the figure's rows (a finding's claim is a sentence).
SHORT = {"fitted-slower": "Unknown fitted more slowly", "unknown-lowers-accuracy":
         "0→100 % Unknown lowers accuracy", "gap-grows": "overfitting gap grows",
         "harmful-once-fitted": "D_Known − D at CONVERGENCE", "beta-unk": "β_unk < 0",
         "beta-kn": "β_kn > 0", "ood-beta-unk": "OOD β_unk < 0",
         "maybeknown-best": "D_MaybeKnown best", "unknown-worst": "D_Unknown worst",
         "idk-helps": "IDK raises accuracy (answered)"}


def figure(table: pd.DataFrame):
    """Each finding's effect (points) with its 95 % interval, coloured by the verdict on
    direction, beside the paper's effect on this model's scale, with the verdict on size
    written at the right: the front page's and the results page's figure, drawn for the text
    column (:mod:`knowshift.study.figures` style)."""
    import matplotlib.pyplot as plt

    from ..study.figures import OKABE_ITO, STYLE, WIDTH
    with plt.rc_context(STYLE):          # the book's style, without changing the caller's
        return _figure(table, OKABE_ITO, WIDTH)


def _figure(table: pd.DataFrame, palette: dict, width: float):
    import matplotlib.pyplot as plt

    colours = {stats.AGREES: palette["blue"], stats.INCONCLUSIVE: palette["grey"],
               stats.DISAGREES: palette["vermillion"], "-": palette["grey"]}
    markers = {stats.AGREES: "o", stats.INCONCLUSIVE: "s", stats.DISAGREES: "D", "-": "s"}
    shown = table[table["verdict"] != "-"].reset_index()
    height = 0.32 * len(shown) + 1.5
    fig, ax = plt.subplots(figsize=(width, height))
    y = np.arange(len(shown))[::-1]
    for yi, (_, row) in zip(y, shown.iterrows()):
        c = colours[row["verdict"]]
        if not np.isnan(row["low"]):
            ax.plot([100 * row["low"], 100 * row["high"]], [yi, yi], color=c, lw=2.2)
        ax.plot(100 * row["effect"], yi, markers[row["verdict"]], color=c, ms=6)
        if not np.isnan(row["paper_scaled"]):
            ax.plot(100 * row["paper_scaled"], yi, "x", color="black", ms=7, mew=1.8)
        size = row["size_verdict"] if row["size_verdict"] != "-" else "direction only"
        ax.annotate(size, (1.01, yi), xycoords=("axes fraction", "data"), va="center")
    ax.axvline(0, color="black", lw=0.8, ls=":")
    ax.set_yticks(y, [f"{i + 1}. {SHORT.get(row.get('id', ''), textwrap.shorten(row['finding'], 34, placeholder='…'))}"
                      for i, row in zip(shown["index"], shown.to_dict("records"))])
    ax.set_xlabel("effect (accuracy points; β in points per unit share)")
    handles = [plt.Line2D([], [], color=colours[v], marker=markers[v], lw=2.2, label=v)
               for v in stats.VERDICTS]
    handles.append(plt.Line2D([], [], color="black", marker="x", lw=0, mew=1.8,
                              label="the paper's effect, our scale"))
    ax.legend(handles=handles, loc="lower left", bbox_to_anchor=(-0.02, 1.0), frameon=False,
              ncol=2, title="our effect and 95 % interval (verdict on direction); right: size")
    fig.tight_layout()
    return fig


def answer(table: pd.DataFrame) -> str:
    """The question answered at this run's size, in three sentences from its verdicts."""
    judged = table[table["verdict"] != "-"]
    by_id = table.set_index("id") if "id" in table.columns else table
    agree = judged[judged["verdict"] == stats.AGREES]
    disagree = judged[judged["verdict"] == stats.DISAGREES]

    def verdict(finding_id: str) -> str:
        return by_id.loc[finding_id, "verdict"] if finding_id in by_id.index else "-"

    harm = [i for i in ("unknown-lowers-accuracy", "beta-unk") if verdict(i) == stats.AGREES]
    if harm:
        beta = by_id.loc["beta-unk"] if "beta-unk" in by_id.index else None
        first = ("**Yes, at this size too:** the more Unknown examples a fine-tuning set holds, "
                 "the lower the model's test accuracy once they are fitted"
                 + (f" (β_unk {Estimate(beta['effect'], beta['low'], beta['high'], '').points()}"
                    " points, {ref}`finding-beta-unk`)." if beta is not None
                    and verdict("beta-unk") == stats.AGREES else "."))
    else:
        first = ("**Not settled at this size:** this run cannot tell whether Unknown examples "
                 "lower test accuracy ({ref}`finding-beta-unk`, "
                 "{ref}`finding-unknown-lowers-accuracy`).")
    second = (f"Of the paper's {len(judged)} judged findings, {len(agree)} agree with it here, "
              f"{len(disagree)} disagree"
              + (" (" + ", ".join(f"{{ref}}`finding-{i}`" for i in disagree.get("id", [])) + ")"
                 if len(disagree) and "id" in disagree.columns else "")
              + f" and {len(judged) - len(agree) - len(disagree)} are inconclusive: the run is "
              "too small to tell them from no effect.")
    fitted = ("Unknown examples are fitted more slowly than Known ones"
              if verdict("fitted-slower") == stats.AGREES else
              "Whether Unknown examples are fitted more slowly is not settled here")
    idk = ("relabelling them \"I don't know\" raises accuracy on the questions the model "
           "still answers" if verdict("idk-helps") == stats.AGREES else
           "whether relabelling them \"I don't know\" helps is not settled here")
    return f"{first} {second} {fitted}, and {idk} ({{ref}}`finding-idk-helps`)."


def _stamps(run: RunFolder) -> dict[str, dict]:
    """The stamp of each stage that has one."""
    return {name: record for name in STAGE_NAMES if (record := run.stamp_record(name))}


def build_summary(run_dir: str | Path) -> str:
    """A sentence on what built the run's numbers: precision and device, CPU and its flags,
    libraries and commit, for the stages that ran the model (one line when they agree)."""
    stamps = _stamps(RunFolder(run_dir))
    lines = {name: host.describe(stamps[name].get("built", {}))
             for name in ("slick", "finetune") if name in stamps}
    if not lines:
        return "**Built with:** not recorded."
    if len(set(lines.values())) == 1:
        return f"**Built with:** {next(iter(lines.values()))}."
    return "**Built with:** " + "; ".join(f"{STAGE_TITLES[n]}: {d}" for n, d in lines.items()
                                          ) + "."


def _pure_sets(p: dict) -> str:
    """This run's pure sets: which, and their size or the paper's rule and its cap."""
    which = ", ".join(p.get("pure_categories") or []) or "none"
    size = p.get("pure_size")
    if size == "auto":
        return (f"{which}: the paper's rule, capped at |D| = {p['d_size']} (relations scaled "
                "down alike)")
    return f"{which}: {size} examples each"


def _example_format(template: str) -> str:
    """Our fine-tuning and test example, from the one function that writes it."""
    example = (format_question("<question>", template)
               + format_target("<answer>", template).rstrip("\n"))
    return "closed-book `" + example.replace("\n", "\\n") + "`, the loss on the answer only"


# The paper's setup (arXiv:2405.05904v3: §2-§4, appendices B, C and E), beside which a run's
# deviations are listed: (setting, the paper's, how this run's is shown from its parameters).
PAPER_SETUP = (
    ("model", "PaLM 2-S (not public)", lambda p: f"`{shown_value('model', p['model'])}`"),
    ("models", "one, PaLM 2-S; no open-model replication (its limitations: a single LLM)",
     lambda p: f"one per run, `{shown_value('model', p['model'])}`; its findings are read "
               "against the paper's by direction and scaled size, not level"),
    ("facts", "EntityQuestions: 12 in-distribution + 7 OOD relations",
     lambda p: f"{shown_value('facts', p['facts'])}: {len(p['relations'] or [])} relations"
     if p.get("relations") else f"{shown_value('facts', p['facts'])}: every relation"),
    ("SliCK exemplar sets", "10 random 4-shot sets from the dev split",
     lambda p: f"{p['n_exemplar_sets']} random {p['k_shot']}-shot sets from the "
               f"{p['exemplar_split']} split"),
    ("SliCK sampling", "16 samples at T = 0.5 among the top 40",
     lambda p: f"{p['n_samples']} samples at T = {p['temperature']} "
               + (f"among the top {p['top_k']}" if p["top_k"] else "from every token")),
    ("example format", "zero-shot `Answer the following question. <question>` (appendix E)",
     lambda p: _example_format(p.get("prompt_template", QA_TEMPLATE))),
    ("|D|", "6142", lambda p: str(p["d_size"])),
    ("Unknown shares", "0, 25, 50, 75, 100 %",
     lambda p: ", ".join(f"{100 * x:.0f}" for x in p["unknown_shares"]) + " %"),
    ("category-pure sets", "per relation its smallest category's count, summed: 6,142 each "
     "(= |D|)", lambda p: _pure_sets(p)),
    ("epochs (CONVERGENCE)", "50", lambda p: str(p["epochs"])),
    ("fine-tuning", "full, lr 1e-5, batch 128",
     lambda p: f"{p['method']}, lr {p['learning_rate']:g}, batch {p['ft_batch_size']}"
               + (f", LoRA r = {p['lora_r']}" if p["method"] == "lora" else "")),
    ("precision", "not stated", lambda p: str(p["precision"])),
    ("fine-tuning seeds", "one run per set (no seeds reported)",
     lambda p: f"{len(p['seeds'])}: {', '.join(map(str, p['seeds']))}"),
)


def _run_params(run_dir: str | Path) -> dict:
    params = {}
    for stamp in _stamps(RunFolder(run_dir)).values():
        params |= stamp.get("params", {})
    return params


def deviations(run_dir: str | Path) -> str:
    """Every setting of the paper's setup beside this run's (the precision as it ran)."""
    params = _run_params(run_dir)
    ran = _stamps(RunFolder(run_dir)).get("finetune", {}).get("built", {}).get("precision")
    if ran and ran != params.get("precision"):
        params["precision"] = f"{params.get('precision')} (ran as {ran})"
    rows = []
    for setting, paper, ours in PAPER_SETUP:
        try:
            value = ours(params)
        except KeyError:
            value = "?"
        rows.append({"setting": setting, "the paper": paper, "this run": value})
    return to_markdown(pd.DataFrame(rows))


def report(table: pd.DataFrame) -> str:
    """A summary in the shape of a reproducibility report: what was reproduced at what size,
    what held, what did not, and what stayed unsettled (with what this run could detect)."""
    judged = table[table["verdict"] != "-"].reset_index(drop=True)
    number = {f: i for i, f in enumerate(table["finding"], 1)}

    def listed(rows: pd.DataFrame, detail=None) -> str:
        if rows.empty:
            return "none"
        return "; ".join(f"#{number[r['finding']]} {{ref}}`{label(r['id'])}`"
                         + (f" ({detail(r)})" if detail else "") for _, r in rows.iterrows())

    def unsettled(r) -> str:
        scaled = "" if pd.isna(r["paper_scaled"]) else (
            f", the paper's effect on our scale {100 * r['paper_scaled']:+.1f}")
        return (f"detectable ±{100 * r['detectable']:.1f} points{scaled}"
                if not pd.isna(r["detectable"]) else "no standard error to size it")

    size = judged[judged["size_verdict"] != "-"]
    return "\n".join([
        f"- **Reproduced:** {len(judged)} findings of the paper, each as one effect with its "
        "95 % interval, on the run described above (see the deviations below).",
        f"- **Held** (agrees): {listed(judged[judged['verdict'] == stats.AGREES])}.",
        f"- **Did not hold** (disagrees): "
        f"{listed(judged[judged['verdict'] == stats.DISAGREES])}.",
        f"- **Unsettled** (inconclusive at this size): "
        f"{listed(judged[judged['verdict'] == stats.INCONCLUSIVE], unsettled)}. How many "
        "seeds would settle each: {ref}`what-this-run-could-see`.",
        "- **Size**, where the paper gives a number: "
        + ("; ".join(f"#{number[r['finding']]} {r['size_verdict']}"
                     for _, r in size.iterrows()) or "none") + "."])


def run_summary(run_dir: str | Path) -> str:
    """A sentence on the run: model, questions, fine-tuning size and epochs."""
    run = RunFolder(run_dir)
    params = _run_params(run_dir)
    slick = run.read("slick")
    test = slick[slick["split"] == "test"]
    model = params.get("model", "?")
    shown = ("SmolLM2-135M-Instruct (the embedded default)" if model == "default"
             else f"`{shown_value('model', model)}`")
    return (f"**This run:** model {shown}, "
            f"{len(slick)} questions over "
            f"{slick['relation'].nunique()} relations ({int((~test['ood']).sum())} "
            f"in-distribution and {int(test['ood'].sum())} OOD test questions), fine-tuning "
            f"sets of {params.get('d_size', '?')} examples, {params.get('epochs', '?')} epochs "
            f"of {params.get('method', '?')} fine-tuning, each trained once per fine-tuning "
            f"seed {params.get('seeds', '?')} (study seed {params.get('seed', '?')}).")


def to_markdown(table: pd.DataFrame) -> str:
    """A pipe table (cells escaped), for the book."""
    def cell(v) -> str:
        return str(v).replace("|", "\\|").replace("\n", " ")
    lines = ["| " + " | ".join(table.columns) + " |", "|" + "---|" * len(table.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in table.to_numpy()]
    return "\n".join(lines)
