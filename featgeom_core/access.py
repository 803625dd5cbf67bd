"""Access control for a shared deployment: an optional access token.

The token comes from ``$FEATGEOM_ACCESS_TOKEN`` or a secrets file named by
``$FEATGEOM_ACCESS_TOKEN_FILE`` (a Docker or Kubernetes secret). With none, everything is open, as
on a laptop. With one, the app asks each browser session for it once, and the store is marked as
protected (``access.json``: a salted PBKDF2 hash, never the token), so the CLI refuses to read or
write that store unless it is given the same token.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from pathlib import Path

from featgeom_core.errors import AccessDenied, InvalidParameter
from featgeom_core.store import private_directory

ACCESS_FILE = "access.json"
_ITERATIONS = 200_000


def configured_token() -> str | None:
    """The deployment's token (the variable wins over the file), or None when access is open."""
    value = os.environ.get("FEATGEOM_ACCESS_TOKEN", "").strip()
    if value:
        return value
    path = os.environ.get("FEATGEOM_ACCESS_TOKEN_FILE", "").strip()
    if not path:
        return None
    try:
        value = Path(path).read_text().strip()
    except OSError as exc:
        raise InvalidParameter(f"FEATGEOM_ACCESS_TOKEN_FILE={path}: cannot read it ({exc.strerror})") from exc
    if not value:
        raise InvalidParameter(f"FEATGEOM_ACCESS_TOKEN_FILE={path} is empty: put the token in it, or unset the variable")
    return value


def tokens_match(given: str, expected: str) -> bool:
    """Constant-time comparison of two tokens."""
    return hmac.compare_digest(given.strip().encode(), expected.encode())


def _digest(token: str, salt: bytes) -> str:
    return hashlib.pbkdf2_hmac("sha256", token.encode(), salt, _ITERATIONS).hex()


def protect_store(root: Path, token: str) -> None:
    """Mark the store at ``root`` as protected by ``token``: kept when the same token marked it,
    replaced when the deployment's token changed (whoever starts the app sets the token)."""
    if (root / ACCESS_FILE).is_file() and store_accepts(root, token):
        return
    private_directory(root)
    salt = secrets.token_bytes(16)
    temporary = root / f".{ACCESS_FILE}.{os.getpid()}"
    temporary.write_text(json.dumps({"salt": salt.hex(), "pbkdf2_sha256": _digest(token, salt), "iterations": _ITERATIONS}))
    os.chmod(temporary, 0o600)
    os.replace(temporary, root / ACCESS_FILE)


def store_accepts(root: Path, token: str | None) -> bool:
    """Whether ``token`` opens the store at ``root`` (any token opens an unprotected store)."""
    try:
        mark = json.loads((root / ACCESS_FILE).read_text())
    except FileNotFoundError:
        return True
    except (OSError, ValueError):
        return False  # a damaged mark protects rather than opens
    if not token:
        return False
    try:
        return hmac.compare_digest(_digest(token.strip(), bytes.fromhex(mark["salt"])), str(mark["pbkdf2_sha256"]))
    except (KeyError, ValueError, TypeError):
        return False


def require_store_access(root: Path, token: str | None) -> None:
    """AccessDenied unless ``token`` opens the store at ``root``."""
    if not store_accepts(root, token):
        raise AccessDenied(
            f"the store at {root} is protected by an access token: set FEATGEOM_ACCESS_TOKEN (or "
            "FEATGEOM_ACCESS_TOKEN_FILE) to the deployment's token" + (" (the one given does not match)" if token else "")
        )
