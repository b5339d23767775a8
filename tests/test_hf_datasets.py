"""Concept data and stored activations export to Hugging Face ``datasets.Dataset`` with the exact same content."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from activations.extract import extract_and_load
from activations.selection import Item, Selection, SelectionError
from activations.tiny import tiny_model
from probes.concepts import load_concept

datasets = pytest.importorskip("datasets")

TEXTS = ["The dog waits by the door every evening.", "Sales rose in the third quarter.",
         "She noticed the child flinch at the noise.", "The report is due on Friday."]


def test_concept_dataset_round_trips_through_disk(tmp_path: Path) -> None:
    ds = load_concept("interest-recognition")  # hyphens accepted
    hf = ds.to_dataset()
    assert len(hf) == len(ds) and hf.column_names[:6] == ["id", "concept", "text", "label", "pair_id", "group"]
    hf.save_to_disk(str(tmp_path / "ir"))
    back = datasets.load_from_disk(str(tmp_path / "ir"))
    assert back["text"] == ds.texts and back["id"] == ds.ids and back["group"] == ds.groups
    assert np.array_equal(np.asarray(back["label"]), ds.labels)
    assert back["source"] == ds.sources and set(back["concept"]) == {"interest_recognition"}
    assert ds.data_hash in back.info.description


@pytest.fixture(scope="module")
def view(tmp_path_factory: pytest.TempPathFactory):
    model = tiny_model("llama", seed=0)
    items = [Item.find(TEXTS[0], "waits by the door"), Item.find(TEXTS[2], "the child flinch"),
             Item.find(TEXTS[1], "Sales rose"), Item.find(TEXTS[3], "due")]
    sel = Selection(hooks=("resid_post",), layers=[0, 1], positions=("last", "marked:all"))
    return extract_and_load(model, items, sel, tmp_path_factory.mktemp("store"), labels=[1, 1, 0, 0],
                            progress=False), model


def test_activation_view_exports_the_stored_matrices(view, tmp_path: Path) -> None:
    view, model = view
    hf = view.to_dataset("resid_post", position="last")
    assert hf.column_names == ["item", "text", "token", "label", "resid_post.0", "resid_post.1"]
    for layer in (0, 1):
        stored = view.matrix("resid_post", layer, "last").X
        assert np.array_equal(np.asarray(hf[f"resid_post.{layer}"], dtype=np.float32), stored.astype(np.float32))
    assert hf["text"] == [item.text for item in view.items] and hf["label"] == [1, 1, 0, 0]
    meta = json.loads(hf.info.description)
    assert meta["model"]["key"] == model.identity.key and meta["hook"] == "resid_post" and meta["layers"] == [0, 1]
    hf.save_to_disk(str(tmp_path / "acts"))
    back = datasets.load_from_disk(str(tmp_path / "acts"))
    assert np.array_equal(np.asarray(back["resid_post.1"], dtype=np.float32), view.matrix("resid_post", 1).X)


def test_token_rows_keep_item_and_position(view) -> None:
    view, _ = view
    m = view.matrix("resid_post", 1, "marked:all")
    hf = view.to_dataset("resid_post", layers=[1], position="marked:all")
    assert len(hf) == len(m.X) > len(view)  # one row per token of each marked span
    assert hf["item"] == m.groups.tolist() and hf["token"] == m.tokens.tolist()
    assert np.array_equal(np.asarray(hf["resid_post.1"], dtype=np.float32), m.X.astype(np.float32))


def test_nothing_stored_is_a_clear_error(view) -> None:
    view, _ = view
    with pytest.raises(SelectionError, match="extract them first"):
        view.to_dataset("mlp_out")
