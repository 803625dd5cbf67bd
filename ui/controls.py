"""The controls on the energy pages: their settings, and how a result against them reads."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pandas as pd
import streamlit as st

from featgeom_core.energy.controls import CONTROLS
from featgeom_core.probing.params import ControlParams
from ui import params as widgets
from ui.plots import TARGET_LABEL
from ui.state import adopt_fields, flag, publish_fields

HOW_TO_READ = (
    "**How to read this.** Each target's PSM is fitted by low-dimensional abstract features, perturbed by σ and "
    "re-optimised under the energy alone; the distance it then ends from the target says how close the target "
    "sits to an energy minimum (small: close). Two controls go beside the real probe directions. The *permuted* "
    "control (dashed) shuffles each direction's coordinates: it has no shared geometry, so the real curve should "
    "lie below it. The *shuffled-label* control (dotted) retrains the probes on shuffled labels: balanced "
    "one-vs-rest probes sit near a simplex whatever the model knows, so **only a real curve below the "
    "shuffled-label band says the model's geometry, not the probing construction, is near a minimum**. Bands "
    "span the controls' seeds and noise draws; error bars, the real target's draws. With S seeds a rank p-value "
    "cannot go below 1/(S+1)."
)


CONTROL_FIELDS: dict[str, Callable[[str], Any]] = {
    "ctl_shuffled": flag,
    "ctl_perm_seeds": int,
    "ctl_label_seeds": int,
}  # widget key -> URL parser


def control_settings() -> ControlParams:
    """The controls expander (shared by the energy pages: the same keys)."""
    adopt_fields(CONTROL_FIELDS)
    with st.expander("Controls: shuffled-label and permuted, with seeds"):
        c1, c2, c3 = st.columns(3)
        st.session_state.setdefault("ctl_shuffled", True)
        shuffled = c1.toggle("Shuffled-label control", key="ctl_shuffled", help=widgets.help_text(ControlParams, "shuffled_labels"))
        permutation_seeds = widgets.number_input(ControlParams, "permutation_seeds", "permuted seeds", "ctl_perm_seeds", container=c2)
        seeds = widgets.number_input(
            ControlParams, "label_seeds", "label-shuffle seeds", "ctl_label_seeds", container=c3, disabled=not shuffled
        )
    publish_fields(CONTROL_FIELDS)
    return ControlParams(shuffled_labels=shuffled, permutation_seeds=int(permutation_seeds), label_seeds=int(seeds))


def _interval(row: dict, name: str) -> str:
    return f"{row[name]:.4f} [{row[f'{name}_low']:.4f}, {row[f'{name}_high']:.4f}]" if name in row else "—"


def verdict(row: dict) -> str:
    """In words: which controls the real target beats (its whole difference range below 0)."""
    beats = [TARGET_LABEL[c] for c in CONTROLS if row.get(f"real_closer_than_{c}")]
    present = [c for c in CONTROLS if f"real_closer_than_{c}" in row]
    if "shuffled_labels" in present and not row.get("real_closer_than_shuffled_labels"):
        return (
            "no closer than shuffled labels: the probing construction"
            if row.get("real_closer_than_permuted")
            else "no closer than either control"
        )
    return "closer than " + " and ".join(beats) if beats else "no closer than the permuted control"


def summary_table(summary: list[dict]) -> pd.DataFrame:
    """The per-layer summary as the page shows it: mean [range] per target, differences, p-values."""
    table = []
    for row in summary:
        shown = {"layer": row["layer"], "similarity": row["similarity"], "real": _interval(row, "real")}
        for control in CONTROLS:
            if control in row:
                shown[TARGET_LABEL[control]] = _interval(row, control)
                shown[f"real − {TARGET_LABEL[control]}"] = _interval(row, f"real_minus_{control}")
                shown[f"rank p ({TARGET_LABEL[control]})"] = round(row[f"rank_p_{control}"], 3)
        shown["reading"] = verdict(row)
        table.append(shown)
    return pd.DataFrame(table)
