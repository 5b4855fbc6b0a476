"""DeepSpeed's checkpoint files read with ``torch.load(weights_only=True)``.

DeepSpeed's ``TorchCheckpointEngine`` unpickles its files (model, optimizer and LR-scheduler
states) with ``weights_only=False``, which runs any code a file names. :func:`load_safely`
makes an engine read them with ``weights_only=True`` instead, allowing, besides tensors and
plain values, only the few DeepSpeed classes these files hold (:data:`DEEPSPEED_GLOBALS`:
found by loading the files of ZeRO stages 0-3 in fp32 and bf16 with nothing allowed). A file
naming anything else is refused with an error naming the file and the class, and no code from
it runs.
"""

from __future__ import annotations

import contextlib
import importlib
import pickle
import re
from collections.abc import Iterator
from typing import Any

import torch

from slscale.errors import SlscaleError

DEEPSPEED_GLOBALS = (
    "deepspeed.runtime.fp16.loss_scaler.LossScaler",
    "deepspeed.runtime.zero.config.ZeroStageEnum",
    "deepspeed.utils.tensor_fragment.fragment_address",
)
"""The classes DeepSpeed pickles into its checkpoint files besides tensors and plain values."""

_GLOBAL = re.compile(r"GLOBAL ([\w.]+)")


def load_safely(engine: Any) -> None:
    """Make ``engine`` (a DeepSpeed engine) read checkpoint files with ``weights_only=True``
    (its default torch checkpoint engine; other checkpoint engines are left as they are)."""
    checkpoint_engine: Any = getattr(engine, "checkpoint_engine", None)
    if type(checkpoint_engine).__name__ == "TorchCheckpointEngine":
        checkpoint_engine.load = safe_load  # shadows the method on this instance only


def safe_load(path: str, map_location: Any = None) -> Any:
    """``torch.load(path, weights_only=True)`` allowing :data:`DEEPSPEED_GLOBALS`."""
    with allowing_deepspeed_globals():
        try:
            return torch.load(path, map_location=map_location, weights_only=True)
        except pickle.UnpicklingError as exc:
            found = _GLOBAL.search(str(exc))
            what = f" ({found.group(1)})" if found else ""
            raise SlscaleError(
                f"{path}: names a class that checkpoints are not allowed to load{what}; it was "
                "not written by this trainer's DeepSpeed, or was altered: resume only from "
                "checkpoints your own runs wrote (remove this checkpoint folder to use an "
                "earlier one)"
            ) from None


@contextlib.contextmanager
def allowing_deepspeed_globals() -> Iterator[None]:
    """Inside, ``weights_only`` loads accept :data:`DEEPSPEED_GLOBALS`. Nested uses add and
    remove only what is not allowed already (torch's ``safe_globals`` removes on exit what it
    was given, even when an enclosing context had added it)."""
    allowed = torch.serialization.get_safe_globals()
    with torch.serialization.safe_globals([g for g in deepspeed_globals() if g not in allowed]):
        yield


def deepspeed_globals() -> list[Any]:
    """The classes of :data:`DEEPSPEED_GLOBALS`, imported."""
    found = []
    for name in DEEPSPEED_GLOBALS:
        module, _, attr = name.rpartition(".")
        found.append(getattr(importlib.import_module(module), attr))
    return found
