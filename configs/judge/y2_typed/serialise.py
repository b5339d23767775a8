"""Serialise the hand-typed Y2 labels (batchN.txt: id|label|register|kind|answer_register|note) to JSONL.
Only serialises what was typed and checks the id order against the blind input; assigns nothing."""
import json, glob, sys
blind = [json.loads(l) for l in open("/work/prompts/blind_Y.jsonl")]
fmt = {r["id"]: r["format"] for r in blind}
out = []
for f in sorted(glob.glob("configs/judge/y2_typed/batch*.txt")):
    for line in open(f, encoding="utf-8"):
        if not line.strip():
            continue
        i, lab, reg, kind, ans, note = line.rstrip("\n").split("|", 5)
        row = {"id": i, "label": None if lab == "null" else lab, "register": reg, "annotator": "Y2-annotator", "note": note}
        if reg in ("think_block", "harmony"):
            row["answer_register"] = None if ans in ("null", "") else ans
        if reg == "other":
            assert kind, i
            row["kind"] = kind
        assert row["label"] in (None, "converged", "ambiguous", "did_not_converge", "refused"), i
        assert (fmt[i] == "think") == (reg == "think_block") and (fmt[i] == "harmony") == (reg == "harmony"), i
        out.append(row)
ids = [r["id"] for r in blind][: len(out)]
assert [r["id"] for r in out] == ids, "id order mismatch"
with open("configs/judge/second_annotation_Y.jsonl", "w", encoding="utf-8") as fh:
    for r in out:
        fh.write(json.dumps(r, ensure_ascii=False) + "\n")
print(len(out), "rows")
