"""Errors users can act on: each message is one line naming the problem and the fix.

The CLI prints ``InterpbenchError`` messages without a traceback and exits with code 2.
"""


class InterpbenchError(Exception):
    """Base class for errors caused by user input (bad spec, bad site, bad shapes, ...)."""


class ModelLoadError(InterpbenchError):
    """A model spec that cannot be resolved or loaded."""


class SiteError(InterpbenchError):
    """A site name or pattern that is unknown, ambiguous or malformed."""


class SiteNeverFired(InterpbenchError):
    """An intervention or cache request whose site was never reached during the forward."""


class ShapeError(InterpbenchError):
    """Tensors whose shapes, devices or dtypes do not fit together."""


class ConfigError(InterpbenchError):
    """A recipe or config with unknown fields or wrong types."""
