"""The findings ledger's parameters."""

from __future__ import annotations

from pydantic import Field

from featgeom_core.findings.declare import Paper
from featgeom_core.models.ids import ModelId
from featgeom_core.params import Params

DEFAULT_LEDGER_MODELS = ("minilm", "smollm2")


class LedgerParams(Params):
    """Which findings to measure: papers (default all) on which models (findings on synthetic data
    and toys are measured once, whatever the models)."""

    papers: list[Paper] = Field(
        ["thesis", "sparsity", "hessian", "lib"], min_length=1, max_length=4, description="papers whose findings to measure"
    )
    models: list[ModelId] = Field(
        list(DEFAULT_LEDGER_MODELS), min_length=1, max_length=4, description="models to measure model findings on"
    )
    keys: list[str] | None = Field(None, max_length=100, description="only these findings (by key; default: every finding of the papers)")
