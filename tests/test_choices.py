import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ppl import ChoiceMap
from ppl.errors import UnknownAddressError


def test_flat_and_nested_dicts_build_the_same_map():
    flat = ChoiceMap({"a/x": 1.0, "a/y": 2.0, "b": 3.0})
    nested = ChoiceMap({"a": {"y": 2.0, "x": 1.0}, "b": 3.0})
    mixed = ChoiceMap({"a/x": 1.0, "a": {"y": 2.0}, "b": 3.0})
    for cm in (flat, nested, mixed):
        assert cm.to_dict() == {"a/x": 1.0, "a/y": 2.0, "b": 3.0}
        assert jax.tree_util.tree_structure(cm) == jax.tree_util.tree_structure(flat)
    assert flat["a/x"] == 1.0
    assert flat["a"]["y"] == 2.0
    assert flat.to_nested() == {"a": {"x": 1.0, "y": 2.0}, "b": 3.0}


def test_reading_back_and_membership():
    cm = ChoiceMap({"a/x": jnp.arange(3.0)})
    assert "a/x" in cm and "a" in cm and "a/z" not in cm and "q" not in cm
    assert cm.has_value("a/x") and not cm.has_value("a")
    assert cm.get("nope", 7) == 7
    assert cm.addresses() == ("a/x",) and len(cm) == 1 and list(cm) == ["a/x"]
    np.testing.assert_array_equal(cm["a/x"], jnp.arange(3.0))
    assert not ChoiceMap() and len(ChoiceMap()) == 0


def test_missing_address_suggests_the_closest():
    cm = ChoiceMap({"delta": 1.0, "width": 2.0})
    with pytest.raises(UnknownAddressError, match="Did you mean 'delta'"):
        cm["delt"]
    with pytest.raises(KeyError):  # it is still a KeyError for ordinary Python code
        cm["nothing_like_it"]


def test_set_and_merge_are_pure():
    cm = ChoiceMap({"a/x": 1.0})
    cm2 = cm.set("a/y", 2.0).merge({"a/x": 5.0, "c": 0.0})
    assert cm.to_dict() == {"a/x": 1.0}
    assert cm2.to_dict() == {"a/x": 5.0, "a/y": 2.0, "c": 0.0}
    with pytest.raises(AttributeError):
        cm.x = 1


def test_choice_maps_are_pytrees_that_stack_and_map():
    maps = [ChoiceMap({"a/x": jnp.float32(i), "b": jnp.ones(2) * i}) for i in range(4)]
    stacked = jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *maps)
    assert isinstance(stacked, ChoiceMap)
    assert stacked["b"].shape == (4, 2)
    doubled = jax.jit(lambda c: jax.tree_util.tree_map(lambda v: 2 * v, c))(stacked)
    np.testing.assert_array_equal(doubled["a/x"], 2 * jnp.arange(4.0))
    lists = ChoiceMap({"v": [1.0, 2.0]})
    assert jax.tree_util.tree_leaves(lists)[0].shape == (2,)


@pytest.mark.parametrize(
    "bad, message",
    [
        ({"a//x": 1.0}, "empty component"),
        ({"/x": 1.0}, "empty component"),
        ({"a": 1.0, "a/x": 2.0}, "already holds a value"),
        ({"a/x": 1.0, "a": {"x": 2.0}}, "given twice"),
    ],
)
def test_malformed_choice_maps_are_rejected(bad, message):
    with pytest.raises(ValueError, match=message):
        ChoiceMap(bad)
    with pytest.raises(TypeError):
        ChoiceMap([("x", 1.0)])
