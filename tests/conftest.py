"""Shared fixtures: an isolated cache per test session, and models loaded once."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("FEATGEOM_CACHE_DIR", tempfile.mkdtemp(prefix="featgeom-test-cache-"))

REPO_ROOT = Path(__file__).resolve().parent.parent
OUTPUT_DIR = REPO_ROOT / "test-output"


@pytest.fixture(scope="session")
def minilm():
    from featgeom_core.models import load_model

    return load_model("minilm", device="cpu")


@pytest.fixture(scope="session")
def tiny_native():
    from featgeom_core.models import load_model

    return load_model("tiny-native", device="cpu")


@pytest.fixture
def store(tmp_path):
    from featgeom_core.store import Store

    return Store(tmp_path / "store")


@pytest.fixture(scope="session")
def output_dir() -> Path:
    OUTPUT_DIR.mkdir(exist_ok=True)
    return OUTPUT_DIR
