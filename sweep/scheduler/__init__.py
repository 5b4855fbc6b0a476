"""The sweep scheduler: runs a grid's runs on Ray, survives faults, never redoes finished work.

* :mod:`.policy` — run order, packing onto nodes, and a simulator of both;
* :mod:`.outcome` — how an attempt ended and how each cause is retried;
* :mod:`.backend` — Ray tasks (one process per attempt) and Ray Train worker groups;
* :mod:`.driver` — the loop: leases in the store, starts, outcomes, heartbeats;
* :mod:`.runners` — run functions: the DeepSpeed trainer and a synthetic stand-in;
* :mod:`.progress` — the live display.
"""

from slscale.sweep.scheduler.api import RunRequest, SchedulerOptions, SweepReport
from slscale.sweep.scheduler.backend import RayBackend
from slscale.sweep.scheduler.driver import Driver
from slscale.sweep.scheduler.outcome import Diverged, Preempted
from slscale.sweep.scheduler.policy import Order, Resources, simulate
from slscale.sweep.scheduler.runners import SyntheticRun, TrainerRun

__all__ = [
    "Diverged",
    "Driver",
    "Order",
    "Preempted",
    "RayBackend",
    "Resources",
    "RunRequest",
    "SchedulerOptions",
    "SweepReport",
    "SyntheticRun",
    "TrainerRun",
    "simulate",
]
