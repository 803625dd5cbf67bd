"""The exceptions pages and the CLI catch: every message is meant for a user to act on."""


class FeatgeomError(Exception):
    """Base class: something the user asked for cannot be done; the message says why."""


class InvalidParameter(FeatgeomError, ValueError):
    """A parameter value is out of range or inconsistent with the others."""


class ModelUnavailable(FeatgeomError):
    """A model id cannot be resolved or loaded (unknown id, no network for a hub id)."""


class DataError(FeatgeomError):
    """A feature set or uploaded file is malformed or unusable."""
