"""Run order, packing onto nodes and the makespan simulator (pure functions, no Ray)."""

import pytest

from slscale.errors import ConfigError
from slscale.sweep.scheduler.policy import (
    NodePool,
    Order,
    Resources,
    SimJob,
    order_runs,
    pick_startable,
    pick_widest,
    simulate,
)

ONE_CPU = Resources()


def jobs(hours, res=ONE_CPU):
    return [SimJob(run_id=f"r{i}", hours=h, resources=res) for i, h in enumerate(hours)]


def test_order_runs_sorts_by_size_and_keeps_grid_order_on_ties():
    sizes = {"a": 1.0, "b": 3.0, "c": 2.0, "d": 3.0}
    ids = list(sizes)
    assert order_runs(ids, sizes.__getitem__, "largest-first") == ["b", "d", "c", "a"]
    assert order_runs(ids, sizes.__getitem__, Order.SMALLEST_FIRST) == ["a", "c", "b", "d"]
    assert order_runs(ids, sizes.__getitem__, "grid") == ids


def test_unknown_order_is_a_config_error():
    with pytest.raises(ConfigError, match=r"--order 'biggest'.*largest-first"):
        order_runs(["a"], lambda r: 1.0, "biggest")


def test_lpt_matches_grahams_worst_case_example():
    # Graham (1969): 2 machines, jobs 3,3,2,2,2. LPT: {3,2,2} and {3,2} -> 7; optimum
    # {3,3} and {2,2,2} -> 6; the lower bound total/machines is 6.
    result = simulate(jobs([2, 3, 2, 3, 2]), [(2, 0)], "largest-first")
    assert result.makespan_hours == 7
    assert result.lower_bound_hours == 6


def test_largest_first_beats_grid_order_when_a_long_run_comes_last():
    hours = [1, 1, 1, 1, 4]
    grid = simulate(jobs(hours), [(2, 0)], "grid")
    lpt = simulate(jobs(hours), [(2, 0)], "largest-first")
    assert grid.makespan_hours == 6  # the 4-hour run starts after two waves of short ones
    assert lpt.makespan_hours == 4  # it starts at once; the short ones fill the other slot
    assert lpt.ratio == 1.0


def test_single_node_runs_never_span_nodes():
    # Two 8-GPU nodes, 4 GPUs free on each: a 6-GPU run must wait (STRICT_PACK).
    pool = NodePool([(64, 8), (64, 8)])
    four = Resources(workers=4, gpus_per_worker=1)
    pool.allocate(((0, 4),), four)
    pool.allocate(((1, 4),), four)
    assert pool.free == [[60, 4], [60, 4]]
    assert pool.place(Resources(workers=6, gpus_per_worker=1)) is None
    assert pool.place(four) is not None


def test_best_fit_packs_small_runs_onto_one_node():
    pool = NodePool([(64, 8), (64, 8)])
    four = Resources(workers=4, gpus_per_worker=1)
    for _ in range(2):
        pool.allocate(pool.place(four), four)
    assert pool.free == [[56, 0], [64, 8]]  # the second node stays whole for an 8-GPU run


def test_multi_node_runs_take_whole_nodes_and_best_fit_keeps_room():
    pool = NodePool([(64, 8), (64, 8), (64, 8)])
    two = Resources(workers=2, gpus_per_worker=1)
    pool.allocate(pool.place(two), two)
    # A 16-GPU run needs two full nodes: the two untouched ones.
    big = Resources(workers=16, gpus_per_worker=1)
    placement = pool.place(big)
    assert sorted(placement) == [(1, 8), (2, 8)]
    # A 2-GPU run goes to the node already in use (tightest fit), keeping full nodes free.
    assert pool.place(two) == ((0, 2),)


def test_pick_startable_backfills_past_a_run_that_does_not_fit():
    pool = NodePool([(4, 0)])
    res = {
        "big": Resources(workers=1, cpus_per_worker=3),
        "huge": Resources(cpus_per_worker=4),
        "small": Resources(cpus_per_worker=1),
    }
    picked = pick_startable(["big", "huge", "small"], res.__getitem__, pool, slots=5)
    assert [r for r, _ in picked] == ["big", "small"]
    assert pool.free == [[0, 0]]


def test_pick_startable_respects_the_slot_limit():
    pool = NodePool([(8, 0)])
    picked = pick_startable(list("abcdef"), lambda r: ONE_CPU, pool, slots=2)
    assert [r for r, _ in picked] == ["a", "b"]


def test_simulate_refuses_a_run_no_node_can_hold():
    with pytest.raises(ConfigError, match="fits on no node"):
        simulate(jobs([1], Resources(workers=9, gpus_per_worker=1)), [(64, 8)], "grid")


def test_lower_bound_is_the_longest_run_when_it_dominates():
    result = simulate(jobs([10, 1, 1]), [(4, 0)], "largest-first")
    assert result.lower_bound_hours == 10
    assert result.makespan_hours == 10


def test_a_run_with_fewer_worker_choices_starts_on_the_widest_that_fits_now():
    pool = NodePool([(4, 0), (2, 0)])
    pool.allocate(((0, 3),), ONE_CPU)  # free: 1 CPU on node 0, 2 on node 1
    four, two, one = (Resources(workers=n) for n in (4, 2, 1))
    choices = {"resumed": [four, two, one], "fresh": [two], "small": [one]}
    picked = pick_widest(["resumed", "fresh", "small"], choices.__getitem__, pool, slots=5)
    # 4 workers would fit on node 0 alone, once free: not spread now. 2 fit on node 1; the
    # fresh run's 2 then fit nowhere, and the small run backfills node 0.
    assert picked == [("resumed", ((1, 2),), two), ("small", ((0, 1),), one)]
    assert pool.free == [[0, 0], [0, 0]]
    assert pick_widest(["resumed"], choices.__getitem__, NodePool([(4, 0)]), 1) == [
        ("resumed", ((0, 4),), four)  # its planned width first, when it fits
    ]


def test_a_branch_starts_when_its_trunk_reaches_its_branch_point():
    # A trunk of 10 h with branches at 4 h and 8 h into it (2 h and 3 h of decay each), on
    # three CPUs: every run could start at once, but the branches wait for the trunk.
    runs = [
        SimJob(run_id="trunk", hours=10.0, resources=ONE_CPU),
        SimJob(run_id="early", hours=2.0, resources=ONE_CPU, after=("trunk", 4.0)),
        SimJob(run_id="late", hours=3.0, resources=ONE_CPU, after=("trunk", 8.0)),
    ]
    result = simulate(runs, [(3, 0)], "largest-first")
    assert result.starts == {"trunk": 0.0, "early": 4.0, "late": 8.0}
    assert result.makespan_hours == pytest.approx(11.0)
    assert result.lower_bound_hours == pytest.approx(11.0)  # the trunk's 8 h, then 3 h
    # on one CPU the trunk holds it: the branches run after it, in the queue's order
    result = simulate(runs, [(1, 0)], "largest-first")
    assert result.starts == {"trunk": 0.0, "late": 10.0, "early": 13.0}
    assert result.makespan_hours == pytest.approx(15.0)
    # a trunk that is not simulated (done already) holds nobody back
    result = simulate(runs[1:], [(2, 0)], "largest-first")
    assert result.starts == {"late": 0.0, "early": 0.0}


def test_a_waiting_branch_lets_other_runs_start_first():
    runs = [
        SimJob(run_id="trunk", hours=4.0, resources=ONE_CPU),
        SimJob(run_id="branch", hours=5.0, resources=ONE_CPU, after=("trunk", 3.0)),
        SimJob(run_id="other", hours=1.0, resources=ONE_CPU),
    ]
    result = simulate(runs, [(2, 0)], "largest-first")
    assert result.starts == {"trunk": 0.0, "other": 0.0, "branch": 3.0}
    assert result.makespan_hours == pytest.approx(8.0)
