"""One renderer for structured reports: the same :class:`Document` becomes Markdown (``report.md``) and a
self-contained HTML page (``report.html``: figures embedded as base64 PNG, inline CSS, no external request), so a
figure, a table or an interval looks the same in both. Rendering is jinja2 templates, never string concatenation.

Text in paragraphs, list items and table cells is a small Markdown subset: ```code```, ``**bold**`` and
``[text](link)``; the HTML side escapes everything else.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, field
from pathlib import Path

import jinja2
from markupsafe import Markup, escape

__all__ = ["Block", "Document", "Section", "figure", "paragraph", "render_html", "render_markdown", "table",
           "bullets"]


@dataclass(frozen=True)
class Block:
    """A paragraph (``text``), a list (``items``), a table (``headers``, ``rows``) or a figure (``path``, relative to
    the report's directory, and ``text`` as its caption)."""

    kind: str
    text: str = ""
    items: tuple[str, ...] = ()
    headers: tuple[str, ...] = ()
    rows: tuple[tuple[str, ...], ...] = ()
    path: str = ""


def paragraph(text: str) -> Block:
    return Block("p", text=text)


def bullets(items: list[str]) -> Block:
    return Block("list", items=tuple(items))


def table(headers: list[str], rows: list[list[object]]) -> Block:
    return Block("table", headers=tuple(headers), rows=tuple(tuple(str(c) for c in r) for r in rows))


def figure(path: str, caption: str) -> Block:
    return Block("figure", text=caption, path=path)


@dataclass
class Section:
    title: str
    blocks: list[Block] = field(default_factory=list)

    @property
    def anchor(self) -> str:
        return re.sub(r"[^a-z0-9]+", "-", self.title.lower()).strip("-")


@dataclass
class Document:
    title: str
    sections: list[Section] = field(default_factory=list)


_MD = jinja2.Environment(autoescape=False, trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True,
                         undefined=jinja2.StrictUndefined)
_MD.filters["cell"] = lambda s: str(s).replace("|", "\\|").replace("\n", " ")
MARKDOWN = _MD.from_string("""# {{ doc.title }}
{% for s in doc.sections %}

## {{ s.title }}
{% for b in s.blocks %}

{% if b.kind == "p" %}
{{ b.text }}
{% elif b.kind == "list" %}
{% for item in b.items %}
- {{ item }}
{% endfor %}
{% elif b.kind == "table" %}
| {{ b.headers | map("cell") | join(" | ") }} |
|{% for h in b.headers %}---|{% endfor %}

{% for row in b.rows %}
| {{ row | map("cell") | join(" | ") }} |
{% endfor %}
{% elif b.kind == "figure" %}
![{{ b.text }}]({{ b.path }})
{% endif %}
{% endfor %}
{% endfor %}
""")

_INLINE = [(re.compile(r"`([^`]+)`"), r"<code>\1</code>"), (re.compile(r"\*\*([^*]+)\*\*"), r"<strong>\1</strong>"),
           (re.compile(r"\[([^\]]+)\]\(([^)\s]+)\)"), r'<a href="\2">\1</a>')]


def _inline(text: str) -> Markup:
    out = str(escape(text))
    for pattern, repl in _INLINE:
        out = pattern.sub(repl, out)
    return Markup(out)


_HTML = jinja2.Environment(autoescape=True, trim_blocks=True, lstrip_blocks=True, undefined=jinja2.StrictUndefined)
_HTML.filters["inline"] = _inline
HTML = _HTML.from_string("""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{{ doc.title }}</title>
<style>
body{font-family:system-ui,sans-serif;max-width:70rem;margin:2rem auto;padding:0 1rem;line-height:1.45;color:#222}
table{border-collapse:collapse;margin:.6rem 0;font-size:.9rem}td,th{border:1px solid #ccc;padding:.25rem .5rem;
text-align:left;vertical-align:top}th{background:#f3f3f3}code{background:#f3f3f3;padding:0 .2rem}
img{max-width:100%}figure{margin:1rem 0}figcaption{font-size:.85rem;color:#555}nav li{display:inline;margin-right:1rem}
</style></head><body>
<h1>{{ doc.title }}</h1>
<nav><ul>{% for s in doc.sections %}<li><a href="#{{ s.anchor }}">{{ s.title }}</a></li>{% endfor %}</ul></nav>
{% for s in doc.sections %}
<section id="{{ s.anchor }}"><h2>{{ s.title }}</h2>
{% for b in s.blocks %}
{% if b.kind == "p" %}<p>{{ b.text | inline }}</p>
{% elif b.kind == "list" %}<ul>{% for item in b.items %}<li>{{ item | inline }}</li>{% endfor %}</ul>
{% elif b.kind == "table" %}<table><tr>{% for h in b.headers %}<th>{{ h | inline }}</th>{% endfor %}</tr>
{% for row in b.rows %}<tr>{% for c in row %}<td>{{ c | inline }}</td>{% endfor %}</tr>{% endfor %}</table>
{% elif b.kind == "figure" %}<figure>{% if images[b.path] %}<img alt="{{ b.text }}" src="{{ images[b.path] }}">
{% else %}<p>(figure {{ b.path }} missing)</p>{% endif %}<figcaption>{{ b.text | inline }}</figcaption></figure>
{% endif %}
{% endfor %}
</section>
{% endfor %}
</body></html>
""")


def render_markdown(doc: Document) -> str:
    return re.sub(r"\n{3,}", "\n\n", MARKDOWN.render(doc=doc)).rstrip() + "\n"


def render_html(doc: Document, base: Path) -> str:
    """The page, with every figure read from ``base / path`` and embedded as a data URI (missing ones say so)."""
    images: dict[str, str | None] = {}
    for s in doc.sections:
        for b in s.blocks:
            if b.kind == "figure":
                path = base / b.path
                images[b.path] = ("data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")
                                  if path.exists() else None)
    return HTML.render(doc=doc, images=images)
