"""The exceptions pages and the CLI catch: every message is meant for a user to act on."""


class FeatgeomError(Exception):
    """Base class: something the user asked for cannot be done; the message says why."""


class InvalidParameter(FeatgeomError, ValueError):
    """A parameter value is out of range or inconsistent with the others. ``problems``: one line per
    problem (the message joins them), so a params model nested in another names its fields from there."""

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems = list(problems) if problems else [message]


class ModelUnavailable(FeatgeomError):
    """A model id cannot be resolved or loaded (unknown id, no network for a hub id)."""


class DataError(FeatgeomError):
    """A feature set or uploaded file is malformed or unusable."""


class StaleResult(FeatgeomError):
    """A stored result this featgeom cannot read (another store format or result layout): it must
    be recomputed; nothing else in the store is affected. ``job_id`` names the job whose result it
    is, where one does (a page offers to recompute it)."""

    def __init__(self, message: str, job_id: str | None = None) -> None:
        super().__init__(message)
        self.job_id = job_id


class StoreUnwritable(FeatgeomError):
    """The cache directory cannot be written (disk full, read-only, permissions): what was computed
    is not kept, and everything stored before is untouched and still served."""


class AccessDenied(FeatgeomError):
    """The deployment requires an access token and none (or a wrong one) was given."""


class JobCancelled(FeatgeomError):
    """Raised inside a running job's progress report once the job was cancelled: the computation
    stops there and nothing it made is stored."""
