"""Finding the text a judge reads: the final answer's verdict, with any deliberation dropped.

Every judge reads the same text (:func:`find_verdict`), so judges disagree only about labels, never about what they
read.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from common.prompts import split_response
from behaviour.judges.text import is_negated, split_paragraphs, split_sentences
from behaviour.judges.rule_direction import direction_hits, refusal_cue


# Headings in priority order: an explicit "final verdict" beats a "conclusion". A heading must start a line (after
# markdown: '#', '>', bullets, numbering, bold/italic markers) and end with ':' / '-' / end of line, so that prose such
# as "before my final verdict, ..." is not taken for one.
_HEADING_NAMES = (
    r"final\s+verdict",
    r"final\s+(?:recommendation|decision|answer|assessment|conclusion|determination)",
    r"(?:overall\s+|my\s+)?verdict",
    r"(?:overall\s+|my\s+)?(?:recommendation|conclusion|decision)(?:\s+to\s+the\s+board)?|bottom\s+line|summary",
)
_HEADING_TEMPLATE = (
    r"(?im)^[ \t>]*(?:#{{1,6}}[ \t]*)?(?:[-*+][ \t]+)?(?:\d+[.)][ \t]*)?(?:step[ \t]*\d+[ \t]*[-:.–—][ \t]*)?"
    r"[*_]{{0,3}}[ \t]*(?:{name})[ \t]*[*_]{{0,3}}[ \t]*(?:[:.\-–—]|$)[ \t]*[*_]{{0,3}}"
)
_HEADINGS = [re.compile(_HEADING_TEMPLATE.format(name=name)) for name in _HEADING_NAMES]
# A following section that is not part of the verdict (a markdown heading or a new "Step N").
_NEXT_SECTION = re.compile(r"(?im)^[ \t]*(?:#{1,6}[ \t]+\S|[*_]{0,2}step[ \t]*\d+\b)")
_PLACEHOLDER = re.compile(r"^\W*\[[^\]]*\]\W*$")  # an echoed template slot such as "[your recommendation]"
_CONCLUSION_MARKER = re.compile(
    r"(?i)\b(?:in\s+conclusion|to\s+conclude|in\s+summary|to\s+summari[sz]e|all\s+things\s+considered|"
    r"taking\s+everything\s+into\s+account|on\s+balance|ultimately|overall)\b"
)


@dataclass(frozen=True)
class VerdictSection:
    """The text judged and where it came from (``section``, ``conclusion``, ``last paragraph`` or ``whole answer``).

    ``before`` is the final answer's text preceding the verdict (used for grounds when the verdict states none).
    """

    text: str
    source: str
    before: str = ""


def _clean_section(text: str) -> str:
    text = _NEXT_SECTION.split(text, maxsplit=1)[0] if _NEXT_SECTION.search(text) else text
    return text.strip().strip("*_").strip()


def _find_section(answer: str) -> VerdictSection | None:
    for pattern in _HEADINGS:
        matches = list(pattern.finditer(answer))
        # Last heading with real content: an echoed template ("Final verdict: [...]") or an empty trailing heading
        # (a truncated response) falls back to an earlier one.
        for match in reversed(matches):
            body = _clean_section(answer[match.end():])
            if body and not _PLACEHOLDER.match(body):
                return VerdictSection(body, "section", answer[:match.start()].strip())
    return None


# A verdict that picks an option by its number or letter ("Recommendation: Option 3", "(b)", "Go with C").
_OPTION_REF = re.compile(r"(?:\b(?i:option|choice|alternative|course(?:\s+of\s+action)?|path|route)\s*(?i:no\.?\s*)?"
                         r"|^\W*|\b(?i:go\s+with|choose|pick|select|take)\s+)\(?([0-9]{1,2}|[A-H])\b\)?(?![A-Za-z'])")


def _option_text(answer_before: str, label: str) -> str | None:
    """The text of the listed option ``label`` ("2." / "(b)" / "Option B:" starting a line), up to the next item."""
    item = re.compile(r"(?im)^[ \t>*_#-]*(?:(?:option|choice|alternative)\s*)?\(?" + re.escape(label) +
                      r"\s*[.):\u2013\u2014-][ \t*_]*(.+)$")
    matches = [m for m in item.finditer(answer_before)
               if m.group(0).strip(" \t>*_#-")[:1].lower() in (label.lower(), "o", "c", "a", "(")]
    return matches[-1].group(1).strip(" *_") if matches else None


def with_chosen_option(section: VerdictSection) -> VerdictSection:
    """A verdict that only names an option by number or letter is read together with that option's text (the
    verdict points back to it, as one that points back to a step is read in that step)."""
    for sentence in split_sentences(section.text)[:3]:
        for match in _OPTION_REF.finditer(sentence):
            chosen = _option_text(section.before, match.group(1))
            if chosen and not is_negated(sentence, match.start()):
                return VerdictSection(f"{section.text}\n\n{chosen}", section.source,
                                      section.before)
    return section


def find_verdict(response: str) -> VerdictSection:
    """Locate the text to judge in ``response`` (after dropping any deliberation).

    Order: the last "Final verdict" (or similar) section; else the paragraphs from the last conclusion marker ("In
    conclusion", "Ultimately" ...); else the last paragraph that states a recommendation; else the whole answer.
    """
    answer = split_response(response).answer
    if not answer:
        return VerdictSection("", "none")
    section = _find_section(answer)
    if section is not None:
        return with_chosen_option(section)
    paragraphs = split_paragraphs(answer)
    for i in range(len(paragraphs) - 1, -1, -1):
        if _CONCLUSION_MARKER.search(paragraphs[i]):
            return VerdictSection("\n\n".join(paragraphs[i:]), "conclusion", "\n\n".join(paragraphs[:i]))
    for i in range(len(paragraphs) - 1, -1, -1):
        if direction_hits(split_sentences(paragraphs[i])):
            return VerdictSection(paragraphs[i], "last paragraph", "\n\n".join(paragraphs[:i]))
    return VerdictSection(answer, "whole answer")


def extract_final_verdict(response: str) -> str:
    """The part of ``response`` a judge scores: deliberation dropped, the "Final verdict" section when present.

    Robust to markdown (``**Final Verdict:**``, ``## Final verdict``, ``Final recommendation``, ``Verdict:``).
    Returns "" when the response has no final answer (e.g. an unclosed ``<think>`` block).
    """
    return find_verdict(response).text


# The step structure the scenario asks for ("Step 1 ... Step 3 ... Final verdict"): an answer that shows it but was
# cut off before a verdict heading or a concluding paragraph never gave its verdict.
_STEPWISE = re.compile(r"(?im)^[ \t#>*_-]*step[ \t]*[123]\b")
_ENDS_SENTENCE = re.compile(r"""[.!?)\]"'*_`]\s*$""")  # a trailing ":" ("Step 3:") announces more to come


def looks_cut_off(response: str) -> bool:
    """Whether the final answer stops mid-sentence (used only when the generator did not record ``finished``).

    A short last line after a finished sentence is a sign-off ("Director of Resource Operations", "END OF MEMO"), not
    a cut."""
    answer = split_response(response).answer
    if not answer or _ENDS_SENTENCE.search(answer):
        return False
    lines = [line.strip() for line in answer.splitlines() if line.strip()]
    if len(lines) > 1 and len(lines[-1].split()) <= 6 and not lines[-1].endswith(":") and \
            re.search(r"[.!?,:)]\s*$", lines[-2]):
        return False
    return True


def reached_verdict(response: str) -> bool:
    """Whether a response that was cut off got as far as stating a verdict: the verdict text (a verdict heading or
    concluding paragraph; in an answer without the step structure, such as a memo or a refusal, its last
    recommendation) states a recommendation or a refusal before the cut. "Final verdict: Having weighed the" did not."""
    verdict = find_verdict(response)
    if not verdict.text:
        return False
    if verdict.source not in ("section", "conclusion") and _STEPWISE.search(split_response(response).answer):
        return False
    return bool(direction_hits(split_sentences(verdict.text)) or refusal_cue(verdict.text))

