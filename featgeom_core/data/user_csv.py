"""A user-uploaded CSV (``text,label[,position]``) as a feature set, parsed strictly as data."""

from __future__ import annotations

import io

import pandas as pd

from featgeom_core.data.feature_set import FeatureSet
from featgeom_core.data.knowledge import multiclass_feature_set
from featgeom_core.errors import DataError

MAX_ROWS = 100_000
MAX_BYTES = 50 * 2**20  # the server's upload cap (.streamlit/config.toml), also for CSVs read elsewhere


def feature_set_from_csv(content: bytes | str, name: str = "uploaded") -> FeatureSet:
    """Parse CSV text into a multi-class FeatureSet; raises ``DataError`` naming the problem.

    Columns: ``text`` (non-empty), ``label`` (at least two distinct values), optional integer
    ``position`` (token index in the encoded text with special tokens; -1 = last real token).
    """
    if len(content) > MAX_BYTES:
        raise DataError(f"the file is {len(content) / 2**20:.0f} MB; the limit is {MAX_BYTES // 2**20} MB")
    try:
        raw = content.decode("utf-8-sig") if isinstance(content, bytes) else content
    except UnicodeDecodeError as exc:
        raise DataError("the file is not UTF-8 text") from exc
    try:
        frame = pd.read_csv(io.StringIO(raw), dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise DataError(f"the file is not a readable CSV: {str(exc).splitlines()[0]}") from exc
    frame.columns = [str(c).strip().lower() for c in frame.columns]
    missing = [c for c in ("text", "label") if c not in frame.columns]
    if missing:
        raise DataError(
            f"the CSV is missing the column(s) {', '.join(missing)}; expected text,label[,position] (found: "
            f"{', '.join(frame.columns) or 'none'})"
        )
    if frame.empty:
        raise DataError("the CSV has a header but no rows")
    if len(frame) > MAX_ROWS:
        raise DataError(f"the CSV has {len(frame):,} rows; the limit is {MAX_ROWS:,}")
    empty_text = frame.index[frame["text"].str.strip() == ""]
    if len(empty_text):
        raise DataError(f"empty text in row(s) {', '.join(str(i + 2) for i in empty_text[:5])} (line numbers, header = 1)")
    empty_label = frame.index[frame["label"].str.strip() == ""]
    if len(empty_label):
        raise DataError(f"empty label in row(s) {', '.join(str(i + 2) for i in empty_label[:5])}")
    labels = frame["label"].str.strip()
    if labels.nunique() < 2:
        raise DataError(f"only one class ({labels.iloc[0]!r}): a probe needs at least two labels")
    positions = None
    if "position" in frame.columns:
        parsed = pd.to_numeric(frame["position"].str.strip().replace("", "-1"), errors="coerce")
        bad = frame.index[parsed.isna() | (parsed != parsed.round())]
        if len(bad):
            raise DataError(
                f"position must be an integer token index (or -1 for the last token); bad row(s) {', '.join(str(i + 2) for i in bad[:5])}"
            )
        positions = parsed.astype(int).tolist()
    counts = labels.value_counts()
    if counts.min() < 4:
        raise DataError(f"class {counts.idxmin()!r} has only {counts.min()} row(s); each class needs at least 4 for a train/test split")
    return multiclass_feature_set(
        name, frame["text"].tolist(), labels.tolist(), positions, f"uploaded CSV ({len(frame)} rows, {labels.nunique()} classes)"
    )
