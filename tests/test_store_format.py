"""Upgrades keep results: stored entries carry a store format; a featgeom opens older formats and
says which entries (and jobs) it must recompute for the others, never crashing on them."""

from __future__ import annotations

import json

import numpy as np
import pytest

from featgeom_core import __version__, cli, jobs
from featgeom_core.errors import StaleResult
from featgeom_core.jobs import records
from featgeom_core.jobs.records import JobRecord
from featgeom_core.store import FORMAT_FILE, FORMAT_VERSION, Store


def test_new_entries_carry_the_format_and_version(tmp_path) -> None:
    store = Store(tmp_path)
    store.put("ab" * 32, {"x": np.arange(3)}, {"n": 3})
    stamp = json.loads((store.path("ab" * 32) / FORMAT_FILE).read_text())
    assert stamp == {"format": FORMAT_VERSION, "featgeom": __version__}
    assert store.get("ab" * 32).meta == {"n": 3}


def test_an_entry_from_before_formats_opens(tmp_path) -> None:
    store = Store(tmp_path)
    store.put("cd" * 32, {"x": np.arange(3)}, {"n": 3})
    (store.path("cd" * 32) / FORMAT_FILE).unlink()  # as featgeom wrote it before format files
    assert store.entry_format("cd" * 32).format == 0
    assert store.get("cd" * 32).arrays["x"].tolist() == [0, 1, 2]


def test_a_newer_format_is_named_not_crashed_on_and_a_cache_recomputes_it(tmp_path) -> None:
    store = Store(tmp_path)
    key = "ef" * 32
    store.put(key, {"x": np.arange(3)}, {"n": 3})
    (store.path(key) / FORMAT_FILE).write_text(json.dumps({"format": 7, "featgeom": "9.0.0"}))
    with pytest.raises(StaleResult, match="featgeom 9.0.0 in store format 7.*recompute"):
        store.get(key)
    assert store.get(key, stale_as_missing=True) is None
    result, cached = store.get_or_compute(key, lambda: ({"x": np.arange(4)}, {"n": 4}))
    assert not cached and store.get(key).meta == {"n": 4}  # replaced, now readable


def test_damaged_files_are_a_stale_result(tmp_path) -> None:
    store = Store(tmp_path)
    key = "12" * 32
    store.put(key, {"x": np.arange(3)}, {"n": 3})
    (store.path(key) / "arrays.npz").write_bytes(b"not an npz")
    with pytest.raises(StaleResult, match="cannot be read"):
        store.get(key)


def _done_job(store: Store, job_id: str, kind: str, result_key: str) -> None:
    records.save(JobRecord(job_id=job_id, kind=kind, params={}, status="done", result_key=result_key, created=1.0), store.root)


def test_a_job_whose_result_layout_changed_says_recompute_and_the_cli_lists_it(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("FEATGEOM_CACHE_DIR", str(tmp_path))
    store = Store(tmp_path)
    store.put("34" * 32, {"nothing_this_version_reads": np.zeros(2)}, {"summary": {}})
    _done_job(store, "oldlayout", "energy.fit", "34" * 32)
    with pytest.raises(StaleResult, match="layout.*recompute") as caught:
        jobs.load_result("oldlayout", store)
    assert caught.value.job_id == "oldlayout"
    store.put("56" * 32, {"x": np.zeros(2)}, {})
    (store.path("56" * 32) / FORMAT_FILE).write_text(json.dumps({"format": 99, "featgeom": "5.0"}))
    _done_job(store, "newformat", "energy.fit", "56" * 32)
    assert cli.main(["store", "check"]) == 1
    out = capsys.readouterr().out
    assert "recompute job newformat (energy.fit)" in out and "store format 99" in out
    assert "2 results, by store format: 2: 1, 99: 1" in out


def test_a_record_written_by_a_newer_featgeom_still_loads(tmp_path) -> None:
    store = Store(tmp_path)
    _done_job(store, "future", "energy.fit", "78" * 32)
    path = records.jobs_dir(tmp_path) / "future.json"
    data = json.loads(path.read_text())
    path.write_text(json.dumps({**data, "a_field_from_the_future": 1}))
    assert records.load("future", tmp_path).status == "done"
