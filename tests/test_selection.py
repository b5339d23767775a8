"""Selection values: hooks, layers, position rules, marked spans and the position keys rows are stored under."""

from __future__ import annotations

import pytest

from common.errors import ConfigError
from activations.selection import (
    HOOKS,
    Item,
    Position,
    ResolvedItem,
    Selection,
    SelectionError,
    hook_point_name,
    parse_position_key,
    position_key,
    span_to_tokens,
    text_scope,
)


@pytest.mark.parametrize("text, reduce, marked", [
    ("last", "last", False), ("mean", "mean", False), ("all", "all", False), ("marked", "all", True),
    ("marked:last", "last", True), ("marked:mean", "mean", True), (" Marked:ALL ", "all", True),
])
def test_position_parse_and_canonical_string(text: str, reduce: str, marked: bool) -> None:
    rule = Position.parse(text)
    assert (rule.reduce, rule.marked) == (reduce, marked)
    assert Position.parse(str(rule)) == rule
    assert hash(rule) == hash(Position(reduce, marked))  # usable as a dict key


@pytest.mark.parametrize("text", ["first", "marked:first", "markedlast", "marked:", "lastt", ""])
def test_unknown_position_rule_lists_valid_ones(text: str) -> None:
    with pytest.raises(SelectionError, match="marked:mean"):
        Position.parse(text)


def test_selection_normalises_strings_and_duplicates() -> None:
    sel = Selection(hooks="resid_post", layers=[3, 1, 3], positions="marked:mean")
    assert sel.hooks == ("resid_post",)
    assert sel.layers == (1, 3)
    assert sel.positions == (Position("mean", marked=True),)
    assert sel.to_dict() == {"hooks": ["resid_post"], "layers": [1, 3], "positions": ["marked:mean"]}
    assert Selection(layers=5).layers == (5,)


def test_unknown_hook_lists_valid_hooks() -> None:
    with pytest.raises(SelectionError) as info:
        Selection(hooks=("resid_post", "resid_mid"))
    assert "resid_mid" in str(info.value)
    assert all(h in str(info.value) for h in HOOKS)
    assert isinstance(info.value, ConfigError)  # CLIs print it as one line


@pytest.mark.parametrize("layers", ["some", [], [1.5], [True]])
def test_bad_layer_values(layers: object) -> None:
    with pytest.raises(SelectionError, match="layers"):
        Selection(layers=layers)  # type: ignore[arg-type]


def test_out_of_range_layer_lists_valid_range() -> None:
    sel = Selection(layers=[0, 3, -1])
    with pytest.raises(SelectionError, match=r"\[-1, 3\].*valid layers are 0\.\.2"):
        sel.layer_list(3)
    assert Selection().layer_list(4) == (0, 1, 2, 3)


def test_columns_are_checked_against_the_bridge_hook_names() -> None:
    names = [hook_point_name(h, layer) for h in ("resid_pre", "resid_post") for layer in range(2)]
    assert Selection(hooks=("resid_pre", "resid_post")).columns(2, names) == (
        ("resid_pre", 0), ("resid_pre", 1), ("resid_post", 0), ("resid_post", 1))
    with pytest.raises(SelectionError, match="blocks.0.hook_attn_out.*serves: resid_pre, resid_post"):
        Selection(hooks="attn_out").columns(2, names)


def test_item_span_must_be_inside_the_text() -> None:
    assert Item("abcdef", (1, 3)).span == (1, 3)
    for span in [(3, 3), (-1, 2), (2, 7), (4, 2)]:
        with pytest.raises(SelectionError, match="span"):
            Item("abcdef", span)


def test_item_find_marks_last_occurrence_by_default() -> None:
    text = "Verdict: proceed. On reflection, final verdict: do not proceed."
    item = Item.find(text, "proceed")
    assert text[item.span[0]:item.span[1]] == "proceed"
    assert item.span[0] == text.rfind("proceed")
    assert Item.find(text, "proceed", occurrence=0).span[0] == text.find("proceed")
    with pytest.raises(SelectionError, match="occurs 2 time"):
        Item.find(text, "proceed", occurrence=2)
    with pytest.raises(SelectionError, match="does not occur"):
        Item.find(text, "refuse")


def test_item_from_markers_strips_them() -> None:
    item = Item.from_markers("Final verdict: [[do not proceed]].")
    assert item.text == "Final verdict: do not proceed."
    assert item.text[item.span[0]:item.span[1]] == "do not proceed"
    custom = Item.from_markers("a <<b>> c [[x]]", open="<<", close=">>")
    assert custom.text[custom.span[0]:custom.span[1]] == "b"
    for bad in ["no markers", "[[a]] [[b]]", "]]a[["]:
        with pytest.raises(SelectionError, match="marker"):
            Item.from_markers(bad)


def test_span_to_tokens_uses_overlap_and_skips_special_tokens() -> None:
    # BOS (0, 0), "Final"(0, 5), " verdict"(5, 13), ":"(13, 14), " do"(14, 17), " not"(17, 21)
    offsets = [(0, 0), (0, 5), (5, 13), (13, 14), (14, 17), (17, 21)]
    assert span_to_tokens(offsets, (15, 21)) == (4, 6)  # " do" straddles the span start: inside
    assert span_to_tokens(offsets, (0, 5)) == (1, 2)  # the BOS's empty offsets never match
    assert span_to_tokens(offsets, (6, 7)) == (2, 3)
    with pytest.raises(SelectionError, match="covers no tokens"):
        span_to_tokens(offsets, (30, 31))


def test_text_scope_drops_only_a_leading_bos() -> None:
    assert text_scope([1, 5, 6], bos_token_id=1) == (1, 3)
    assert text_scope([5, 1, 6], bos_token_id=1) == (0, 3)
    assert text_scope([5, 6], bos_token_id=None) == (0, 2)
    assert text_scope([1], bos_token_id=1) == (0, 1)


def test_position_keys_name_the_tokens_read() -> None:
    item = ResolvedItem("k", n_tokens=10, scope=(1, 10), span=(4, 7))
    keys = {str(p): position_key(p, item) for p in map(Position.parse, [
        "last", "mean", "all", "marked:last", "marked:mean", "marked:all"])}
    assert keys == {"last": "last@9", "mean": "mean[1:10]", "all": "all[1:10]", "marked:last": "last@6",
                    "marked:mean": "mean[4:7]", "marked:all": "all[4:7]"}
    assert parse_position_key("last@9") == ("last", 9, 10)
    assert parse_position_key("mean[4:7]") == ("mean", 4, 7)
    # A marked span that ends at the text's end reads the same token as ``last``: same key, shared row.
    tail = ResolvedItem("k", n_tokens=10, scope=(1, 10), span=(8, 10))
    assert position_key(Position("last", True), tail) == position_key(Position("last"), tail)


def test_marked_rule_on_unmarked_item_is_an_error() -> None:
    with pytest.raises(SelectionError, match="Item.find"):
        position_key(Position("mean", marked=True), ResolvedItem("k", 5, (1, 5)))
