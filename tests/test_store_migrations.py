"""Results and job ids from before the codec: a store written by featgeom 0.1 (format 1, every
kind's example, plus a MiniLM Hessian run with token sets) still opens, as today's result types
with the summaries 0.1 printed; job ids of unchanged params models are what they were."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from featgeom_core.jobs import manager, records
from featgeom_core.jobs.protocol import job_kinds
from featgeom_core.jobs.records import JobRecord
from featgeom_core.store import Store

FIXTURES = Path(__file__).parent / "fixtures" / "store_format1"
WRITTEN = json.loads((FIXTURES / "ids.json").read_text())
"""What featgeom 0.1 (commit 97a20ed) wrote: per run, its raw and normalised params, job id, result key and summary."""

CHANGED_BY_DESIGN = {"hessian.features", "lib.graph", "energy.sweep"}
"""Kinds whose ids are new, while old records keep theirs and still open: params that became
discriminated unions (a target of one kind), and the sweep's ``real_draws`` (the real target's draws
now start from each of its equally good minima: an old sweep's numbers are not a new one's, so an old
id must not find them)."""


FINGERPRINTED = {"feature_geometry", "sparsity.model"}
"""Kinds whose result keys also hash their inputs' fingerprints (the model, the data)."""


def _rounded(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, 9)
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_rounded(v) for v in value]
    return value


@pytest.fixture
def old_store(tmp_path: Path) -> Store:
    shutil.copytree(FIXTURES / "store", tmp_path / "store")
    store = Store(tmp_path / "store")
    for entry in WRITTEN.values():
        records.save(
            JobRecord(
                entry["job_id"],
                entry["kind"],
                entry["normalised"],
                "done",
                1.0,
                "done",
                result_key=entry["key"],
                created=1.0,
                started=1.0,
                finished=2.0,
            ),
            store.root,
        )
    return store


@pytest.mark.parametrize("run", sorted(WRITTEN))
def test_a_result_stored_by_featgeom_0_1_opens_with_the_same_summary(old_store: Store, run: str) -> None:
    entry = WRITTEN[run]
    kind = job_kinds()[entry["kind"]]
    assert old_store.entry_format(entry["key"]).format == 1
    result = kind.load(entry["job_id"], old_store)
    assert isinstance(result, kind.result)
    assert _rounded(json.loads(json.dumps(result.summary(), default=str))) == _rounded(entry["summary"])
    assert kind.params_of(entry["job_id"], old_store) == kind.parse(entry["raw"])  # the old record's params read as today's model


def test_an_old_token_set_keeps_its_tokens_and_contexts(old_store: Store) -> None:
    entry = WRITTEN["hessian.features/minilm"]
    result = job_kinds()["hessian.features"].load(entry["job_id"], old_store)
    assert result.is_language_model and result.sample_sets() == ["held-out", "training"]
    assert len(result.heldout_tokens) == result.heldout_curvatures.shape[0] == 16
    rows = result.top_rows(0, 3, "held-out")
    assert len(rows) == 3 and all(isinstance(row["token"], str) and row["token"] for row in rows)


def test_a_trained_model_stored_by_0_1_is_reused_by_a_graph_job(old_store: Store) -> None:
    from featgeom_core.interaction.jobs import LIB_TRAIN_DIGITS
    from featgeom_core.interaction.params import DigitsTrainParams

    entry = WRITTEN["lib.train_digits/example"]
    cached = LIB_TRAIN_DIGITS.cached(DigitsTrainParams.parse(entry["raw"]), old_store)
    assert cached is not None and cached.model == "digits" and set(cached.state) >= {"readout.weight", "readout.bias"}


@pytest.mark.parametrize("run", sorted(WRITTEN))
def test_golden_job_ids(run: str) -> None:
    entry = WRITTEN[run]
    kind = job_kinds()[entry["kind"]]
    normalised = kind.validate(entry["raw"])
    assert kind.validate(entry["normalised"]) == normalised  # 0.1's stored params mean what 0.1's raw params meant
    if entry["kind"] in CHANGED_BY_DESIGN:
        assert manager.job_id_for(entry["kind"], normalised) != entry["job_id"]
    else:
        assert manager.job_id_for(entry["kind"], normalised) == entry["job_id"]
        if entry["kind"] not in FINGERPRINTED:
            assert kind.result_key(normalised, {}) == entry["key"]
