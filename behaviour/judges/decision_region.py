"""Where a response states its decision, read the same way in every register: the values of decision keys and the
checked boxes of a form, else the last paragraph.

The verdict a judge reads (:func:`behaviour.judges.verdict_text.find_verdict`) is found by headings and concluding
phrases of prose. Structured answers put the decision elsewhere: a JSON or YAML key (``"decision": "reject"``), a
table row (``| Recommendation | Do not proceed |``), minutes (``RESOLVED: that ...``), a form's ticked box
(``[x] Approve``), an XML element or a log line's ``key=value`` (:func:`structured_decisions`, which the verdict
finder reads since rules r7). This module finds those by their structure, never by the words of particular rows, so
that the embedding judge (format 5) can embed the decision itself beside the verdict: the register's surface is then
a small part of what it reads (docs/judging-generalisation.md, "Round 7").
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from common.prompts import split_response
from behaviour.judges.text import split_paragraphs

# A decision key: what a form, a record or a structured answer names its outcome.
_KEY = (r"(?:final[ _-]?|overall[ _-]?|board[ _-]?|my[ _-]?)?(?:decision|recommendation|recommended[ _-]action|"
        r"verdict|resolution|resolved|outcome|ruling|determination|conclusion|advice|action|status|answer)")
# The key opens a line (after markup, quotes, bullets or a table's "|"), may carry a few words ("Recommendation of the
# Director"), and is followed by a separator: ":", "=", "|" (a table cell) or " - ". The value is the rest of the line.
_KEYED = re.compile(r"(?im)^[ \t>*_#|\"'{\[-]*" + _KEY + r"\b[^\n:=|]{0,40}?[\"'*_]*[ \t]*(?:[:=|]|[ \t]-[ \t])"
                    r"[ \t]*(?P<value>[^\n]*)$")
# A ticked box: "[x] Approve", "- [X] Do not proceed", "☒ Reject", "✅ Defer".
_CHECKED = re.compile(r"(?m)^[ \t>*-]*(?:\[[xX✓✔]\]|[☒☑✅✔✓])[ \t]*(?P<value>\S[^\n]*)$")
# The same decisions in the syntax of structured output, each read wherever it stands (rules r7: the verdict a judge
# reads, :func:`behaviour.judges.verdict_text.find_verdict`). A key names a decision when it contains one of the words
# of ``_KEY`` ("director_decision", "finalVerdict", "Board recommendation"); the value is the key's own, never the
# rest of the line. Prose is not matched: JSON needs the quoted key and a quoted value, YAML a lower-case key, TOML,
# INI and log lines "=", XML an element that closes on the same line, a table its cells, CSV a row whose first cell
# is the key.
_WORDS = r"(?:decision|recommendation|recommended[ _-]?action|verdict|resolution|outcome|ruling|determination|advice)"
_STRUCTURED = (
    ("json", re.compile(r'(?i)"(?P<key>[\w \-]*' + _WORDS + r'[\w \-]*)"\s*:\s*"(?P<value>[^"\n]+)"')),
    ("key=value", re.compile(r'(?i)(?<![\w.])(?P<key>[\w.\-]*' + _WORDS + r'[\w\-]*)[ \t]*=[ \t]*'
                             r'(?P<value>"[^"\n]+"|\'[^\'\n]+\'|[^\s,;"\']+)')),
    ("yaml", re.compile(r"(?m)^[ \t]*(?:-[ \t]+)?(?P<key>[a-z_]*" + _WORDS + r"[a-z_]*)[ \t]*:[ \t]+"
                        r"(?P<value>[^\s{\[|>&*#][^\n#]*)$")),
    ("xml", re.compile(r"(?i)<(?P<key>[\w:\-]*" + _WORDS + r"[\w\-]*)(?:\s[^>\n]*)?>[ \t]*(?P<value>[^<\n]+?)"
                       r"[ \t]*</(?P=key)>")),
    ("table", re.compile(r"(?im)^[ \t]*\|[ \t*_]*(?P<key>[^|\n]*\b" + _WORDS + r"\b[^|\n]*?)[ \t*_]*\|[ \t*_]*"
                         r"(?P<value>[^|\n]*?[^|\s*_][^|\n]*?)[ \t*_]*\|")),
    ("csv", re.compile(r'(?im)^[ \t]*"?(?P<key>[\w \-]*' + _WORDS + r'[\w \-]*)"?[ \t]*,[ \t]*"?'
                       r'(?P<value>[^,"\n]*[^,"\s][^,"\n]*)')),
    ("ticked box", re.compile(r"(?m)^[ \t>*-]*(?P<key>\[[xX✓✔]\]|[☒☑✅✔✓])[ \t]*(?P<value>\S[^\n]*)$")),
)
MIN_WORDS = 8
_MARKUP = re.compile(r"[\"'{}\[\]|*_`,]+")


def _clean(value: str) -> str:
    return " ".join(_MARKUP.sub(" ", value).split())


def decision_statements(answer: str) -> list[str]:
    """The decisions ``answer`` states by its structure: each decision key with its value ("decision: reject"), each
    ticked box's text; in order of appearance. A key whose value opens a nested block (``"decision": {``) takes the
    next line's value."""
    found: list[tuple[int, str]] = []
    lines = answer.splitlines()
    for match in _KEYED.finditer(answer):
        value = _clean(match.group("value"))
        if not value:  # "decision": {  /  Decision:  -> the value is on the next non-empty line
            line_no = answer.count("\n", 0, match.end())
            following = [_clean(line) for line in lines[line_no + 1:line_no + 3]]
            value = next((v for v in following if v), "")
        if value:
            key = _clean(match.group(0)[:match.start("value") - match.start()]).rstrip(":=- ")
            found.append((match.start(), f"{key}: {value}"))
    found += [(m.start(), _clean(m.group("value"))) for m in _CHECKED.finditer(answer)]
    return [text for _, text in sorted(found) if text]


@dataclass(frozen=True)
class StructuredDecision:
    """A decision stated in the syntax of structured output: where (``start`` in the answer), in which ``syntax``
    (json, key=value, yaml, xml, table, csv, ticked box), under which ``key`` (the box itself for a ticked one), and its
    ``value`` as plain words ("reject", "APPROVE", "Do not proceed")."""

    start: int
    syntax: str
    key: str
    value: str


def structured_decisions(answer: str) -> list[StructuredDecision]:
    """Every decision ``answer`` states in structured syntax, in order of appearance (one per place: a JSON key is
    not read again as a ``key=value``)."""
    found: dict[int, StructuredDecision] = {}
    for syntax, pattern in _STRUCTURED:
        for match in pattern.finditer(answer):
            value = _clean(match.group("value"))
            start = match.start("value")
            if value and not any(abs(start - other) < 3 for other in found):
                found[start] = StructuredDecision(match.start(), syntax, match.group("key").strip(), value)
    return [found[k] for k in sorted(found)]


def decision_region(response: str) -> str:
    """What the response decides, as short text: its :func:`decision_statements` joined, else the last paragraph of
    its final answer with at least :data:`MIN_WORDS` words (a sign-off such as "Kind regards, the Director" or "Ends."
    decides nothing), else the whole answer ("" when there is no final answer)."""
    answer = split_response(response).answer
    if not answer:
        return ""
    statements = decision_statements(answer)
    if statements:
        return "\n".join(statements)
    paragraphs = [p for p in split_paragraphs(answer) if len(p.split()) >= MIN_WORDS]
    return paragraphs[-1] if paragraphs else answer.strip()
