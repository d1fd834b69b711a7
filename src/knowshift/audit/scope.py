"""Which examples SliCK can judge at all: a closed-book question or request for a fact whose
answer is short and checkable by exact match (an entity, a number, a date, a short name,
yes/no), the paper's setting. A reply that is chit-chat, advice, an opinion, a creative piece,
the result of a task on the prompt's own text, or an answer to an elliptical follow-up has no
gold answer the model could know, so it would always come out Unknown.

The check reads the example's text only (no model), with rules a person can follow; an example
that fails gets one of the :data:`REASONS`. It reads the prompt's last sentence that asks
something (chatter before a question does not hide it), then the answer. Its precision and
recall on hand-labelled rows (``tests/data/applicability*``) are in benchmarks/README.md."""

from __future__ import annotations

import re

from ..core.schema import IDK_ANSWER

CONVERSATION = "not a factual question: conversation (a greeting, thanks or a statement)"
PERSONAL = "not a factual question: about the assistant or the user"
ADVICE = "not a factual question: advice, a recommendation or an opinion"
CREATIVE = "not a factual question: a creative task"
TASK = "not a factual question: a task on the prompt's own text or numbers"
FOLLOW_UP = "not a factual question: a follow-up that needs the earlier turns"
EXPLANATION = "not a factual question: asks for an explanation or a description"
TO_USER = "answer is not a short fact: it speaks to the user (greeting, opinion, question)"
LINES = "answer is not a short fact: several lines (a poem, a list or code)"
LANGUAGE = "not read: the check reads English (pass --judge-all to judge it)"
IDK = "answer is \"I don't know\": no fact to know (a relabelled example)"
REASONS = (CONVERSATION, PERSONAL, ADVICE, CREATIVE, TASK, FOLLOW_UP, EXPLANATION, TO_USER,
           LINES, LANGUAGE, IDK)


def _any(*words: str, flags=re.I) -> re.Pattern:
    return re.compile(r"\b(?:" + "|".join(words) + r")\b", flags)


# chatter a question may start with ("btw who painted ...", "quick q: how many ...")
FILLER = re.compile(r"^(?:(?:btw|by the way|lol|ugh|hey|hi|so|ok|okay|oh|well|quick "
                    r"q(?:uestion)?|q)\b[\s,:.!-]*)+", re.I)
# how a question or request for a fact opens
QUESTION = re.compile(r"^(?:(?:and|so) )?(?:(?:in|on|at|from|to|for|of|by|during) )?(?:who|whom|"
                      r"whose|what|whats|which|where|when|how (?:many|much|tall|long|old|far|"
                      r"big|deep|high|large|fast|heavy|wide)|is|are|was|were|does|do|did|can|"
                      r"has|have|had)\b|^(?:and|so) the\b", re.I)
TRAILING_QUESTION = re.compile(r"[,:;.)]\s*(?:but |and |so )?((?:(?:in|on|at|from|to|for|of|by) )?"
                               r"(?:who|whom|whose|what|what's|whats|which|where|when|how "
                               r"(?:many|much|tall|long|old|far|big))\b[^,:;]*)$", re.I)
REQUEST = re.compile(r"^(?:please )?(?:name|identify|state|list|give (?:me )?the|tell me|"
                     r"do you know|can you tell me|could you tell me)\b", re.I)
# an instruction whose input is the message to answer (chat data in Alpaca's shape)
RESPOND = re.compile(r"^(?:please )?(?:respond|reply|answer)\b", re.I)
# a follow-up that only the earlier turns complete ("What about Italy?", "What's the smallest?")
ELLIPTICAL = re.compile(r"^(?:and |so )?(?:what|how) about\b|"
                        r"^and (?:for|in|at|on|with)\b(?! (?:which|what)\b)|"
                        r"^(?:tell me )?more\b|^go on\b|\bwhich one\b|\bthe \w+est\W*$|"
                        r"^why\W*$", re.I)
# what a question for a fact is not, each with its reason, in the order they are tried
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
                      r"\d\s*%\s*of\b|\d\s*[-+*/x×÷]\s*\d", re.I)),
    (TASK, re.compile(r"(?:^|\s)['\"][a-z]+(?: [a-z]+)?['\"](?=\W|$)")),      # a given word
    (EXPLANATION, re.compile(r"^(?:why|how come|how (?:does|did|is|are|do)|explain|define)\b|"
                             r"\bdoes\b.*\bmean\b|\b(?:meaning|definition)\b", re.I)),
]
NAME = re.compile(r"(?<=[\s(\"'])(?:I(?=\s+[A-Z])|(?!I\b)[A-Z][\w'’.-]*)")
SENTENCE_END = re.compile(r"(?<=\?)\s+|(?<!\b[A-Z]\.)(?<!\bMr\.)(?<!\bDr\.)(?<!\bSt\.)"
                          r"(?<!\bvs\.)(?<=[.!])\s+(?=[\"'(]?[A-Z])")
ROMAN_ONE = re.compile(r"\b([A-Z][a-z]+) I\b")      # "World War I", "Elizabeth I": not "I"
# what a request (not a question: "Who wrote the poem 'The Raven'?") asks to make
CREATIVE_WORK = _any("poem", "haiku", "limerick", "story", "slogan", "tagline", "title",
                     "riddle", "joke", "quote", "simile", "metaphor", "rhymes?", "tweet", "lyrics",
                     "flavou?r", "name", "description", "essay", "letter", "caption")
# a pronoun pointing back, in a question that names nothing itself
POINTS_BACK = _any("he", "she", "him", "his", "her", "hers", "they", "them", "their", "it",
                   "its", "that", "this", "these", "those")
NAMES_SOMETHING = re.compile(r"(?<!^)\b[A-Z]|\d")
# "Who was Albert Einstein?", "What is photosynthesis?": a description, not a short fact
DESCRIPTION = re.compile(r"^(?:who|what)(?:'s| is| was| are| were) (?:an? )?\S+(?: \S+)?$",
                         re.I)
RELATION_WORD = _any("of", "for", "in", "on", "at", "by", "from", "called", "known", "named")
# an answer that speaks to the user: a question back, a greeting, a hedge, the speaker's "I"
TO_USER_OPENING = re.compile(r"\?\s*$|^(?:hello|hi|hey|sure|of course|no problem|thanks|"
                             r"thank you|congratulations|congrats|good (?:night|morning|luck)|"
                             r"anytime|happy to|great question|sorry|aw|wow|fun|classic|"
                             r"welcome|how about|try)\b", re.I)
TO_USER_WORDS = _any("you", "your", "you're", "youre", "yours", "me", "my", "we", "let's",
                     "maybe", "perhaps", "depends", "both", "definitely", "many people")
SPEAKER = _any("I", "I'm", "I'd", "I've", "I'll", flags=0)


def asked(prompt: str) -> str:
    """The part of a prompt that asks something: its last sentence that opens like a question
    or request for a fact, else its last sentence, without leading chatter. Sentences end at
    ? and at . ! before a capital, not after an initial or an abbreviation (``J. Edgar``)."""
    text = " ".join(prompt.split())
    sentences = [FILLER.sub("", s).strip() for s in SENTENCE_END.split(text) if s]
    sentences = [s for s in sentences if s] or [""]
    opening = [s for s in sentences if QUESTION.match(s) or REQUEST.match(s)]
    last = (opening or sentences)[-1]
    clause = TRAILING_QUESTION.search(last)     # "Unrelated, but how many days ...?"
    return FILLER.sub("", clause.group(1) if clause else last).strip()


def why_not(question: str, answer: str) -> str | None:
    """Why SliCK cannot judge ``answer`` to ``question`` (one of :data:`REASONS`), or None
    for a question or request for a fact answered by a short fact. Capitalised words past a
    sentence's first are names (``the film Kill Your Darlings``): the word rules skip them."""
    if "\n" in answer.strip():
        return LINES
    if answer.strip() == IDK_ANSWER:
        return IDK
    if not _latin(question):
        return LANGUAGE
    lines = [line.strip() for line in question.strip().splitlines() if line.strip()]
    ask = asked(lines[0] if lines else "")
    given = " ".join(lines[1:])
    if given and RESPOND.match(ask):
        ask = asked(given)          # "Respond to the user." + the user's message
    elif len(given.split()) > 4 and not re.search(r"\bbelow\b", ask, re.I):
        return TASK                 # an instruction on a text given with it
    factual = QUESTION.match(ask) or REQUEST.match(ask)
    if ELLIPTICAL.search(_unnamed(ask)):
        return FOLLOW_UP
    body = ROMAN_ONE.sub(r"\1", REQUEST.sub("", ask).strip())
    words = _unnamed(body)
    if not factual and CREATIVE_WORK.search(words):    # "Write a haiku", "Suggest a name"
        return CREATIVE
    for reason, rule in RULES:
        if rule.search(words):
            return reason
    if not factual:                 # a request to make something, or a statement
        return TASK if re.search(r"\w:\s+\S", body) else CONVERSATION
    if POINTS_BACK.search(body) and not NAMES_SOMETHING.search(body):
        return FOLLOW_UP
    described = ask.split(" ", 2)[-1]
    if DESCRIPTION.match(ask.rstrip("?!. ")) and not RELATION_WORD.search(described):
        return EXPLANATION
    reply = ROMAN_ONE.sub(r"\1", answer.strip())
    if (TO_USER_OPENING.search(reply) or TO_USER_WORDS.search(_unnamed(reply))
            or SPEAKER.search(reply)):
        return TO_USER
    return None


def _unnamed(text: str) -> str:
    """``text`` with each capitalised word past the first (a name or a title's word) as
    ``Zz``; "I" stays, it is the speaker, unless a capital follows (``I Know Who Killed Me``)."""
    return NAME.sub("Zz", text)


def _latin(text: str) -> bool:
    """Whether most of the letters of ``text`` are Latin (the rules read English words)."""
    letters = [c for c in text if c.isalpha()]
    return not letters or sum(ord(c) < 0x250 for c in letters) >= len(letters) / 2

