"""The study's vocabulary, at the bottom of the package: the tidy fact schema, the subject split
rule, the closed-book prompt format, the "I don't know" answer and the SliCK categories.
Everything above (facts, SliCK, fine-tuning, audit, figures) reads them from here.

Fact schema (one row per question): ``id, relation, subject, question, answers (all accepted
aliases), answer (the canonical one), split (train/dev/test), ood, popularity (NaN where
unknown), source``."""

from __future__ import annotations

import hashlib
import string

import pandas as pd

from .answers import normalize

COLUMNS = ["id", "relation", "subject", "question", "answers", "answer", "split", "ood",
           "popularity", "source"]
SPLITS = ("train", "dev", "test")
DEV_SHARE, TEST_SHARE = 0.1, 0.2      # of subjects; the rest (70 %) are train

# SliCK (Gekhman et al., 2024, section 3); the first three together are Known.
CATEGORIES = ["HighlyKnown", "MaybeKnown", "WeaklyKnown", "Unknown"]
KNOWN = CATEGORIES[:3]
NATURAL = "Natural"                   # the train split's own mix, as a category-pure set

IDK_ANSWER = "I don't know"


def subject_bucket(subject: str) -> float:
    """A number in [0, 1) from a hash of the normalised subject: one subject always lands in
    the same split, whatever relation or run it comes from."""
    digest = hashlib.sha256(normalize(subject).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def split_of(subject: str, dev: float = DEV_SHARE, test: float = TEST_SHARE) -> str:
    b = subject_bucket(subject)
    return "test" if b < test else "dev" if b < test + dev else "train"


def tidy(df: pd.DataFrame) -> pd.DataFrame:
    """Order columns, fix dtypes and sort rows so equal fact sets compare equal."""
    df = df.copy()
    df["answers"] = df["answers"].map(lambda a: [str(x) for x in a])
    df["answer"] = df["answers"].map(lambda a: a[0])
    df["popularity"] = pd.to_numeric(df["popularity"], errors="coerce").astype(float)
    df["ood"] = df["ood"].astype(bool)
    return df[COLUMNS].sort_values(["relation", "split", "id"]).reset_index(drop=True)


# ---------------------------------------------------------------------------- prompt format
# SliCK's k-shot prompts, and the default fine-tuning and test example.
QA_TEMPLATE = "Q: {question}\nA:"
# The paper's fine-tuning and test examples (appendix E): zero-shot, "Answer the following
# question. <question>"; the answer follows on the next line.
PAPER_TEMPLATE = "Answer the following question. {question}\n"


def template_problem(template: str) -> str | None:
    """What is wrong with a prompt template (None: nothing): it must hold ``{question}`` once
    and no other field (literal braces doubled)."""
    try:
        fields = [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]
    except ValueError as err:
        return f"is not a template ({err})"
    if fields != ["question"]:
        return "must hold {question} exactly once and no other {field}"
    return None


def format_question(question: str, template: str = QA_TEMPLATE) -> str:
    """The closed-book prompt: SliCK's (the default template), or a fine-tuning and test
    example's (the ``prompt_template`` parameter)."""
    return template.format(question=question)


def format_target(answer: str, template: str = QA_TEMPLATE) -> str:
    """What the model is trained to write after :func:`format_question`: the answer and a
    newline, after a space unless the prompt ends in whitespace."""
    return f"{'' if template[-1:].isspace() else ' '}{answer}\n"


def format_exemplars(questions, answers) -> str:
    """k-shot exemplars in SliCK's format, each followed by a blank line."""
    return "".join(f"{format_question(q)}{format_target(a)}\n" for q, a in zip(questions, answers))


# ---------------------------------------------------------------------------- variant names
def share_label(share: float) -> str:
    """A share of Unknown examples as it appears in a variant's name (``mix_50%``): whole
    percents."""
    return f"{share:.0%}"


def share_clash(shares) -> str | None:
    """Why ``shares`` cannot each name a variant of their own (None if they can): a share given
    twice, or two shares that round to one name (results are keyed by the name)."""
    seen: dict[str, float] = {}
    for share in shares:
        label = share_label(share)
        if label in seen:
            first = seen[label]
            return (f"repeats the share {share:g}" if first == share else
                    f"has {first:g} and {share:g}, which would both name the variant "
                    f"'{label}' (names keep whole percents)")
        seen[label] = share
    return None
