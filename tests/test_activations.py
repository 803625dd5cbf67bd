"""Extraction: masks under padding, engine parity, per-layer caching, position checks."""

import numpy as np
import pytest

from featgeom_core.activations import extract
from featgeom_core.data.knowledge import multiclass_feature_set
from featgeom_core.errors import DataError, InvalidParameter

TEXTS = ["Charlie Garner", "Marco Belinelli played basketball in the city of San Antonio for years", "Shin-Soo Choo", "Al"]


def small_set(positions=None):
    return multiclass_feature_set("s", TEXTS, ["a", "b", "a", "b"], positions, "")


@pytest.mark.parametrize("engine", ["bridge", "plain"])
def test_padding_does_not_change_activations(minilm, engine: str) -> None:
    fs = small_set()
    batched = extract(minilm, fs, [0, 5], engine=engine, batch_size=4)
    for i, text in enumerate(TEXTS):
        alone_set = multiclass_feature_set("one", [text, text, "x y", "x y"], ["a", "b", "a", "b"], None, "")
        alone = extract(minilm, alone_set, [0, 5], engine=engine, batch_size=1)
        for layer in (0, 5):
            np.testing.assert_allclose(batched[layer][i], alone[layer][0], atol=2e-4)


def test_plain_engine_equals_the_bridge_on_minilm(minilm) -> None:
    fs = small_set()
    for hook in ("mlp_post", "resid_post"):
        fast = extract(minilm, fs, [1, 4], hook=hook, engine="plain")
        slow = extract(minilm, fs, [1, 4], hook=hook, engine="bridge")
        width = 1536 if hook == "mlp_post" else 384
        for layer in (1, 4):
            assert fast[layer].shape == (4, width)
            np.testing.assert_allclose(fast[layer], slow[layer], atol=1e-5)


def test_native_model_uses_the_bridge(tiny_native) -> None:
    values = extract(tiny_native, small_set(), [0, 1])
    assert values[1].shape == (4, 256) and np.isfinite(values[1]).all()


def test_layers_are_cached_one_by_one(minilm, store) -> None:
    fs = small_set()
    calls = []
    handle = minilm.plain_model.register_forward_pre_hook(lambda *args: calls.append(1))
    try:
        first = extract(minilm, fs, [2], store=store)
        n_after_first = len(calls)
        both = extract(minilm, fs, [2, 3], store=store)  # only layer 3 is computed
        n_after_second = len(calls)
        again = extract(minilm, fs, [2, 3], store=store)
    finally:
        handle.remove()
    assert n_after_first >= 1 and n_after_second > n_after_first and len(calls) == n_after_second
    np.testing.assert_array_equal(first[2], both[2])
    np.testing.assert_array_equal(both[3], again[3])


def test_positions_select_tokens(minilm) -> None:
    last = extract(minilm, small_set(), [0])
    explicit = extract(minilm, small_set([2, -1, -1, -1]), [0])  # "charlie garner" -> [CLS] charlie garner [SEP]
    np.testing.assert_allclose(explicit[0][0], last[0][0], atol=1e-6)
    first_token = extract(minilm, small_set([1, -1, -1, -1]), [0])
    assert not np.allclose(first_token[0][0], last[0][0])


def test_position_outside_the_text_is_a_data_error(minilm) -> None:
    with pytest.raises(DataError, match="outside their text"):
        extract(minilm, small_set([40, -1, -1, -1]), [0])


def test_bad_layers_and_hooks_are_refused(minilm) -> None:
    with pytest.raises(InvalidParameter, match="out of range"):
        extract(minilm, small_set(), [6])
    with pytest.raises(InvalidParameter, match="unknown hook"):
        extract(minilm, small_set(), [0], hook="attn")  # type: ignore[arg-type]


def test_two_sessions_extracting_at_once_get_their_own_activations(minilm) -> None:
    """One model object serves every session; its hooks are shared, so passes at once must not mix
    (under load, two sessions' probes once read each other's activations)."""
    import threading

    texts = [f"sample {i} of a text about {'rivers' if i % 2 else 'mountains'}" for i in range(160)]
    fs = multiclass_feature_set("concurrent", texts, ["a", "b"] * 80, None, "test")
    alone = {layer: extract(minilm, fs, [layer], engine="plain")[layer] for layer in (0, 4)}
    together: list[tuple[int, np.ndarray | Exception]] = []

    def run(layer: int) -> None:
        try:
            together.append((layer, extract(minilm, fs, [layer], engine="plain", batch_size=8)[layer]))
        except Exception as exc:  # noqa: BLE001  (reported below)
            together.append((layer, exc))

    threads = [threading.Thread(target=run, args=(layer,)) for layer in (0, 4, 0, 4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(together) == 4
    for layer, values in together:
        assert not isinstance(values, Exception), values
        np.testing.assert_allclose(values, alone[layer], rtol=1e-5, atol=1e-5)
