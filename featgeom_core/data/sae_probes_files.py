"""Reading the real datasets shipped as data files in the ``sae-probes`` package."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from featgeom_core.errors import DataError


def sae_probes_data_dir() -> Path:
    """``sae_probes/data/cleaned_data`` of the installed package (installed with --no-deps)."""
    try:
        import importlib.util

        spec = importlib.util.find_spec("sae_probes")
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise DataError("the real datasets need the package 'sae-probes' (pip install --no-deps sae-probes)")
    return Path(list(spec.submodule_search_locations)[0]) / "data" / "cleaned_data"


def read_dataset(stem: str) -> pd.DataFrame:
    """One ``<stem>.csv.zst`` file as a DataFrame with at least ``prompt`` and ``target``."""
    path = sae_probes_data_dir() / f"{stem}.csv.zst"
    if not path.exists():
        raise DataError(f"dataset file {path.name} is not in the installed sae-probes package")
    frame = pd.read_csv(path)
    if not {"prompt", "target"} <= set(frame.columns):
        raise DataError(f"{path.name} lacks the prompt/target columns")
    return frame
