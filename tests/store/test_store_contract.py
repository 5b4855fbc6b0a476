"""The store's concurrency contract (slscale.store.base), checked on every backend."""

from __future__ import annotations

import pickle
import threading
import time

import numpy as np
import pandas as pd
import pytest

from slscale.errors import StoreError
from slscale.spec import RunState
from slscale.store import EvalResult, Metric, Store, open_store

PENDING, RUNNING, FAILED, SUCCEEDED = (
    RunState.PENDING, RunState.RUNNING, RunState.FAILED, RunState.SUCCEEDED
)  # fmt: skip


def test_register_is_idempotent(store: Store, make_spec) -> None:
    assert store.register({"b": make_spec(), "a": make_spec(lr=1e-3)}) == ["b", "a"]
    store.set_state("a", RUNNING)
    assert store.register({"a": make_spec(lr=9e-3), "c": make_spec()}) == ["c"]
    assert store.register({}) == []
    run = store.get_run("a")
    assert run is not None
    assert run.spec == make_spec(lr=1e-3)  # the second registration left the row untouched
    assert run.state == RUNNING
    assert [r.run_id for r in store.list_runs()] == ["a", "b", "c"]
    fresh = store.get_run("c")
    assert fresh is not None and (fresh.state, fresh.attempts, fresh.summary) == (PENDING, 0, {})
    assert fresh.created_at.tzinfo is not None and fresh.lease_owner is None
    assert store.get_run("nope") is None


def test_list_runs_filters_by_state(store: Store, make_spec) -> None:
    store.register({rid: make_spec() for rid in ("r1", "r2", "r3")})
    store.set_state("r2", FAILED, error="boom")
    assert [r.run_id for r in store.list_runs([PENDING])] == ["r1", "r3"]
    assert [r.run_id for r in store.list_runs([FAILED, SUCCEEDED])] == ["r2"]
    assert store.list_runs([]) == []


def test_set_state_is_compare_and_set(store: Store, make_spec) -> None:
    store.register({"r": make_spec()})
    assert store.set_state("r", RUNNING, expected=[PENDING], host="node1", increment_attempts=True)
    assert not store.set_state("r", RUNNING, expected=[PENDING], increment_attempts=True)
    run = store.get_run("r")
    assert run is not None and (run.state, run.attempts, run.host) == (RUNNING, 1, "node1")
    assert store.set_state("r", FAILED, expected=[RUNNING], error="CUDA OOM\ntraceback")
    failed = store.get_run("r")
    assert failed is not None and failed.error == "CUDA OOM\ntraceback"
    assert failed.updated_at >= run.updated_at
    assert store.set_state("r", RUNNING, expected=[FAILED, PENDING], increment_attempts=True)
    rerun = store.get_run("r")
    assert rerun is not None and (rerun.attempts, rerun.error, rerun.host) == (2, None, "node1")
    assert store.set_state("r", SUCCEEDED)  # no expectation: always moves


def test_set_state_on_unknown_run_names_it(store: Store) -> None:
    with pytest.raises(StoreError, match="run 'ghost' is not registered"):
        store.set_state("ghost", RUNNING, expected=[PENDING])


def test_only_one_of_many_racing_drivers_wins_the_transition(store_target: str, make_spec) -> None:
    with open_store(store_target) as store:
        store.register({"r": make_spec()})
    stores = [open_store(store_target) for _ in range(6)]
    start, wins = threading.Barrier(len(stores)), []

    def driver(s: Store) -> None:
        start.wait()
        wins.append(s.set_state("r", RUNNING, expected=[PENDING], increment_attempts=True))

    threads = [threading.Thread(target=driver, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(wins) == [False] * 5 + [True]
    run = stores[0].get_run("r")
    assert run is not None and run.attempts == 1
    for s in stores:
        s.close()


def test_lease_is_exclusive_between_owners(store: Store, make_spec) -> None:
    store.register({"r": make_spec()})
    assert store.claim("r", "driver-1", 60)
    assert not store.claim("r", "driver-2", 60)
    assert store.claim("r", "driver-1", 60)  # the holder may re-claim (extends)
    assert not store.heartbeat("r", "driver-2", 60)
    assert store.heartbeat("r", "driver-1", 60)
    store.release("r", "driver-2")  # not the holder: no effect
    run = store.get_run("r")
    assert run is not None and run.lease_owner == "driver-1"
    assert run.lease_expires_at is not None and run.lease_expires_at > run.created_at
    store.release("r", "driver-1")
    assert store.claim("r", "driver-2", 60)


def test_expired_lease_can_be_taken_and_is_lost_by_its_old_owner(store: Store, make_spec) -> None:
    store.register({"r": make_spec()})
    assert store.claim("r", "driver-1", 0.3)
    assert not store.claim("r", "driver-2", 60)
    time.sleep(0.4)
    assert store.claim("r", "driver-2", 60)
    assert not store.heartbeat("r", "driver-1", 60)
    run = store.get_run("r")
    assert run is not None and run.lease_owner == "driver-2"


def test_lease_arguments_are_checked(store: Store, make_spec) -> None:
    with pytest.raises(StoreError, match="run 'ghost' is not registered"):
        store.claim("ghost", "driver-1", 60)
    store.register({"r": make_spec()})
    with pytest.raises(ValueError, match="lease_seconds = 0"):
        store.claim("r", "driver-1", 0)


def test_attempts_keep_their_world_size_per_run(store: Store, make_spec) -> None:
    store.register({"b": make_spec(), "a": make_spec(lr=1e-3)})
    store.record_attempt("b", 1, 2)
    store.record_attempt("a", 1, 8)
    store.record_attempt("b", 2, 1)
    store.record_attempt("a", 1, 4)  # the same attempt again: replaced, not added
    found = [(r.run_id, r.attempt, r.workers) for r in store.list_attempts()]
    assert found == [("a", 1, 4), ("b", 1, 2), ("b", 2, 1)]
    assert [(r.attempt, r.workers) for r in store.list_attempts(["b"])] == [(1, 2), (2, 1)]
    assert store.list_attempts([]) == []
    first = store.list_attempts(["b"])[0]
    assert first.started_at.tzinfo is not None
    assert first.started_at <= store.list_attempts(["b"])[1].started_at
    with pytest.raises(StoreError, match="'nope' is not registered"):
        store.record_attempt("nope", 1, 1)


def test_summary_keys_merge(store: Store, make_spec) -> None:
    store.register({"r": make_spec()})
    store.set_summary("r", {"n_params": np.int64(123_456), "loss": 3.5})
    store.set_summary("r", {"loss": 2.25, "seconds": 61.0})
    run = store.get_run("r")
    assert run is not None and run.summary == {"n_params": 123_456, "loss": 2.25, "seconds": 61.0}
    with pytest.raises(StoreError, match="run 'ghost' is not registered"):
        store.set_summary("ghost", {"loss": 1.0})


def test_metrics_upsert_keeps_one_row_per_key_with_the_last_value(store: Store, make_spec) -> None:
    store.register({"a": make_spec(), "b": make_spec()})
    first = [Metric("a", s, "loss", 10.0 - s, tokens=s * 100, flops=s * 1e9) for s in range(4)]
    assert store.log_metrics(first) == 4
    resumed = [Metric("a", s, "loss", 5.0 - s, tokens=s * 100) for s in range(2, 6)]
    batch_dupes = [Metric("b", np.int64(1), "lr", 0.1), Metric("b", 1, "lr", 0.2)]
    assert store.log_metrics(resumed + batch_dupes) == 6
    assert store.log_metrics([]) == 0
    frame = store.metrics_frame()
    expected = pd.DataFrame({
        "run_id": ["a"] * 6 + ["b"],
        "step": [0, 1, 2, 3, 4, 5, 1],
        "tokens": pd.array([0, 100, 200, 300, 400, 500, None], dtype="Int64"),
        "flops": [0.0, 1e9, np.nan, np.nan, np.nan, np.nan, np.nan],
        "name": ["loss"] * 6 + ["lr"],
        "value": [10.0, 9.0, 3.0, 2.0, 1.0, 0.0, 0.2],
    })  # fmt: skip
    pd.testing.assert_frame_equal(frame, expected, check_dtype=False)
    assert frame["step"].dtype == np.int64 and frame["value"].dtype == np.float64


def test_metrics_frame_filters_and_keeps_nan(store: Store, make_spec) -> None:
    store.register({"a": make_spec(), "b": make_spec()})
    rows = [Metric(r, s, n, float(s)) for r in "ab" for s in range(3) for n in ("loss", "lr")]
    store.log_metrics([*rows, Metric("b", 2, "loss", float("nan"))])
    only = store.metrics_frame(run_ids=["b"], names=["loss"])
    assert only["step"].tolist() == [0, 1, 2] and set(only["run_id"]) == {"b"}
    assert only["value"].iloc[:2].tolist() == [0.0, 1.0] and np.isnan(only["value"].iloc[2])
    assert len(store.metrics_frame(names=["lr"])) == 6
    assert len(store.metrics_frame(run_ids=[])) == 0
    assert list(store.metrics_frame(run_ids=[]).columns) == list(only.columns)


def test_results_of_unregistered_runs_are_refused(store: Store, make_spec) -> None:
    store.register({"a": make_spec()})
    with pytest.raises(StoreError, match="run 'zz' is not registered"):
        store.log_metrics([Metric("a", 1, "loss", 1.0), Metric("zz", 1, "loss", 1.0)])
    with pytest.raises(StoreError, match="run 'zz' is not registered"):
        store.log_evals([EvalResult("zz", 1, "sSC", "S->S", 0.5, 10, "ll")])
    assert len(store.metrics_frame()) == 0  # the batch was one transaction


def test_evals_upsert_per_benchmark_variant_convention(store: Store, make_spec) -> None:
    store.register({"a": make_spec()})
    store.log_evals([
        EvalResult("a", 100, "sSC", "S->S", 0.52, 1871, "sum"),
        EvalResult("a", 100, "sSC", "S->S", 0.54, 1871, "mean", margin=0.031),
        EvalResult("a", 100, "tSC", "S->T", 0.61, 1871, "sum", margin=float("nan")),
    ])  # fmt: skip
    assert store.log_evals([EvalResult("a", 100, "sSC", "S->S", 0.55, 1871, "sum", -0.5)]) == 1
    frame = store.evals_frame()
    expected = pd.DataFrame({
        "run_id": ["a"] * 3, "step": [100] * 3, "benchmark": ["sSC", "sSC", "tSC"],
        "variant": ["S->S", "S->S", "S->T"], "value": [0.54, 0.55, 0.61], "n_items": [1871] * 3,
        "convention": ["mean", "sum", "sum"], "margin": [0.031, -0.5, float("nan")],
    })  # fmt: skip
    pd.testing.assert_frame_equal(frame, expected, check_dtype=False)


def test_runs_frame_flattens_spec_and_summary(store: Store, make_spec) -> None:
    store.register({"a": make_spec(lr=1e-3, share=0.5), "b": make_spec()})
    store.set_state("a", SUCCEEDED, host="node7")
    store.set_summary("a", {"loss": 2.5, "tokens": 1_999_872, "n_params": 5000})
    frame = store.runs_frame().set_index("run_id")
    assert frame.loc["a", "recipe.lr"] == 1e-3 and frame.loc["b", "recipe.lr"] == 5e-4
    assert frame.loc["a", "mix.synthetic_share"] == 0.5
    assert frame.loc["a", "arch.num_layers"] == 2 and frame.loc["a", "modality"] == "interleaved"
    assert frame.loc["a", "tokens"] == 2_000_000  # the spec's budget ...
    assert frame.loc["a", "summary.tokens"] == 1_999_872  # ... and the trained tokens
    assert frame.loc["a", "loss"] == 2.5 and np.isnan(frame.loc["b", "loss"])
    assert frame.loc["a", "state"] == "SUCCEEDED" and frame.loc["a", "host"] == "node7"
    assert "arch" not in frame.columns and "mix" not in frame.columns
    assert str(frame["created_at"].dtype).startswith("datetime64") and frame["created_at"].dt.tz


def test_progress_frame_has_last_loss_and_tokens(store: Store, make_spec) -> None:
    store.register({"a": make_spec(), "b": make_spec()})
    store.log_metrics([Metric("a", s, "loss", 9.0 - s, tokens=1000 * s) for s in (3, 1, 2)])
    store.log_metrics([Metric("a", 4, "lr", 1e-4, tokens=4000)])
    frame = store.progress_frame()
    assert frame["run_id"].tolist() == ["a", "b"]
    assert frame["last_loss"].iloc[0] == 6.0 and np.isnan(frame["last_loss"].iloc[1])
    assert frame["tokens_done"].tolist() == [4000, pd.NA]
    pd.testing.assert_frame_equal(frame, Store.progress_frame(store))  # the generic definition


def test_a_pickled_store_reopens_with_the_same_data(store: Store, make_spec) -> None:
    store.register({"a": make_spec()})
    with pickle.loads(pickle.dumps(store)) as copy:
        assert [r.run_id for r in copy.list_runs()] == ["a"]
