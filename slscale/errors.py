"""User-facing errors.

Every error a user can cause (bad YAML, unknown family, unreachable store, ...) is raised as
:class:`SlscaleError` with one line that names the file/field/value and says what to do. The
CLI prints that line and exits with status 2; it never shows a library traceback for them.

Each error also says whether running the same thing again can succeed (:attr:`retryable`):
a bad config field, a bad data row or a missing TextLM fails the same way every time, while a
store outage may be over by the next try. The sweep scheduler fails a run at its first attempt
on an error that is not retryable instead of spending its retries on it.
"""

from typing import ClassVar


class SlscaleError(Exception):
    """An error caused by input the user can fix; its message is shown as-is."""

    retryable: ClassVar[bool] = False
    """Whether the same attempt may succeed if run again unchanged. False: the input must
    change first, so a sweep does not retry it."""


class ConfigError(SlscaleError, ValueError):
    """A spec, grid or config field has a bad value."""


class DataError(SlscaleError):
    """A data file, or one row of it, cannot be used; the message names the file and line."""


class StoreError(SlscaleError):
    """The results store cannot be opened, read or written."""

    retryable = True  # an outage (a database restart, a network cut) ends by itself
