"""Token budget → steps → micro-batches, and the learning-rate schedule (pure functions)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from slscale.errors import ConfigError
from slscale.models.train import LRSchedule, TokenBudget, TrainConfig
from slscale.models.train.schedule import warmup_steps
from slscale.spec import Recipe


def test_whole_steps_have_no_partial_step() -> None:
    budget = TokenBudget(tokens=10 * 8 * 32, global_batch_size=8, context_length=32)
    assert (budget.full_steps, budget.remainder_tokens, budget.total_steps) == (10, 0, 10)
    assert budget.step_sequence_lengths(9) == [32] * 8


def test_partial_last_step_carries_exactly_the_remainder() -> None:
    # 3 full steps of 8x32, then 100 tokens = 3 full sequences + one of 4 tokens
    budget = TokenBudget(tokens=3 * 256 + 100, global_batch_size=8, context_length=32)
    assert budget.total_steps == 4
    assert budget.step_sequence_lengths(3) == [32, 32, 32, 4]
    assert sum(budget.step_tokens(s) for s in range(4)) == budget.tokens
    assert budget.tokens_before(4) == budget.tokens


@settings(deadline=None)
@given(
    tokens=st.integers(1, 5_000),
    batch_per_worker=st.integers(1, 6),
    context=st.integers(1, 64),
    workers=st.integers(1, 4),
    micro=st.one_of(st.none(), st.integers(1, 5)),
)
def test_workers_consume_every_token_once_and_run_equal_micro_batch_counts(
    tokens: int, batch_per_worker: int, context: int, workers: int, micro: int | None
) -> None:
    budget = TokenBudget(
        tokens=tokens,
        global_batch_size=batch_per_worker * workers,
        context_length=context,
        num_workers=workers,
        micro_batch_size=micro,
    )
    consumed = 0
    for step in range(budget.total_steps):
        layouts = [budget.worker_micro_batches(step, rank) for rank in range(workers)]
        assert len({len(layout) for layout in layouts}) == 1
        for layout in layouts:
            for m in layout:
                assert m.num_sequences <= budget.resolved_micro_batch_size
            consumed += sum(m.tokens for m in layout)
    assert consumed == tokens
    assert budget.total_steps == math.ceil(tokens / budget.tokens_per_step)


def test_a_worker_without_sequences_in_the_last_step_runs_an_empty_micro_batch() -> None:
    budget = TokenBudget(tokens=256 + 10, global_batch_size=8, context_length=32, num_workers=2)
    assert budget.step_sequence_lengths(1) == [10]
    assert [m.tokens for m in budget.worker_micro_batches(1, 0)] == [10]
    assert [m.is_empty for m in budget.worker_micro_batches(1, 1)] == [True]


def test_budget_rejects_a_batch_that_workers_cannot_share() -> None:
    with pytest.raises(ConfigError, match="global_batch_size"):
        TokenBudget(tokens=100, global_batch_size=3, context_length=8, num_workers=2)


def test_schedule_warms_up_then_decays_to_the_floor_at_the_last_step() -> None:
    recipe = Recipe(lr=5e-4, lr_min=5e-5, warmup_fraction=0.01)
    schedule = LRSchedule.from_recipe(recipe, total_steps=1000)
    assert schedule.warmup_steps == 10
    assert schedule.lr(0) == pytest.approx(5e-5)  # (0 + 1) / 10 of the peak
    assert schedule.lr(9) == pytest.approx(5e-4)
    assert schedule.lr(10) == pytest.approx(5e-4)
    assert schedule.lr(999) == pytest.approx(5e-5)
    midpoint = 10 + (999 - 10) / 2
    assert schedule.lr(int(midpoint)) == pytest.approx(2.75e-4, rel=1e-2)  # cosine half-way
    assert all(schedule.lr(s) >= schedule.lr(s + 1) for s in range(10, 999))


def test_textless_recipe_warmup_is_at_least_100_steps() -> None:
    recipe = Recipe(min_warmup_steps=100, warmup_fraction=0.01)
    assert warmup_steps(recipe, 2000) == 100
    assert warmup_steps(recipe, 50_000) == 500
    assert warmup_steps(recipe, 40) == 40


def test_linear_and_constant_schedules() -> None:
    linear = LRSchedule(total_steps=11, warmup_steps=0, peak_lr=1.0, min_lr=0.0, kind="linear")
    assert [round(linear.lr(s), 6) for s in (0, 5, 10)] == [1.0, 0.5, 0.0]
    constant = LRSchedule(total_steps=5, warmup_steps=2, peak_lr=1.0, min_lr=0.1, kind="constant")
    assert [constant.lr(s) for s in range(5)] == [0.5, 1.0, 1.0, 1.0, 1.0]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("zero_stage", 4),
        ("device", "tpu"),
        ("precision", "fp8"),
        ("tokens", 0),
        ("log_every_steps", 0),
        ("checkpoint_every_steps", -1),
        ("run_id", "a/b"),
    ],
)
def test_config_errors_name_the_field_and_value(field: str, value: object) -> None:
    settings = {"run_id": "r", "workdir": "w", "tokens": 10, field: value}
    with pytest.raises(ConfigError, match=f"'{field}' = {value!r}"):
        TrainConfig(**settings)  # type: ignore[arg-type]


def test_unknown_trainer_settings_are_named() -> None:
    """A misspelt runtime setting (``--run-fn-kwargs``, a sweep's trainer settings) is a
    ConfigError naming it, which a sweep does not retry; a spec field is not a setting."""
    from slscale.spec import RunSpec

    spec = RunSpec(family="llama", size="mini-25k", modality="textless", tokens=1024)
    config = TrainConfig.from_spec(spec, workdir="w", zero_stage=2, checkpoint_every_steps=5)
    assert config.zero_stage == 2 and config.tokens == 1024
    with pytest.raises(ConfigError, match=r"unknown trainer setting\(s\) 'zero_stag'; known: "):
        TrainConfig.from_spec(spec, workdir="w", zero_stag=2)
    with pytest.raises(ConfigError, match=r"unknown trainer setting\(s\) 'tokens'"):
        TrainConfig.from_spec(spec, workdir="w", tokens=5)


@pytest.mark.parametrize("shape", ["linear", "1-sqrt"])
def test_wsd_schedule_is_its_closed_form(shape: str) -> None:
    """Hägele et al. 2024 §3: warm-up, the peak until the last f·S steps, then linear or
    1 − sqrt down to the floor at the last step."""
    recipe = Recipe(
        lr=1e-3, lr_min=1e-4, warmup_fraction=0.1, schedule="wsd", decay_fraction=0.2,
        decay_shape=shape,
    )  # fmt: skip
    total, warmup, start = 50, 5, 40  # 10% warm-up; decay: the last round(0.2 × 50) = 10 steps
    schedule = LRSchedule.from_recipe(recipe, total_steps=total)
    assert (schedule.warmup_steps, schedule.decay_start) == (warmup, start)

    def closed_form(s: int) -> float:
        if s < warmup:
            return 1e-3 * (s + 1) / warmup
        if s < start:
            return 1e-3
        p = (s - start + 1) / (total - start)
        return 1e-4 + (1e-3 - 1e-4) * (1 - (p if shape == "linear" else math.sqrt(p)))

    assert [schedule.lr(s) for s in range(total)] == pytest.approx(
        [closed_form(s) for s in range(total)], rel=1e-12
    )
    assert schedule.lr(start - 1) == 1e-3 > schedule.lr(start)
    assert schedule.lr(total - 1) == pytest.approx(1e-4, rel=1e-12)
    assert all(schedule(s) == schedule.lr(s) / 1e-3 for s in range(total))


def test_wsd_trunk_stays_at_the_peak_and_branch_points_round_to_steps() -> None:
    recipe = Recipe(lr=1.0, lr_min=0.0, warmup_fraction=0.0, min_warmup_steps=2, schedule="wsd")
    trunk = LRSchedule.from_recipe(recipe, total_steps=8, stable_to_end=True)
    assert [trunk.lr(s) for s in range(9)] == [0.5] + [1.0] * 8  # past its end too
    assert recipe.decay_start(10) == 8  # (1 - 0.2) × 10
    assert recipe.decay_start(13) == 10  # 0.2 × 13 = 2.6 decay steps, rounded to 3
    assert recipe.decay_start(4) == 3  # 0.2 × 4 = 0.8: at least one decay step
    assert recipe.decay_start(2) == 2  # never inside the warm-up: here no decay at all


def test_wsd_fields_apply_to_wsd_only() -> None:
    with pytest.raises(ConfigError, match=r"'recipe.decay_fraction' = 0.3: applies to schedule"):
        Recipe(decay_fraction=0.3)
    with pytest.raises(ConfigError, match=r"'recipe.decay_shape' = 'cosine': must be one of"):
        Recipe(schedule="wsd", decay_shape="cosine")
    with pytest.raises(ConfigError, match=r"'recipe.decay_fraction' = 1.0: must be in \(0, 1\)"):
        Recipe(schedule="wsd", decay_fraction=1.0)
    with pytest.raises(ConfigError, match=r"'recipe.schedule' = 'step': must be one of .*wsd"):
        Recipe(schedule="step")
