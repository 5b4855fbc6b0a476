"""The TrainJob of a RunSpec: its model (scratch or TextLM, vocabulary extended), its mixed data
streams, its held-out streams, and the vocabulary saved beside the exported model.

:class:`SpecRun` builds these once per worker process and shares them between the job's
factories (its bound methods, which travel pickled to spawned or Ray workers together with one
instance; the cache does not travel). The data folder and the text tokenizer are runtime
paths, outside the spec and its identity.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from slscale.errors import ConfigError
from slscale.models.data.batching import BatchSource
from slscale.models.train.config import TrainConfig, TrainJob
from slscale.spec import RunSpec


class SpecRun:
    """Model, vocabulary and data of one run, built on first use in each process."""

    def __init__(self, spec: RunSpec, data_dir: Path, tokenizer: Path | None = None) -> None:
        self.spec, self.data_dir, self.tokenizer = spec, Path(data_dir), tokenizer
        self._cache: dict[str, Any] = {}

    def __getstate__(self) -> dict[str, Any]:
        return {
            "spec": self.spec,
            "data_dir": self.data_dir,
            "tokenizer": self.tokenizer,
            "_cache": {},
        }

    def model(self) -> torch.nn.Module:
        """The model to train (called once by the trainer, after it seeds torch)."""
        from slscale.models.build import build_model

        tokenizer = self.tokenizer or self._layout().tokenizer_dir
        model, vocab = build_model(self.spec, tokenizer=tokenizer)
        self._cache["vocab"] = vocab
        return model

    def train_source(self, shard: int, num_shards: int) -> BatchSource:
        return self._data().train_source(shard, num_shards)

    def validation_sources(self, shard: int, num_shards: int) -> Mapping[str, BatchSource]:
        """One single-pass source per stream of the mix (``val_loss.<stream>``), the same on
        every worker whatever its shard: the trainer shares the held-out batches out among the
        workers itself (see :mod:`slscale.models.train.loop`)."""
        return self._data().validation_sources()

    def export(self, directory: Path) -> dict[str, Any]:
        """Save the vocabulary (and tokenizer) next to the exported weights."""
        self._vocab().save(directory)
        return {"data_dir": str(self.data_dir.resolve())}

    def _vocab(self) -> Any:
        if "vocab" not in self._cache:
            raise RuntimeError("SpecRun.model() builds the vocabulary and must run first")
        return self._cache["vocab"]

    def _data(self) -> Any:
        if "data" not in self._cache:
            from slscale.models.data.factory import RunData

            self._cache["data"] = RunData(self.spec, self._vocab(), self.data_dir)
        return self._cache["data"]

    def _layout(self) -> Any:
        from slscale.models.data.layout import discover_layout

        return discover_layout(self.data_dir)


def spec_job(
    spec: RunSpec,
    *,
    workdir: str | Path,
    data_dir: str | Path,
    tokenizer: str | Path | None = None,
    **runtime: Any,
) -> TrainJob:
    """The job that trains ``spec`` on the data in ``data_dir`` (runtime: TrainConfig fields)."""
    if not Path(data_dir).is_dir():
        raise ConfigError(f"--data {data_dir}: no such folder")
    run = SpecRun(spec, Path(data_dir), None if tokenizer is None else Path(tokenizer))
    return TrainJob(
        config=TrainConfig.from_spec(spec, workdir=str(workdir), **runtime),
        model_factory=run.model,
        train_data=run.train_source,
        validation_data=run.validation_sources,
        on_export=run.export,
    )


@dataclasses.dataclass(frozen=True, kw_only=True)
class SpecJobBuilder:
    """``job_builder(spec, *, run_id, workdir, store, **runtime) -> TrainJob`` for the sweep
    scheduler: real model and data for every run of a grid."""

    data_dir: str
    """The data folder every run reads."""
    tokenizer: str | None = None
    """Text tokenizer folder of scratch runs that see text (default: ``<data>/tokenizer``)."""

    def __call__(self, spec: RunSpec, *, run_id: str, **runtime: Any) -> TrainJob:
        job = spec_job(spec, data_dir=self.data_dir, tokenizer=self.tokenizer, **runtime)
        if job.config.run_id != run_id:
            raise ConfigError(f"run id {run_id!r} does not match its spec ({job.config.run_id!r})")
        return job
