"""The content-addressed store: atomic writes, cache hits, no pickles."""

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from featgeom_core.errors import StaleResult
from featgeom_core.store import Store, result_key


def test_key_depends_on_every_part() -> None:
    base = result_key("psm", {"a": 1, "b": [1, 2]}, {"model": "m"})
    assert base == result_key("psm", {"b": [1, 2], "a": 1}, {"model": "m"})  # canonical order
    assert base != result_key("psm", {"a": 2, "b": [1, 2]}, {"model": "m"})
    assert base != result_key("probes", {"a": 1, "b": [1, 2]}, {"model": "m"})
    assert base != result_key("psm", {"a": 1, "b": [1, 2]}, {"model": "other"})


def test_round_trip_and_second_call_is_a_hit(store: Store) -> None:
    calls = []

    def compute():
        calls.append(1)
        return {"x": np.arange(6.0).reshape(2, 3)}, {"note": "hello", "n": 2}

    key = result_key("demo", {"p": 1}, {})
    first, cached_first = store.get_or_compute(key, compute)
    start = time.perf_counter()
    second, cached_second = store.get_or_compute(key, compute)
    elapsed = time.perf_counter() - start
    assert (cached_first, cached_second) == (False, True)
    assert len(calls) == 1
    np.testing.assert_array_equal(second.arrays["x"], np.arange(6.0).reshape(2, 3))
    assert second.meta == {"note": "hello", "n": 2}
    assert elapsed < 0.5


def test_object_arrays_are_never_unpickled(store: Store) -> None:
    key = result_key("evil", {}, {})
    directory = store.path(key)
    directory.mkdir(parents=True)
    np.savez(directory / "arrays.npz", x=np.array([{"a": 1}], dtype=object), allow_pickle=True)
    (directory / "meta.json").write_text("{}")
    with pytest.raises(StaleResult, match="pickle"):  # refused, and named as an entry to recompute
        store.get(key)


def test_a_killed_writer_leaves_no_readable_result(tmp_path: Path) -> None:
    root = tmp_path / "store"
    key = result_key("big", {}, {})
    writer = textwrap.dedent(
        f"""
        import numpy as np
        from featgeom_core.store import Store
        Store({str(root)!r}).put({key!r}, {{"x": np.ones((60_000_000,), dtype=np.float32)}}, {{"ok": True}})
        """
    )
    process = subprocess.Popen([sys.executable, "-c", writer])
    deadline = time.time() + 60
    while time.time() < deadline and not list(root.glob("*/.tmp-*/arrays.npz")):
        time.sleep(0.005)
    assert list(root.glob("*/.tmp-*")), "the writer never started writing"
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    store = Store(root)
    assert store.get(key) is None and not store.contains(key)
    assert store.sweep_temporaries() >= 1
    store.put(key, {"x": np.zeros(3)}, {"ok": True})
    assert store.get(key).meta == {"ok": True}


def test_size_reports_bytes(store: Store) -> None:
    assert store.size_bytes() == 0
    store.put(result_key("s", {}, {}), {"x": np.zeros(1000)}, {})
    assert store.size_bytes() > 8000


def test_cache_dir_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("FEATGEOM_CACHE_DIR", str(tmp_path / "elsewhere"))
    assert Store().root == (tmp_path / "elsewhere").resolve()
