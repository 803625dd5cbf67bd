"""Model registry and loaders: the offline default, hub ids, local directories, native toys."""

from featgeom_core.models.registry import (
    DEFAULT_MODEL_ID,
    LoadedModel,
    ModelInfo,
    list_models,
    load_model,
    shared_model,
)

__all__ = ["DEFAULT_MODEL_ID", "LoadedModel", "ModelInfo", "list_models", "load_model", "shared_model"]
