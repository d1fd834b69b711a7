"""The examples SliCK can judge in an audit's DATA file, whatever its rows look like.

Row shapes (detected from the first row's fields, or forced with ``--format``):

- ``qa``: ``question`` and ``answer`` or ``answers`` (a list; in CSV joined with ``|``),
  optionally ``relation`` (examples of one relation share few-shot exemplars);
- ``chat``: OpenAI-style ``messages``, each ``{"role": "system"|"user"|"assistant"|"tool", "content": ...}``;
- ``sharegpt``: ``conversations``, each ``{"from": "human"|"gpt"|"system"|..., "value": ...}``;
- ``alpaca``: ``instruction``, optional ``input``, ``output`` (optional ``system``).

A conversation gives one example per user turn answered by the next assistant turn; system
messages are kept as the example's ``context``. A row or turn SliCK cannot judge (an answer
longer than a short-answer budget, a long prompt, a prompt that asks for no fact
(:mod:`knowshift.audit.scope`), no user → assistant pair, tool calls, non-text content, an
empty answer, a turn marked ``weight: 0``) is **skipped with its reason**
and counted, never dropped silently. A row that is malformed for its shape (invalid JSON, a
missing field, a wrong type) is an error: every such row is listed with its line or row
number and nothing is audited until the file is fixed. The rows' other top-level fields with
plain values become columns (for ``--group-by``)."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ..core.errors import DataFileError, ParameterError
from ..core.schema import IDK_ANSWER
from . import containers, scope
from .containers import DataFile

SHAPES = ("qa", "chat", "sharegpt", "alpaca")
SHOWN_PROBLEMS = 20
CHARS_PER_WORD = 12       # a budget of n words also allows at most 12 n characters
EXCERPT_CHARS = 160
# columns of the examples table; a row's own field of the same name is not copied
EXAMPLE_COLUMNS = ("line", "turn", "record", "slot", "question", "answers", "answer", "context")
CHAT_ROLES = {"system": "system", "developer": "system", "user": "user",
              "assistant": "assistant", "tool": "tool", "function": "tool"}
SHAREGPT_FROM = {"system": "system", "human": "user", "user": "user", "gpt": "assistant",
                 "assistant": "assistant", "chatgpt": "assistant", "bing": "assistant",
                 "bard": "assistant", "model": "assistant", "function_call": "tool_call",
                 "observation": "tool", "tool": "tool", "function": "tool"}
CONTENT_FIELDS = {"qa": ("question", "answer", "answers"), "chat": ("messages",),
                  "sharegpt": ("conversations",),
                  "alpaca": ("instruction", "input", "output", "system")}


@dataclass(frozen=True)
class Budget:
    """What SliCK can judge by exact match: a short answer to a short question, which asks for
    a fact (:mod:`knowshift.audit.scope`) unless ``judge_all``."""
    max_answer_words: int = 10
    max_prompt_words: int = 128
    judge_all: bool = False

    def __post_init__(self):
        for name in ("max_answer_words", "max_prompt_words"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ParameterError(f"{name}={value!r}: give a whole number of words, at "
                                     "least 1")


@dataclass
class Examples:
    """DATA read and split: ``table`` has one auditable example per row (columns
    :data:`EXAMPLE_COLUMNS` plus the rows' plain fields), ``skipped`` one row per skipped
    row or turn (``line``, ``turn``, ``reason``, ``excerpt``)."""
    data: DataFile
    shape: str
    table: pd.DataFrame
    skipped: pd.DataFrame

    @property
    def n_candidates(self) -> int:
        return len(self.table) + len(self.skipped)

    def auditable(self) -> dict:
        """How much of the file SliCK could judge, for the report."""
        rows_with_example = self.table["record"].nunique() if len(self.table) else 0
        return {"rows": len(self.data.records), "rows_with_an_example": int(rows_with_example),
                "examples": len(self.table), "skipped": len(self.skipped),
                "share": len(self.table) / self.n_candidates if self.n_candidates else 0.0,
                "skipped_by_reason": {str(k): int(v) for k, v in
                                      self.skipped["reason"].value_counts().items()}}


def top_skips(auditable: dict, n: int = 3) -> str:
    """The commonest skip reasons of :meth:`Examples.auditable` with their counts, for the
    first lines of a report."""
    reasons = sorted(auditable["skipped_by_reason"].items(), key=lambda kv: -kv[1])
    return "; ".join(f"{reason} ({count})" for reason, count in reasons[:n]) + (
        f"; and {len(reasons) - n} other reason{'s' if len(reasons) > n + 1 else ''}"
        if len(reasons) > n else "")


def detect(record: dict) -> str | None:
    """The shape a row's fields name, or None."""
    if "messages" in record:
        return "chat"
    if "conversations" in record:
        return "sharegpt"
    if "instruction" in record and "output" in record:
        return "alpaca"
    if "question" in record and ("answer" in record or "answers" in record):
        return "qa"
    return None


def read_examples(path, shape: str | None = None, budget: Budget = Budget()) -> Examples:
    """Read DATA (any container of :mod:`knowshift.audit.containers`), detect or check its shape,
    and split it into auditable examples and skipped turns. Raises :class:`DataFileError`
    listing every malformed row."""
    data = containers.read(path)
    if shape is not None and shape not in SHAPES:
        raise DataFileError(f"unknown format {shape!r}; use one of {SHAPES}")
    if shape is None and data.records:
        shape = detect(data.records[0])
        if shape is None:
            raise DataFileError(
                f"{data.name}: cannot tell the format from the fields of its first row "
                f"{sorted(data.records[0])}; expected 'question' + 'answer'/'answers' (qa), "
                "'messages' (chat), 'conversations' (sharegpt) or 'instruction' + 'output' "
                "(alpaca); or pass --format")
    problems = list(data.problems)
    examples, skipped = [], []
    extract = {"qa": _qa, "chat": _chat, "sharegpt": _sharegpt, "alpaca": _alpaca}[shape or "qa"]
    for index, (record, row) in enumerate(zip(data.records, data.rows)):
        try:
            found, skips = extract(record, budget)
        except _Malformed as err:
            problems.append(f"{data.where} {row}: {err}")
            continue
        extra = {k: v for k, v in record.items() if k not in CONTENT_FIELDS[shape]
                 and k not in EXAMPLE_COLUMNS and _is_scalar(v)}
        examples += [{"line": row, "record": index, **e, **extra} for e in found]
        skipped += [{"line": row, "turn": turn, "reason": reason,
                     "excerpt": _excerpt(excerpt)} for turn, reason, excerpt in skips]
    if problems:
        shown = "\n  ".join(problems[:SHOWN_PROBLEMS])
        more = (f"\n  ... and {len(problems) - SHOWN_PROBLEMS} more"
                if len(problems) > SHOWN_PROBLEMS else "")
        raise DataFileError(f"{data.name}: {len(problems)} bad row(s) for the {shape or '?'} "
                            f"format, nothing audited:\n  {shown}{more}")
    table = pd.DataFrame.from_records(examples)
    if table.empty:
        table = pd.DataFrame(columns=list(EXAMPLE_COLUMNS))
    for column in set(table.columns) - set(EXAMPLE_COLUMNS):
        kinds = {type(v) for v in table[column] if v is not None and v == v}
        if len(kinds) > 1:          # e.g. ids that are numbers in some rows, text in others
            table[column] = table[column].map(lambda v: None if v is None else str(v))
    skipped = pd.DataFrame(skipped, columns=["line", "turn", "reason", "excerpt"])
    return Examples(data, shape, table, skipped)


def relabelled(examples: Examples, unknown: pd.Series) -> list[dict]:
    """Every row of DATA, with the answer of each example marked in ``unknown`` (a boolean
    per row of ``examples.table``) replaced by "I don't know"; all other fields unchanged."""
    records = [copy.deepcopy(r) for r in examples.data.records]
    for _, ex in examples.table[unknown.to_numpy()].iterrows():
        record = records[ex["record"]]
        if examples.shape == "qa":            # a qa row has one field or both
            for key, idk in (("answer", IDK_ANSWER), ("answers", [IDK_ANSWER])):
                if key in record:
                    record[key] = idk
        elif examples.shape == "alpaca":
            record["output"] = IDK_ANSWER
        elif examples.shape == "chat":
            record["messages"][ex["slot"]]["content"] = IDK_ANSWER
        else:
            record["conversations"][ex["slot"]]["value"] = IDK_ANSWER
    return records


def filtered(examples: Examples, unknown: pd.Series) -> list[dict]:
    """The rows of DATA none of whose examples is marked in ``unknown``: a conversation with
    one Unknown turn is dropped whole (cutting turns would break it); rows with no auditable
    example are kept as they are (not judged, so not known to be new)."""
    drop = set(examples.table.loc[unknown.to_numpy(), "record"])
    return [r for i, r in enumerate(examples.data.records) if i not in drop]


# ---------------------------------------------------------------------------------- shapes
class _Malformed(ValueError):
    """A row that does not have its shape's fields."""


def _is_scalar(value) -> bool:
    return value is None or isinstance(value, (str, int, float, bool))


def _excerpt(text) -> str:
    text = " ".join(str(text or "").split())
    return text if len(text) <= EXCERPT_CHARS else text[:EXCERPT_CHARS - 1] + "…"


def _words(text: str) -> int:
    return len(text.split())


def _longer(text: str, words: int) -> bool:
    """More than ``words`` words, or than :data:`CHARS_PER_WORD` characters each (text
    without spaces, e.g. Chinese or a pasted blob, is measured by its characters)."""
    return _words(text) > words or len(text) > CHARS_PER_WORD * words


def _judge(question: str, answer: str, budget: Budget) -> str | None:
    """Why SliCK cannot judge this pair, or None."""
    if not answer.strip():
        return "empty answer"
    n = budget.max_answer_words
    if _longer(answer.strip(), n):
        return f"answer longer than {n} words ({CHARS_PER_WORD * n} characters)"
    n = budget.max_prompt_words
    if _longer(question.strip(), n):
        return f"prompt longer than {n} words ({CHARS_PER_WORD * n} characters)"
    return None if budget.judge_all else scope.why_not(question, answer)


def _qa(record: dict, budget: Budget):
    question = record.get("question")
    answers = _answers(record)
    bad = []
    if not isinstance(question, str) or not question.strip():
        bad.append("empty or missing question")
    if answers is None:
        bad.append("'answers' must be a list of texts")
    elif not answers:
        bad.append("empty or missing answer")
    if bad:
        raise _Malformed("; ".join(bad))
    reason = _judge(question, min(answers, key=len), budget)
    if reason:
        return [], [(1, reason, question)]
    return [{"turn": 1, "slot": -1, "question": question.strip(), "answers": answers,
             "answer": answers[0], "context": ""}], []


def _answers(record: dict) -> list[str] | None:
    """The accepted answers of a qa row ([] if none, None if malformed)."""
    value = record.get("answers")
    if value is None or value == []:
        value = record.get("answer")
        value = [] if value is None else [value]
    if not isinstance(value, list) or not all(isinstance(a, (str, int, float)) for a in value):
        return None
    return [str(a).strip() for a in value if str(a).strip()]


def _alpaca(record: dict, budget: Budget):
    instruction, extra, output = (record.get(k) for k in ("instruction", "input", "output"))
    bad = [f"'{k}' must be text" for k, v in (("instruction", instruction), ("output", output))
           if not isinstance(v, str)]
    if extra is not None and not isinstance(extra, str):
        bad.append("'input' must be text")
    if bad:
        raise _Malformed("; ".join(bad))
    question = instruction.strip() + (f"\n{extra.strip()}" if extra and extra.strip() else "")
    if not question.strip():
        return [], [(1, "no user→assistant pair (empty instruction)", output)]
    reason = _judge(question, output, budget)
    if reason:
        return [], [(1, reason, question)]
    system = record.get("system")
    return [{"turn": 1, "slot": -1, "question": question, "answers": [output.strip()],
             "answer": output.strip(), "context": system if isinstance(system, str) else ""}], []


def _text(content) -> tuple[str | None, str | None]:
    """A message's text, or why it has none SliCK can read."""
    if content is None:
        return "", None
    if isinstance(content, str):
        return content, None
    if isinstance(content, list):          # OpenAI content parts
        texts, other = [], False
        for part in content:
            if not isinstance(part, dict):
                raise _Malformed("a content part is not an object")
            if part.get("type") == "text" and isinstance(part.get("text"), str):
                texts.append(part["text"])
            else:
                other = True
        return ("\n".join(texts), "non-text content") if other else ("\n".join(texts), None)
    raise _Malformed(f"message content must be text or a list of parts, got "
                     f"{type(content).__name__}")


def _speakers(record: dict, field: str, key: str, roles: dict, noun: str):
    """(number, turn, role) for each turn of a conversation ``field``, each checked to be an
    object whose ``key`` names a known role."""
    turns = record.get(field)
    if not isinstance(turns, list):
        raise _Malformed(f"'{field}' must be a list of {noun}s")
    out = []
    for i, turn in enumerate(turns, 1):
        if not isinstance(turn, dict) or key not in turn:
            raise _Malformed(f"{noun} {i} is not an object with a '{key}'")
        role = roles.get(turn[key])
        if role is None:
            raise _Malformed(f"{noun} {i} has an unknown {key} {turn[key]!r} (expected one of "
                             f"{sorted(roles)})")
        out.append((i, turn, role))
    return out


def _chat(record: dict, budget: Budget):
    turns = []
    for _, m, role in _speakers(record, "messages", "role", CHAT_ROLES, "message"):
        text, why = _text(m.get("content"))
        if role == "assistant" and (m.get("tool_calls") or m.get("function_call")):
            why = "tool call"
        if role == "assistant" and m.get("weight") == 0:
            why = why or "not trained on (weight 0)"
        turns.append((role, text, why))
    return _pairs(turns, budget)


def _sharegpt(record: dict, budget: Budget):
    turns = []
    for i, t, role in _speakers(record, "conversations", "from", SHAREGPT_FROM, "turn"):
        if not isinstance(t.get("value"), str):
            raise _Malformed(f"turn {i}: 'value' must be text")
        if role == "tool_call":
            turns.append(("assistant", t["value"], "tool call"))
        else:
            turns.append((role, t["value"], None))
    return _pairs(turns, budget)


def _pairs(turns: list[tuple[str, str, str | None]], budget: Budget):
    """Examples from a conversation's (role, text, why-unreadable) turns: each assistant turn
    that answers a user turn; ``slot`` is the assistant turn's index in the row's list."""
    context = "\n".join(t for r, t, _ in turns if r == "system" and t)
    examples, skips, number = [], [], 0
    for slot, (role, text, why) in enumerate(turns):
        if role != "assistant":
            continue
        number += 1
        before = turns[slot - 1] if slot else None
        if before is None or before[0] != "user":
            reason = ("tool call" if before is not None and before[0] == "tool"
                      else "no user turn before this assistant turn")
            skips.append((number, why or reason, text))
            continue
        question = before[1] or ""
        reason = why or before[2] or _judge(question, text or "", budget)
        if reason:
            skips.append((number, reason, question))
            continue
        examples.append({"turn": number, "slot": slot, "question": question.strip(),
                         "answers": [text.strip()], "answer": text.strip(),
                         "context": context})
    if number == 0:
        first = next((t for r, t, _ in turns if r == "user"), "")
        skips.append((0, "no user→assistant pair", first))
    return examples, skips


def check_on_labels(folder) -> pd.DataFrame:
    """The applicability check (:mod:`knowshift.audit.scope`) against hand labels: one row
    per example (an assistant turn answering a user turn) of the labelled files in ``folder``
    (any shape the audit reads, each row with ``kind`` and ``expected``: one ``fact``/``other``
    per such turn), with ``factual`` (the label), ``in_budget`` (within the length budget),
    ``judged`` (by a default audit) and ``reason`` (why not)."""
    rows = []
    for path in sorted(p for p in Path(folder).iterdir() if p.suffix in (".jsonl", ".json")):
        all_examples = read_examples(path, budget=Budget(judge_all=True))
        default = read_examples(path)
        skipped = all_examples.skipped[~all_examples.skipped["reason"].str.startswith("no user")]
        turns = pd.concat([all_examples.table[["line", "turn"]], skipped[["line", "turn"]]])
        reasons = {(r.line, r.turn): r.reason for r in default.skipped.itertuples()}
        in_budget = set(zip(all_examples.table["line"], all_examples.table["turn"]))
        records = dict(zip(all_examples.data.rows, all_examples.data.records))
        for line, group in turns.groupby("line"):
            labels = records[line]["expected"].split()
            for turn, label in zip(sorted(group["turn"]), labels, strict=True):
                reason = reasons.get((line, turn))
                rows.append({"file": path.name, "line": line, "turn": turn,
                             "kind": records[line]["kind"], "factual": label == "fact",
                             "in_budget": (line, turn) in in_budget,
                             "judged": reason is None, "reason": reason})
    return pd.DataFrame(rows)
