#!/usr/bin/env python3
"""Build the concept datasets for linear probes (deterministic; needs only PyYAML beyond the standard library).

Writes, into ``--out`` (default: this folder):

- ``interest_recognition.jsonl`` and ``perspective_taking.jsonl``: one JSON object per line with
  ``id, concept, text, label, pair_id, group, entity, domain, source``;
- ``COMPOSITION.md``: counts per concept / label / group / domain / source, generated from the rows.

Every row has a minimal contrastive twin (same ``pair_id``, entity, group and observation or situation) with the
opposite label. Rows come from two sources next to this script: templated pairs, from the frames and scenarios in
``scenarios_<concept>.yaml`` (whose header explains each key and the rotation of frames), and hand-written pairs in
``handwritten_<concept>.tsv``. This script holds only the assembly; see ``DATASHEET.md`` for the design.

Usage: ``python configs/concepts/build.py [--out DIR]``
"""
from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
CONCEPTS = ("interest_recognition", "perspective_taking")
PREFIX = {"interest_recognition": "ir", "perspective_taking": "pt"}
TEMPLATES_PER_SCENARIO = 3

# Pronoun sets: {they} {are} ... and a verb suffix {s} ("they need" / "it needs").
PRONOUNS: dict[str, dict[str, str]] = {
    "pl": {"they": "they", "them": "them", "their": "their", "are": "are", "have": "have", "do": "do", "s": ""},
    "it": {"they": "it", "them": "it", "their": "its", "are": "is", "have": "has", "do": "does", "s": "s"},
    "she": {"they": "she", "them": "her", "their": "her", "are": "is", "have": "has", "do": "does", "s": "s"},
    "he": {"they": "he", "them": "him", "their": "his", "are": "is", "have": "has", "do": "does", "s": "s"},
}

# The entity-kind groups (the unit that evaluation holds out).
GROUPS: tuple[str, ...] = ("farm_animals", "wild_animals", "companion_animals", "research_animals", "workers",
                           "patients", "children", "residents", "prisoners", "fictional_species", "ai_systems",
                           "ecosystems")

# What a scenarios_<concept>.yaml holds: lists of template strings besides ``frames``, and the keys of one scenario
# (required, non-empty strings; optional ones with their default, of the default's type or a string if it is None).
TEMPLATE_LISTS = {"interest_recognition": ("entity_phrases", "instrumental_phrases", "openers"),
                  "perspective_taking": ()}
SCENARIO_KEYS: dict[str, tuple[tuple[str, ...], dict[str, Any]]] = {
    "interest_recognition": (("group", "domain", "entity", "pron", "obs", "good", "goal", "op", "actor", "org"),
                             {"np": None, "animate": True}),
    "perspective_taking": (("group", "domain", "entity", "situation", "affected", "decision_maker", "affected_view",
                            "decision_maker_view"),
                           {"affected_plural": True, "decision_maker_plural": False}),
}


# ---------------------------------------------------------------------------------------------------------------
# Reading and checking the data files (one-line errors that name the file and the entry).
# ---------------------------------------------------------------------------------------------------------------
def load_templates(concept: str, data_dir: Path = HERE) -> dict[str, Any]:
    """Read ``scenarios_<concept>.yaml``: its ``path``, ``frames`` as (a, b) tuples, the template lists, and the
    scenarios with optional keys filled in."""
    path = data_dir / f"scenarios_{concept}.yaml"
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise SystemExit(f"{path}: cannot read: {' '.join(str(exc).split())}") from None
    expected = {"frames", "scenarios", *TEMPLATE_LISTS[concept]}
    if not isinstance(data, dict) or set(data) != expected:
        got = sorted(data) if isinstance(data, dict) else type(data).__name__
        raise SystemExit(f"{path}: expected top-level keys {sorted(expected)}, got {got}")
    out: dict[str, Any] = {"path": path, "frames": []}
    for i, frame in enumerate(_list(path, data, "frames")):
        if not isinstance(frame, dict) or set(frame) != {"a", "b"} or not all(_is_text(v) for v in frame.values()):
            raise SystemExit(f"{path}: frames[{i}]: expected a mapping with non-empty strings a and b")
        out["frames"].append((frame["a"], frame["b"]))
    for key in TEMPLATE_LISTS[concept]:
        out[key] = _list(path, data, key)
        if not all(isinstance(s, str) for s in out[key]):
            raise SystemExit(f"{path}: {key}: every entry must be a string (quote it)")
    required, optional = SCENARIO_KEYS[concept]
    out["scenarios"] = [_scenario(path, i, sc, required, optional)
                        for i, sc in enumerate(_list(path, data, "scenarios"))]
    return out


def _is_text(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip())


def _list(path: Path, data: dict[str, Any], key: str) -> list[Any]:
    if not isinstance(data[key], list) or not data[key]:
        raise SystemExit(f"{path}: {key}: expected a non-empty list")
    return data[key]


def _scenario(path: Path, i: int, sc: Any, required: tuple[str, ...], optional: dict[str, Any]) -> dict[str, Any]:
    where = f"{path}: scenarios[{i}]" + (f" ({sc.get('entity')})" if isinstance(sc, dict) else "")
    if not isinstance(sc, dict):
        raise SystemExit(f"{where}: expected a mapping of keys to strings")
    missing, unknown = set(required) - set(sc), set(sc) - set(required) - set(optional)
    if missing or unknown:
        raise SystemExit(f"{where}: missing keys {sorted(missing)}, unknown keys {sorted(unknown)}; "
                         f"keys: {', '.join(required)} (optional: {', '.join(optional)})")
    for key in required:
        if not _is_text(sc[key]):
            raise SystemExit(f"{where}: {key} must be a non-empty string (quote values such as yes, no, on)")
    for key, default in optional.items():
        kind = str if default is None else type(default)
        if key in sc and not isinstance(sc[key], kind):
            raise SystemExit(f"{where}: {key} must be a {kind.__name__}")
    if sc["group"] not in GROUPS:
        raise SystemExit(f"{where}: unknown group {sc['group']!r}; known groups: {', '.join(GROUPS)}")
    if "pron" in sc and sc["pron"] not in PRONOUNS:
        raise SystemExit(f"{where}: unknown pron {sc['pron']!r}; known: {', '.join(PRONOUNS)}")
    return {**optional, **sc}


def _fill(template: str, slots: dict[str, str], where: str) -> str:
    try:
        return template.format(**slots)
    except (KeyError, IndexError, ValueError) as exc:
        raise SystemExit(f"{where}: cannot fill {template!r}: {type(exc).__name__} {exc}; "
                         f"slots: {', '.join(sorted(slots))}") from None


# ---------------------------------------------------------------------------------------------------------------
# Assembly.
# ---------------------------------------------------------------------------------------------------------------
def _possessive(noun_phrase: str) -> str:
    return noun_phrase + ("'" if noun_phrase.endswith("s") else "'s")


def _pair_rows(concept: str, pair_id: str, pos: str, neg: str, meta: dict[str, str]) -> list[dict[str, Any]]:
    rows = []
    for label, text in ((1, pos), (0, neg)):
        rows.append({"id": f"{pair_id}-{'pos' if label else 'neg'}", "concept": concept, "text": text,
                     "label": label, "pair_id": pair_id, "group": meta["group"], "entity": meta["entity"],
                     "domain": meta["domain"], "source": meta["source"]})
    return rows


def _finish(text: str) -> str:
    text = " ".join(text.split())
    return text[0].upper() + text[1:]


def _frame_pair(frame: tuple[str, str], polarity: int, first: dict[str, str], second: dict[str, str],
                where: str) -> tuple[str, str]:
    """(positive, negative) from a two-polarity frame. ``first`` holds the slots with the content that makes a text
    positive when it wins (E, or the affected party) in {X}, ``second`` the same with the rival in {X}; polarity 0
    uses frame (a), 1 frame (b)."""
    if polarity == 0:   # (a): the first slot wins
        return _fill(frame[0], first, where), _fill(frame[0], second, where)
    return _fill(frame[1], second, where), _fill(frame[1], first, where)   # (b): the second slot wins


def _meta(sc: dict[str, Any]) -> dict[str, str]:
    return {"group": sc["group"], "entity": sc["entity"], "domain": sc["domain"], "source": "template"}


def build_interest_recognition(data_dir: Path = HERE) -> list[dict[str, Any]]:
    concept, rows, n = "interest_recognition", [], 0
    data = load_templates(concept, data_dir)
    frames, e_phrases, i_phrases, openers = (data[k] for k in ("frames", "entity_phrases", "instrumental_phrases",
                                                                 "openers"))
    for sc in data["scenarios"]:
        entity, pron = sc["entity"], PRONOUNS[sc["pron"]]
        where = f"{data['path']}: {entity}"
        np = sc["np"] or (entity if entity.startswith("the ") else "the " + entity)
        base = dict(pron, good=sc["good"], goal=_fill(sc["goal"], pron, where), np=np, np_poss=_possessive(np))
        slots = dict(base, obs=sc["obs"], op=sc["op"], actor=sc["actor"], org=sc["org"],
                     goal_np=_fill(sc["goal"], {"their": _possessive(np)}, where))
        for _ in range(TEMPLATES_PER_SCENARIO):
            # pair n: frame n % K, polarity alternating per cycle of frames, so each frame is used in both
            # polarities equally often; the E and I phrasings rotate independently.
            frame, polarity = frames[n % len(frames)], (n // len(frames)) % 2
            e = _fill(e_phrases[(n + n // len(frames)) % len(e_phrases)], base, where)
            i = _fill(i_phrases[n % len(i_phrases)], base, where)
            opener = _fill(openers[n % len(openers)], slots, where)
            n += 1
            pos, neg = _frame_pair(frame, polarity, dict(slots, X=e, Y=i), dict(slots, X=i, Y=e), where)
            rows += _pair_rows(concept, f"ir-t{n:03d}", _finish(f"{opener}{sc['obs']}. {pos}"),
                               _finish(f"{opener}{sc['obs']}. {neg}"), _meta(sc))
    return rows + _handwritten(concept, data_dir)


def build_perspective_taking(data_dir: Path = HERE) -> list[dict[str, Any]]:
    concept, rows, n = "perspective_taking", [], 0
    data = load_templates(concept, data_dir)
    frames = data["frames"]
    for sc in data["scenarios"]:
        where = f"{data['path']}: {sc['entity']}"
        aff = (sc["affected"], sc["affected_view"])
        dec = (sc["decision_maker"], sc["decision_maker_view"])

        def slots(first: tuple[str, str], second: tuple[str, str]) -> dict[str, str]:
            return {"sit": sc["situation"], "X": first[0], "X_poss": _possessive(first[0]), "x": first[1],
                    "Y": second[0], "Y_poss": _possessive(second[0]), "y": second[1]}

        for _ in range(TEMPLATES_PER_SCENARIO):
            frame, polarity = frames[n % len(frames)], (n // len(frames)) % 2
            n += 1
            pos, neg = _frame_pair(frame, polarity, slots(aff, dec), slots(dec, aff), where)
            rows += _pair_rows(concept, f"pt-t{n:03d}", _finish(pos), _finish(neg), _meta(sc))
    return rows + _handwritten(concept, data_dir)


def _handwritten(concept: str, data_dir: Path = HERE) -> list[dict[str, Any]]:
    """Read ``handwritten_<concept>.tsv``: group, entity, domain, positive, negative (tab-separated, # comments)."""
    path = data_dir / f"handwritten_{concept}.tsv"
    rows: list[dict[str, Any]] = []
    n = 0
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip() or line.startswith("#"):
            continue
        fields = line.split("\t")
        if len(fields) != 5 or not all(f.strip() for f in fields):
            raise SystemExit(f"{path}:{lineno}: expected 5 non-empty tab-separated fields, got {len(fields)}")
        group, entity, domain, pos, neg = (f.strip() for f in fields)
        if group not in GROUPS:
            raise SystemExit(f"{path}:{lineno}: unknown group {group!r}; known groups: {', '.join(GROUPS)}")
        n += 1
        meta = {"group": group, "entity": entity, "domain": domain, "source": "handwritten"}
        rows += _pair_rows(concept, f"{PREFIX[concept]}-h{n:03d}", pos, neg, meta)
    return rows


def _check(rows: list[dict[str, Any]]) -> None:
    ids = [r["id"] for r in rows]
    texts = [r["text"] for r in rows]
    if len(set(ids)) != len(ids):
        raise SystemExit("duplicate ids")
    if len(set(texts)) != len(texts):
        dup = [t for t, c in Counter(texts).items() if c > 1]
        raise SystemExit(f"duplicate texts: {dup[:3]}")
    for r in rows:
        if "{" in r["text"] or "}" in r["text"]:
            raise SystemExit(f"unfilled slot in {r['id']}: {r['text']}")
    pairs: dict[str, list[int]] = {}
    for r in rows:
        pairs.setdefault(r["pair_id"], []).append(r["label"])
    if any(sorted(labels) != [0, 1] for labels in pairs.values()):
        raise SystemExit("every pair_id must have exactly one positive and one negative row")


def composition(datasets: dict[str, list[dict[str, Any]]]) -> str:
    """Markdown tables of counts, generated from the rows."""
    out = ["# Composition of the concept datasets", "",
           "Generated by `build.py` from the JSONL files; do not edit by hand.", ""]
    for concept, rows in datasets.items():
        labels = Counter(r["label"] for r in rows)
        sources = Counter(r["source"] for r in rows)
        out += [f"## {concept}", "",
                f"- rows: {len(rows)} (label 1: {labels[1]}, label 0: {labels[0]}); "
                f"pairs: {len({r['pair_id'] for r in rows})}",
                f"- source: template {sources['template']}, handwritten {sources['handwritten']}",
                f"- distinct entities: {len({r['entity'] for r in rows})}; "
                f"domains: {len({r['domain'] for r in rows})}", "",
                "| group | rows | template | handwritten |", "|---|---:|---:|---:|"]
        by_group = Counter((r["group"], r["source"]) for r in rows)
        for g in sorted({r["group"] for r in rows}):
            t, h = by_group[(g, "template")], by_group[(g, "handwritten")]
            out.append(f"| {g} | {t + h} | {t} | {h} |")
        out += ["", "| domain | rows |", "|---|---:|"]
        for d, c in sorted(Counter(r["domain"] for r in rows).items()):
            out.append(f"| {d} | {c} |")
        out.append("")
    return "\n".join(out)


def build_all(data_dir: Path = HERE) -> dict[str, list[dict[str, Any]]]:
    datasets = {"interest_recognition": build_interest_recognition(data_dir),
                "perspective_taking": build_perspective_taking(data_dir)}
    for rows in datasets.values():
        _check(rows)
    return datasets


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE, help="output folder (default: this script's folder)")
    args = parser.parse_args(argv)
    datasets = build_all()   # before touching --out: bad data leaves it as it was
    args.out.mkdir(parents=True, exist_ok=True)
    for concept, rows in datasets.items():
        lines = (json.dumps(r, ensure_ascii=False) for r in rows)
        (args.out / f"{concept}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (args.out / "COMPOSITION.md").write_text(composition(datasets), encoding="utf-8")
    for concept, rows in datasets.items():
        print(f"{concept}: {len(rows)} rows, {len({r['group'] for r in rows})} groups -> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
