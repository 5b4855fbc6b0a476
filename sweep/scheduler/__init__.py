"""The sweep scheduler: runs a grid's runs on Ray, survives faults, never redoes finished work.

* :mod:`.policy` — run order, packing onto nodes, and a simulator of both;
* :mod:`.outcome` — how an attempt ended and how each cause is retried;
* :mod:`.backend` — Ray tasks (one process per attempt) and Ray Train worker groups;
* :mod:`.driver` — the loop: leases in the store, starts, outcomes, heartbeats;
* :mod:`.runners` — run functions: the DeepSpeed trainer and a synthetic stand-in;
* :mod:`.progress` — the live display.
"""

import importlib
from typing import Any

# Exported names -> their module. Loaded on first use: a Ray worker unpickling one run
# function must not import the driver (and with it the store and pandas).
_EXPORTS = {
    "RunRequest": "api",
    "SchedulerOptions": "api",
    "SweepReport": "api",
    "RayBackend": "backend",
    "Driver": "driver",
    "Diverged": "outcome",
    "Preempted": "outcome",
    "Order": "policy",
    "Resources": "policy",
    "simulate": "policy",
    "SyntheticRun": "runners",
    "TrainerRun": "runners",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
