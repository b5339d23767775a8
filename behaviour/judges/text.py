"""Text helpers the judges share: markdown-free sentences and paragraphs, clauses, and negation in a clause."""

from __future__ import annotations

import re


def split_paragraphs(text: str) -> list[str]:
    return [p.strip() for p in re.split(r"\n\s*\n", text) if p.strip()]


def normalise(text: str) -> str:
    text = text.replace("\u2019", "'").replace("\u2018", "'").replace("\u201c", '"').replace("\u201d", '"')
    text = text.replace("\u2011", "-").replace("\u2010", "-")  # non-breaking hyphens ("self\u2011determination")
    text = re.sub(r"[*_`#>]+", " ", text)  # markdown emphasis, headings, quotes
    return text


def split_sentences(text: str) -> list[str]:
    """Sentences (also split at line breaks and bullets), markdown removed."""
    parts: list[str] = []
    for line in normalise(text).splitlines():
        line = re.sub(r"^\s*(?:[-+\u2022]|\d+[.)])\s+", "", line).strip()
        if line:
            parts += [s.strip() for s in re.split(r"(?<=[.!?])\s+(?=[A-Z\"'(\[])", line) if s.strip()]
    return parts


CLAUSE_BREAK = re.compile(r"[,;:()\u2013\u2014]|\s-\s|\bbut\b|\bhowever\b|\bwhereas\b|\byet\b", re.I)


def clause_prefix(sentence: str, start: int) -> str:
    """The text from the start of ``start``'s clause up to ``start``."""
    head = sentence[:start]
    breaks = list(CLAUSE_BREAK.finditer(head))
    return head[breaks[-1].end():] if breaks else head


def clause_suffix(sentence: str, end: int) -> str:
    tail = sentence[end:]
    brk = CLAUSE_BREAK.search(tail)
    return tail[:brk.start()] if brk else tail


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z']+", text.lower())


_NEGATORS = {"not", "never", "no", "cannot", "can't", "nor", "neither", "without", "hardly", "don't", "doesn't",
             "won't", "wouldn't", "shouldn't", "isn't", "aren't", "mustn't", "couldn't", "against"}


def is_negated(sentence: str, start: int, window: int = 5) -> bool:
    """Whether a negator, "rather than" or "instead of" precedes position ``start`` within its clause."""
    prefix = clause_prefix(sentence, start)
    words = _words(prefix)[-window:]
    if any(w in _NEGATORS or w.endswith("n't") for w in words):
        return True
    return bool(re.search(r"\b(?:rather\s+than|instead\s+of|even)\s+(?:\w+\s+){0,3}$", prefix, re.I))
