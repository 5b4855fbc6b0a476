"""Process-group set-up for DeepSpeed: once per process, gloo on CPU, NCCL on GPU.

The process group is initialised once per process and never destroyed (re-initialising in the
same process fails inside torch.distributed). A process started without a launcher gets the
single-process rendezvous DeepSpeed needs (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and a
free MASTER_PORT; without it DeepSpeed falls back to MPI discovery), removed again once the group
exists so that processes started later do not inherit it.

On CPU, DeepSpeed's communication backend compiles a shared-memory all-reduce op with g++ on
first use (70-110 s with a cold extension cache). DeepSpeed uses that op only for
``inference_all_reduce``; training collectives go through torch.distributed (gloo). The op is
therefore marked unavailable before the backend starts, so DeepSpeed falls back to gloo and
nothing is compiled.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import socket

import torch

_SHM_OP = "deepspeed_shm_comm"


@dataclasses.dataclass(frozen=True)
class DistInfo:
    """Where this process sits in the data-parallel group."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def free_port() -> int:
    """A TCP port that was free a moment ago on 127.0.0.1."""
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def ensure_launcher_env() -> list[str]:
    """Fill in a single-process rendezvous if no launcher (torchrun, Ray Train) set one;
    return the names of the variables set here."""
    defaults = {"RANK": "0", "WORLD_SIZE": "1", "LOCAL_RANK": "0", "MASTER_ADDR": "127.0.0.1"}
    added = [name for name in (*defaults, "MASTER_PORT") if name not in os.environ]
    for name in added:
        os.environ[name] = defaults[name] if name in defaults else str(free_port())
    return added


def resolve_device(device: str) -> torch.device:
    """'auto' → this process's GPU when CUDA is available, else the CPU."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda":
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local_rank)
        return torch.device("cuda", local_rank)
    return torch.device(device)


def init_distributed(device: str = "auto") -> DistInfo:
    """Initialise DeepSpeed's process group (idempotent) and describe this process."""
    import deepspeed
    import deepspeed.comm as dist

    added = ensure_launcher_env()
    resolved = resolve_device(device)
    if resolved.type == "cpu":
        os.environ.setdefault("DS_ACCELERATOR", "cpu")
        deepspeed.ops.__compatible_ops__[_SHM_OP] = False
    if not dist.is_initialized():
        deepspeed.init_distributed(
            dist_backend="nccl" if resolved.type == "cuda" else "gloo",
            auto_mpi_discovery=False,
            verbose=False,
        )
    # The rendezvous made up here must not leak into processes this one starts (a child that
    # inherits MASTER_PORT would try to serve this group's port); DeepSpeed needs LOCAL_RANK.
    for name in added:
        if name != "LOCAL_RANK":
            os.environ.pop(name, None)
    return DistInfo(
        rank=dist.get_rank(),
        world_size=dist.get_world_size(),
        local_rank=int(os.environ.get("LOCAL_RANK", "0")),
        device=resolved,
    )


def all_reduce_sum(values: list[float], info: DistInfo) -> list[float]:
    """Element-wise sum of ``values`` over all workers (float64; no-op for one worker)."""
    if info.world_size == 1:
        return list(values)
    import deepspeed.comm as dist

    tensor = torch.tensor(values, dtype=torch.float64, device=info.device)
    dist.all_reduce(tensor)
    return [float(v) for v in tensor.tolist()]


def broadcast_object(obj: object, info: DistInfo) -> object:
    """Rank 0's ``obj`` on every worker."""
    if info.world_size == 1:
        return obj
    import torch.distributed

    box = [obj]
    torch.distributed.broadcast_object_list(box, src=0)
    return box[0]


def barrier(info: DistInfo) -> None:
    if info.world_size > 1:
        import deepspeed.comm as dist

        dist.barrier()
