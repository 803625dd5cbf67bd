"""Feature sets: labelled token positions in real text, ready for probing."""

from featgeom_core.data.feature_set import FeatureSet
from featgeom_core.data.registry import list_feature_sets, load_feature_set
from featgeom_core.data.text_features import TEXT_FEATURES, text_feature_labels
from featgeom_core.data.user_csv import feature_set_from_csv

__all__ = [
    "FeatureSet",
    "TEXT_FEATURES",
    "feature_set_from_csv",
    "list_feature_sets",
    "load_feature_set",
    "text_feature_labels",
]
