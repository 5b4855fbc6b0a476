"""User-facing errors.

Every error a user can cause (bad YAML, unknown family, unreachable store, ...) is raised as
:class:`SlscaleError` with one line that names the file/field/value and says what to do. The
CLI prints that line and exits with status 2; it never shows a library traceback for them.
"""


class SlscaleError(Exception):
    """An error caused by input the user can fix; its message is shown as-is."""


class ConfigError(SlscaleError, ValueError):
    """A spec, grid or config field has a bad value."""


class StoreError(SlscaleError):
    """The results store cannot be opened, read or written."""
