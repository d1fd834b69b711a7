"""Which examples SliCK can judge at all: a closed-book question or request for a fact whose
answer is short and checkable by exact match (an entity, a number, a date, a short name,
yes/no), the paper's setting. A reply that is chit-chat, advice, an opinion, a creative piece,
the result of a task on the prompt's own text, or an answer to an elliptical follow-up has no
gold answer the model could know, so it would always come out Unknown.

The check reads the example's text only (no model), with rules a person can follow; an example
that fails gets one of the :data:`REASONS`. It reads the prompt's last sentence that asks
something (chatter before a question does not hide it), then the answer. Its precision and
recall on hand-labelled rows (``tests/data/applicability*``) are in the README."""

from __future__ import annotations

import re

CONVERSATION = "not a factual question: conversation (a greeting, thanks or a statement)"
PERSONAL = "not a factual question: about the assistant or the user"
ADVICE = "not a factual question: advice, a recommendation or an opinion"
CREATIVE = "not a factual question: a creative task"
TASK = "not a factual question: a task on the prompt's own text or numbers"
FOLLOW_UP = "not a factual question: a follow-up that needs the earlier turns"
EXPLANATION = "not a factual question: asks for an explanation or a description"
TO_USER = "answer is not a short fact: it speaks to the user (greeting, opinion, question)"
LINES = "answer is not a short fact: several lines (a poem, a list or code)"
REASONS = (CONVERSATION, PERSONAL, ADVICE, CREATIVE, TASK, FOLLOW_UP, EXPLANATION, TO_USER,
           LINES)


def _any(*words: str, flags=re.I) -> re.Pattern:
    return re.compile(r"\b(?:" + "|".join(words) + r")\b", flags)


# chatter a question may start with ("btw who painted ...", "quick q: how many ...")
FILLER = re.compile(r"^(?:(?:btw|by the way|lol|ugh|hey|hi|so|ok|okay|oh|well|quick "
                    r"q(?:uestion)?|q)\b[\s,:.!-]*)+", re.I)
# how a question or request for a fact opens
QUESTION = re.compile(r"^(?:(?:in|on|at|from|to|for|of|by|during) )?(?:who|whom|whose|what|"
                      r"whats|which|where|when|how (?:many|much|tall|long|old|far|big|deep|"
                      r"high|large|fast|heavy|wide)|is|are|was|were|does|do|did|can|has|have|"
                      r"had)\b|^(?:and|so) (?:the|what|who|which|where|when|how)\b", re.I)
REQUEST = re.compile(r"^(?:please )?(?:name|identify|state|list|give (?:me )?the|tell me|"
                     r"do you know|can you tell me|could you tell me)\b", re.I)
# an instruction whose input is the message to answer (chat data in Alpaca's shape)
RESPOND = re.compile(r"^(?:please )?(?:respond|reply|answer)\b", re.I)
# what a question for a fact is not, each with its reason, in the order they are tried
ELLIPTICAL = re.compile(r"^(?:and |so )?(?:what|how) about\b|^and (?:for|in|at|on|with)\b|"
                        r"^(?:tell me )?more\b|^go on\b|\bwhich one\b|\bthe \w+est\W*$|"
                        r"^why\W*$", re.I)
RULES = [
    (ADVICE, re.compile(_any("should", "tips?", "advice", "recommend", "suggest(?:ion)?",
                             "best", "better", "worse", "worth", "good", "nice", "fun",
                             "favou?rite", "think", "opinion", "ok", "okay", "prefer",
                             "ideas?").pattern + r"|^how (?:do|can|could|would|to)\b", re.I)),
    (PERSONAL, _any("you", "your", "yours", "yourself", "i", "i'm", "im", "i've", "my",
                    "me", "mine", "we", "our")),
    (CREATIVE, _any("invent", "imagine", "describe", "make up", "come up with")),
    (TASK, re.compile(r"^(?:please )?(?:rewrite|re-write|translate|summari[sz]e|paraphrase|"
                      r"correct|edit|fix|convert|sort|classify|format|turn|make|put|find|"
                      r"extract|calculate|compute|count|write|compose|create|generate|say|"
                      r"spell|add|subtract|multiply|divide|simplify|solve|based on)\b|"
                      r"\b(?:the (?:following|text|sentence|passage|paragraph|tweet|review|"
                      r"message|words|numbers)|this (?:sentence|text))\b|"
                      r"\b(?:times|divided by|plus|minus|percent of|square root|sum of)\b|"
                      r"\d\s*%\s*of\b|\d\s*[-+*/x×÷]\s*\d|\w:\s+\S", re.I)),
    (TASK, re.compile(r"(?:^|\s)['\"][a-z][a-z ]*['\"](?=\W|$)")),      # a given word
    (EXPLANATION, re.compile(r"^(?:why|how come|how (?:does|did|is|are|do)|explain|define)\b|"
                             r"\b(?:mean|meaning|definition)\b", re.I)),
]
# what a request (not a question: "Who wrote the poem 'The Raven'?") asks to make
CREATIVE_WORK = _any("poem", "haiku", "limerick", "story", "slogan", "tagline", "title", "riddle",
                     "joke", "quote", "simile", "metaphor", "rhymes?", "tweet", "lyrics",
                     "flavou?r", "name", "description", "essay", "letter", "caption")
# a pronoun pointing back, in a question that names nothing itself
POINTS_BACK = _any("he", "she", "him", "his", "her", "hers", "they", "them", "their", "it",
                   "its", "that", "this", "these", "those")
NAMES_SOMETHING = re.compile(r"(?<!^)\b[A-Z]|\d")
# "Who was Albert Einstein?", "What is photosynthesis?": a description, not a short fact
DESCRIPTION = re.compile(r"^(?:who|what)(?:'s| is| was| are| were) (?:an? )?\S+(?: \S+)?$",
                         re.I)
RELATION_WORD = _any("of", "for", "in", "on", "at", "by", "from", "called", "known", "named")
ANSWER_TO_USER = [
    re.compile(r"\?\s*$|^(?:hello|hi|hey|sure|of course|no problem|thanks|thank you|"
               r"congratulations|congrats|good (?:night|morning|luck)|anytime|happy to|"
               r"great question|sorry|aw|wow|fun|classic|welcome|how about|try)\b", re.I),
    _any("you", "your", "you're", "youre", "yours", "me", "my", "we", "let's", "maybe",
         "perhaps", "depends", "both", "definitely", "many people"),
    _any("I", "I'm", "I'd", "I've", "I'll", flags=0),
]


def asked(prompt: str) -> str:
    """The part of a prompt that asks something: its last sentence ending in a question mark,
    else its last sentence, without leading chatter."""
    text = " ".join(prompt.split())
    sentences = [s for s in re.split(r"(?<=[.!?])\s+", text) if s]
    last = ([s for s in sentences if s.endswith("?")] or sentences or [""])[-1]
    return FILLER.sub("", last).strip()


def why_not(question: str, answer: str) -> str | None:
    """Why SliCK cannot judge ``answer`` to ``question`` (one of :data:`REASONS`), or None
    for a question or request for a fact answered by a short fact."""
    if "\n" in answer.strip():
        return LINES
    lines = [line.strip() for line in question.strip().splitlines() if line.strip()]
    ask = asked(lines[0] if lines else "")
    given = " ".join(lines[1:])
    if given and RESPOND.match(ask):
        ask = asked(given)          # "Respond to the user." + the user's message
    elif len(given.split()) > 4 and not re.search(r"\bbelow\b", ask, re.I):
        return TASK                 # an instruction on a text given with it
    factual = QUESTION.match(ask) or REQUEST.match(ask)
    if ELLIPTICAL.search(ask):
        return FOLLOW_UP
    body = REQUEST.sub("", ask).strip()
    for reason, rule in RULES:
        if rule.search(body):
            return reason
    if not factual:                 # a request to make something, or a statement
        return CREATIVE if CREATIVE_WORK.search(body) else CONVERSATION
    if POINTS_BACK.search(body) and not NAMES_SOMETHING.search(body):
        return FOLLOW_UP
    if DESCRIPTION.match(ask.rstrip("?!. ")) and not RELATION_WORD.search(ask.split(" ", 2)[-1]):
        return EXPLANATION
    if any(rule.search(answer) for rule in ANSWER_TO_USER):
        return TO_USER
    return None
