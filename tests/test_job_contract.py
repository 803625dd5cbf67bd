"""Shared checks over every registered job kind (in the spirit of scikit-learn's estimator checks):
its defaults validate; an unknown field, a wrong type and an out-of-range value are refused with a
message naming the field; its result round-trips through the store; the page it names opens a
stored result. A kind registered in this file alone shows up in the registry, the CLI and the
Jobs page with no other edit.
"""

from __future__ import annotations

import json
import typing
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from pydantic import Field
from streamlit.testing.v1 import AppTest

from conftest import REPO_ROOT
from featgeom_core import codec, jobs
from featgeom_core.errors import InvalidParameter
from featgeom_core.jobs import JobKind, JobOutput, register
from featgeom_core.params import Params, field_spec
from featgeom_core.progress import silent
from featgeom_core.store import Store, canonical_json

HARNESS = str(REPO_ROOT / "tests" / "harness" / "single_page.py")


# ---- a kind that exists only in this test file ----------------------------------------------


class SquareParams(Params):
    """Square a number."""

    x: float = Field(..., ge=-100, le=100, description="the number to square")
    repeat: int = Field(1, ge=1, le=10, description="how many copies of the square to return")


@dataclass(frozen=True)
class SquareResult:
    squares: np.ndarray

    def summary(self) -> dict[str, Any]:
        return {"square": float(self.squares[0]), "count": int(len(self.squares))}


def run_square(params: SquareParams, report) -> JobOutput:
    report(0.5, "squaring")
    return JobOutput(SquareResult(np.full(params.repeat, params.x**2)))


SQUARE = register(
    JobKind(
        "contract.square",
        "squares a number (registered by a test file)",
        SquareParams,
        run_square,
        SquareResult,
        example={"x": 3.0, "repeat": 2},
    )
)

KINDS = sorted(jobs.job_kinds())


# ---- helpers ----------------------------------------------------------------------------------


def _required_only(kind: JobKind) -> dict[str, Any]:
    return {name: kind.example[name] for name, info in kind.params.model_fields.items() if info.is_required()}


def _wrong_type(annotation: Any) -> Any:
    """A value of the wrong type for a field: a mapping, or text where a mapping is expected."""
    origin = typing.get_origin(typing.get_args(annotation)[0] if typing.get_origin(annotation) is typing.Annotated else annotation)
    return "not a mapping" if origin is dict else {"unexpected": ["mapping"]}


def _out_of_range(spec) -> Any | None:
    """A value beyond a numeric field's bounds (a list of one for a list field), or None."""
    highest, lowest = spec.highest(), spec.lowest()
    if highest is not None:
        value = int(highest) + 1 if spec.is_int else float(highest) * 2 + 1
    elif lowest is not None:
        value = int(lowest) - 1 if spec.is_int else float(lowest) - 1
    else:
        return None
    return [value] if spec.is_list else value


# ---- the checks -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", KINDS)
def test_defaults_and_example_validate(name: str) -> None:
    kind = jobs.job_kind(name)
    assert kind.example, f"{name} declares no example params"
    normalised = kind.validate(_required_only(kind))
    json.dumps(normalised)  # JSON-able: job ids and records hash and store it
    assert kind.validate(kind.example) == kind.validate(kind.validate(kind.example))  # normalising is idempotent
    for field in kind.params.model_fields:
        assert field_spec(kind.params, field).description, f"{name}.{field} has no description"


@pytest.mark.parametrize("name", KINDS)
def test_unknown_field_is_refused_by_name(name: str) -> None:
    kind = jobs.job_kind(name)
    with pytest.raises(InvalidParameter, match="unknown parameter 'no_such_field'"):
        kind.validate({**kind.example, "no_such_field": 1})


@pytest.mark.parametrize("name", KINDS)
def test_wrong_type_is_refused_by_name(name: str) -> None:
    kind = jobs.job_kind(name)
    typed = [f for f, info in kind.params.model_fields.items() if info.annotation is not Any]
    if not typed:
        pytest.skip(f"{name} takes any JSON value")
    for field in typed:
        value = _wrong_type(kind.params.model_fields[field].annotation)
        with pytest.raises(InvalidParameter, match=rf"\b{field}\b"):
            kind.validate({**kind.example, field: value})


@pytest.mark.parametrize("name", KINDS)
def test_out_of_range_is_refused_by_name(name: str) -> None:
    kind = jobs.job_kind(name)
    bounded = {f: _out_of_range(field_spec(kind.params, f)) for f in kind.params.model_fields}
    bounded = {f: v for f, v in bounded.items() if v is not None}
    if not bounded:
        pytest.skip(f"{name} has no bounded parameter")
    for field, value in bounded.items():
        with pytest.raises(InvalidParameter, match=rf"\b{field}\b") as refused:
            kind.validate({**kind.example, field: value})
        assert str(value if not isinstance(value, list) else value[0]) in str(refused.value)  # the value given is named


@pytest.mark.parametrize("name", KINDS)
def test_result_round_trips_through_the_store(name: str, tmp_path) -> None:
    kind = jobs.job_kind(name)
    entries = kind.execute(kind.validate(kind.example), silent)
    store = Store(tmp_path)
    for key, arrays, meta in entries:
        store.put(key, arrays, meta)
    stored = store.get(entries[0][0])
    result = store.get_result(entries[0][0], kind.result, stale_as_missing=False)
    assert isinstance(result, kind.result)
    arrays, meta = codec.encode(result)
    assert sorted(arrays) == sorted(stored.arrays)
    for array_name, values in arrays.items():
        np.testing.assert_array_equal(np.asarray(values), stored.arrays[array_name])
    assert json.loads(canonical_json(meta)) == stored.meta
    json.dumps(result.summary())


@pytest.mark.slow
@pytest.mark.parametrize("name", [k for k in KINDS if jobs.job_kind(k).page])
def test_its_page_opens_a_stored_result(name: str, local_backend: None) -> None:
    kind = jobs.job_kind(name)
    params = kind.validate(kind.example)
    job_id = jobs.submit(name, params)
    record = jobs.wait(job_id, timeout_s=300)
    assert record.status == "done", record.error
    at = AppTest.from_file(HARNESS, default_timeout=300)
    for key, value in {"page": kind.page, "model": "tiny-native", **kind.link(job_id, params)}.items():
        at.query_params[key] = value
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    assert at.get("plotly_chart"), f"{kind.page} drew nothing for {name}"


def test_a_kind_registered_in_a_test_file_reaches_the_registry_the_cli_and_the_jobs_page(capsys, local_backend: None) -> None:
    from featgeom_core.cli import main

    assert "contract.square" in jobs.job_kinds()
    assert main(["jobs", "kinds"]) == 0
    listing = capsys.readouterr().out
    assert "contract.square: squares a number" in listing and "the number to square" in listing
    assert main(["jobs", "kinds", "--json"]) == 0
    schema = json.loads(capsys.readouterr().out)["contract.square"]["params"]
    assert schema["properties"]["x"]["maximum"] == 100
    assert main(["run", "contract.square", "x=4", "repeat=3", "--inline", "--json", "--quiet"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["summary"] == {"square": 16.0, "count": 3}
    assert main(["run", "contract.square", "x=1000"]) == 2
    assert "x = 1000" in capsys.readouterr().err

    job_id = jobs.submit("contract.square", {"x": 5})  # computed on a Dask worker, which imports this module
    assert jobs.wait(job_id, timeout_s=120).status == "done"
    assert jobs.load_result(job_id).summary() == {"square": 25.0, "count": 1}
    at = AppTest.from_file(HARNESS, default_timeout=120)
    at.query_params["page"] = "pages/jobs.py"
    at.query_params["model"] = "tiny-native"
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert "contract.square" in at.multiselect(key="jobs_kind_filter").options
    table = at.dataframe[0].value
    assert job_id in list(table["job"])
    at.selectbox(key="jobs_selected").set_value(job_id).run()
    assert not at.exception
    assert any('"square": 25' in j.proto.body or "25" in j.proto.body for j in at.json)
