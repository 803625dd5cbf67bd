"""Access control: with a token configured, a session sees nothing but the gate until it gives the
token, and the CLI refuses the store without it; with none, everything stays open."""

from __future__ import annotations

from pathlib import Path

import pytest

from featgeom_core import cli
from featgeom_core.access import (
    ACCESS_FILE,
    configured_token,
    require_store_access,
    store_accepts,
)
from featgeom_core.errors import AccessDenied, InvalidParameter

REPO_ROOT = Path(__file__).resolve().parent.parent


def app(monkeypatch, tmp_path, token: str | None):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("FEATGEOM_CACHE_DIR", str(tmp_path))
    if token is None:
        monkeypatch.delenv("FEATGEOM_ACCESS_TOKEN", raising=False)
    else:
        monkeypatch.setenv("FEATGEOM_ACCESS_TOKEN", token)
    at = AppTest.from_file(str(REPO_ROOT / "app.py"), default_timeout=120)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_the_gate_refuses_a_session_without_the_token_and_admits_one_with_it(monkeypatch, tmp_path) -> None:
    at = app(monkeypatch, tmp_path, "s3cret-token")
    assert [t.label for t in at.text_input] == ["Access token"]
    assert not at.selectbox and not at.sidebar.selectbox  # no page, no sidebar: nothing to use or download
    at.text_input[0].input("guess")
    at.button[0].click().run()
    assert any("not this deployment's access token" in e.value for e in at.error)
    assert not at.sidebar.selectbox
    at.text_input[0].input("s3cret-token")
    at.button[0].click().run()
    assert not at.exception
    assert "Model" in [s.label for s in at.sidebar.selectbox]  # the app itself
    assert (tmp_path / ACCESS_FILE).is_file() and "s3cret" not in (tmp_path / ACCESS_FILE).read_text()


def test_without_a_token_the_app_is_open_unless_the_store_is_protected(monkeypatch, tmp_path) -> None:
    at = app(monkeypatch, tmp_path, None)
    assert "Model" in [s.label for s in at.sidebar.selectbox]
    app(monkeypatch, tmp_path, "t0ken")  # marks the store
    at = app(monkeypatch, tmp_path, None)
    assert any("protected by an access token" in e.value for e in at.error) and not at.sidebar.selectbox


def test_the_cli_needs_the_token_of_a_protected_store(monkeypatch, tmp_path, capsys) -> None:
    from featgeom_core.access import protect_store

    monkeypatch.setenv("FEATGEOM_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("FEATGEOM_ACCESS_TOKEN", raising=False)
    assert cli.main(["feature-sets"]) == 0  # open store, no token: open
    protect_store(tmp_path, "abc123")
    assert cli.main(["feature-sets"]) == 2
    assert "protected by an access token" in capsys.readouterr().err
    monkeypatch.setenv("FEATGEOM_ACCESS_TOKEN", "wrong")
    assert cli.main(["feature-sets"]) == 2
    assert "does not match" in capsys.readouterr().err
    secret = tmp_path / "token.txt"
    secret.write_text("abc123\n")
    monkeypatch.delenv("FEATGEOM_ACCESS_TOKEN")
    monkeypatch.setenv("FEATGEOM_ACCESS_TOKEN_FILE", str(secret))  # a secrets file, as compose mounts one
    assert configured_token() == "abc123" and cli.main(["feature-sets"]) == 0


def test_a_token_file_that_is_missing_or_empty_is_a_clear_error(monkeypatch, tmp_path) -> None:
    monkeypatch.delenv("FEATGEOM_ACCESS_TOKEN", raising=False)
    monkeypatch.setenv("FEATGEOM_ACCESS_TOKEN_FILE", str(tmp_path / "absent"))
    with pytest.raises(InvalidParameter, match="cannot read"):
        configured_token()
    (tmp_path / "empty").write_text("\n")
    monkeypatch.setenv("FEATGEOM_ACCESS_TOKEN_FILE", str(tmp_path / "empty"))
    with pytest.raises(InvalidParameter, match="empty"):
        configured_token()


def test_a_damaged_mark_protects_rather_than_opens(tmp_path) -> None:
    (tmp_path / ACCESS_FILE).write_text("{not json")
    assert not store_accepts(tmp_path, "anything")
    with pytest.raises(AccessDenied):
        require_store_access(tmp_path, None)
