"""Results as data: one mechanism that turns a result dataclass into (arrays, JSON metadata) and back.

A result type is a frozen dataclass. Its fields' type hints say where each value goes:

- ``np.ndarray``, ``torch.Tensor`` and ``scipy.sparse.csr_array`` values become arrays (NPZ),
  named by their path in the result (``graphs/lib/edges/0``); a tensor comes back as a tensor, a
  sparse matrix as its data, indices, indptr and shape;
- a nested result dataclass, or a ``list``/``tuple``/``dict[str, ...]`` of them or of arrays, is
  encoded in place, its metadata nested under the field's name and its arrays under its path;
- a pydantic model is stored as its JSON dump and validated back;
- anything else is a JSON value, read back through pydantic against the field's type (tuples,
  int keys of a mapping, optional fields come back as declared).

Nothing is pickled either way; :func:`decode` raises ``KeyError``/``ValueError``/``TypeError``
for a layout its type does not describe (the store reports those as a stale result).
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

import numpy as np
import scipy.sparse
import torch
from pydantic import BaseModel, TypeAdapter

T = TypeVar("T")
Arrays = dict[str, np.ndarray]
SEPARATOR = "/"
_SPARSE_PARTS = ("data", "indices", "indptr", "shape")


def encode(result: Any) -> tuple[Arrays, dict[str, Any]]:
    """(arrays by path, JSON-able metadata) of a result dataclass."""
    if not dataclasses.is_dataclass(result) or isinstance(result, type):
        raise TypeError(f"a stored result is a dataclass instance, got {type(result).__name__}")
    arrays: Arrays = {}
    meta = _encode_dataclass(result, "", arrays)
    return arrays, meta


def decode(cls: type[T], arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> T:
    """The ``cls`` instance that :func:`encode` wrote as ``arrays`` and ``meta``."""
    return typing.cast(T, _decode_dataclass(cls, "", arrays, meta))


def is_result_type(cls: Any) -> bool:
    """Whether ``cls`` is a dataclass type the codec can store."""
    return isinstance(cls, type) and dataclasses.is_dataclass(cls)


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


@functools.cache
def _fields(cls: type) -> list[tuple[str, Any, bool]]:
    """(name, type hint, has a default) of each init field."""
    hints = _hints(cls)
    missing = dataclasses.MISSING
    return [
        (f.name, hints[f.name], f.default is not missing or f.default_factory is not missing) for f in dataclasses.fields(cls) if f.init
    ]


def _path(prefix: str, name: str) -> str:
    if SEPARATOR in name:
        raise ValueError(f"a stored name may not contain {SEPARATOR!r}: {name!r}")
    return f"{prefix}{name}"


def _encode_dataclass(value: Any, prefix: str, arrays: Arrays) -> dict[str, Any]:
    cls: type = type(value)
    return {name: _encode(getattr(value, name), annotation, _path(prefix, name), arrays) for name, annotation, _ in _fields(cls)}


def _optional(annotation: Any) -> Any:
    """T for ``T | None`` (None when the annotation is not optional)."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(annotation)) == 2:
            return args[0]
    return None


def _stored_kind(annotation: Any) -> str:
    """How a type is stored: array, tensor, sparse, result, model, sequence, mapping or json."""
    if annotation is np.ndarray or typing.get_origin(annotation) is np.ndarray:
        return "array"
    if annotation is torch.Tensor:
        return "tensor"
    if annotation is scipy.sparse.csr_array:
        return "sparse"
    if is_result_type(annotation):
        return "result"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "model"
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (list, tuple) and args and _stored_kind(args[0]) != "json" and (origin is list or len(args) == 1 or args[1] is Ellipsis):
        return "sequence"
    if origin is dict and len(args) == 2 and _stored_kind(args[1]) != "json":
        return "mapping"
    inner = _optional(annotation)
    if inner is not None:
        return "optional"
    return "json"


def _encode(value: Any, annotation: Any, path: str, arrays: Arrays) -> Any:
    kind = _stored_kind(annotation)
    if kind == "optional":
        return None if value is None else _encode(value, _optional(annotation), path, arrays)
    if kind == "array":
        arrays[path] = np.asarray(value)
        return None
    if kind == "tensor":
        arrays[path] = value.detach().cpu().numpy()
        return None
    if kind == "sparse":
        matrix = scipy.sparse.csr_array(value)
        for part, array in zip(_SPARSE_PARTS, (matrix.data, matrix.indices, matrix.indptr, np.asarray(matrix.shape, dtype=np.int64))):
            arrays[f"{path}{SEPARATOR}{part}"] = array
        return None
    if kind == "result":
        return _encode_dataclass(value, path + SEPARATOR, arrays)
    if kind == "model":
        return value.model_dump(mode="json")
    if kind == "sequence":
        item = typing.get_args(annotation)[0]
        return [_encode(v, item, _path(path + SEPARATOR, str(i)), arrays) for i, v in enumerate(value)]
    if kind == "mapping":
        item = typing.get_args(annotation)[1]
        return {str(k): _encode(v, item, _path(path + SEPARATOR, str(k)), arrays) for k, v in value.items()}
    return to_json(value)


def _decode_dataclass(cls: type, prefix: str, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> Any:
    if not isinstance(meta, Mapping):
        raise TypeError(f"{cls.__name__} at {prefix or 'the top'}: metadata is not a mapping")
    values = {}
    for name, annotation, has_default in _fields(cls):
        if name not in meta and has_default and not _has_arrays(arrays, _path(prefix, name)):
            continue  # a field added after the result was written: its default
        values[name] = _decode(annotation, _path(prefix, name), arrays, meta.get(name))
    return cls(**values)


def _has_arrays(arrays: Mapping[str, np.ndarray], path: str) -> bool:
    return path in arrays or any(key.startswith(path + SEPARATOR) for key in arrays)


def _decode(annotation: Any, path: str, arrays: Mapping[str, np.ndarray], meta: Any) -> Any:
    kind = _stored_kind(annotation)
    if kind == "optional":
        inner = _optional(annotation)
        if meta is None and not _has_arrays(arrays, path):
            return None
        return _decode(inner, path, arrays, meta)
    if kind == "array":
        return np.asarray(arrays[path])
    if kind == "tensor":
        return torch.from_numpy(np.array(arrays[path]))
    if kind == "sparse":
        data, indices, indptr, shape = (arrays[f"{path}{SEPARATOR}{part}"] for part in _SPARSE_PARTS)
        return scipy.sparse.csr_array((data, indices, indptr), shape=tuple(int(v) for v in shape))
    if kind == "result":
        return _decode_dataclass(annotation, path + SEPARATOR, arrays, meta)
    if kind == "model":
        return annotation.model_validate(meta)
    if kind == "sequence":
        item = typing.get_args(annotation)[0]
        items = [_decode(item, _path(path + SEPARATOR, str(i)), arrays, m) for i, m in enumerate(meta)]
        return tuple(items) if typing.get_origin(annotation) is tuple else items
    if kind == "mapping":
        key_type, item = typing.get_args(annotation)
        return {_adapter(key_type).validate_python(k): _decode(item, _path(path + SEPARATOR, str(k)), arrays, m) for k, m in meta.items()}
    return _adapter(annotation).validate_python(meta)


@functools.cache
def _adapter(annotation: Any) -> TypeAdapter[Any]:
    return TypeAdapter(annotation)


def to_json(value: Any) -> Any:
    """A JSON-able copy of ``value``: numpy scalars and arrays as numbers and lists, tuples as
    lists, mapping keys as text."""
    if isinstance(value, Mapping):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    return value


META_NAME = "meta_json"
"""The name under which :func:`npz_bytes` keeps a result's metadata (one JSON string)."""


def npz_bytes(result: Any, extra: Mapping[str, np.ndarray] | None = None) -> bytes:
    """A result as one NPZ download: its arrays by path (``graphs/lib/edges/0``), any ``extra``
    arrays, and its metadata as the JSON string ``meta_json``; ``np.load`` reads it back without
    pickle."""
    import json

    arrays, meta = encode(result)
    arrays.update(extra or {})
    arrays[META_NAME] = np.asarray(json.dumps(meta))
    return arrays_npz(arrays)


def arrays_npz(arrays: Mapping[str, np.ndarray], compressed: bool = True) -> bytes:
    """NPZ bytes of named arrays (names may hold ``/``; ``np.load`` gives them back as written)."""
    import io

    buffer = io.BytesIO()
    write_npz(buffer, arrays, compressed)
    return buffer.getvalue()


def write_npz(target: Any, arrays: Mapping[str, np.ndarray], compressed: bool = True) -> None:
    """Write named arrays as NPZ to a path or a binary file object."""
    save = np.savez_compressed if compressed else np.savez
    save(target, **{name: np.asarray(value) for name, value in arrays.items()})  # type: ignore[arg-type]  # the stub reads **kwds as allow_pickle
