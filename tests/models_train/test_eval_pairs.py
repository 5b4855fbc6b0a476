"""Pair accuracy by likelihood on hand-built manifests scored by a model that is exactly a known
bigram table (eval_helpers.py), so the right answer under each convention is known."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from eval_helpers import bigram_model, bigram_table, bigram_vocab, ids

from slscale.errors import ConfigError, SlscaleError
from slscale.models.data.manifest import SPEECH, TEXT, EvalItem, EvalPair, write_manifest
from slscale.models.evaluate import (
    Convention,
    LikelihoodScorer,
    evaluate_suite,
    find_manifests,
    score_pairs,
)
from slscale.models.evaluate.encoding import encode_pair


@pytest.fixture(scope="module")
def world() -> Any:
    vocab = bigram_vocab()
    table = bigram_table(vocab)
    return vocab, table, bigram_model(vocab, table), ids(vocab)


def speech(*units: int) -> EvalItem:
    return EvalItem(modality=SPEECH, units=np.array(units, dtype=np.int16))


def text(words: str) -> EvalItem:
    return EvalItem(modality=TEXT, text=words)


def pair(name: str, prompt: EvalItem | None, pos: EvalItem, neg: EvalItem) -> EvalPair:
    return EvalPair(id=name, prompt=prompt, positive=pos, negative=neg)


# Bigram probabilities that decide these pairs (eval_helpers.bigram_table):
# P(u1|u0)=.45 > P(u3|u0)=.2 > P(u2|u0)=.1; from u4: P(u1)=.5, P(u5)=.25, then P(u5|u5)=.99.
STORY_PAIRS = [
    pair("right", speech(0), speech(1), speech(2)),  # the likelier ending is the positive
    pair("wrong", speech(0), speech(2), speech(1)),  # the likelier ending is the negative
    pair("tie", speech(0), speech(3), speech(3)),  # identical candidates: 0.5
    # one token at .5 against three at .25 * .99 * .99: lower summed NLL (0.69 < 1.41), but
    # higher mean NLL per continuation token (0.69 > 0.47); over the whole sequence (the
    # predictable prompt <speech>→u4 included) the mean again favours the positive.
    pair("length", speech(4), speech(1), speech(5, 5, 5)),
]
# Prompt-free: u0 u3 u3 against u0 u1 u2. From u3 90% of the mass goes to <text>: over the full
# vocabulary P(u3|u3) = .08 makes the positive less likely; renormalised over unit tokens it is
# .92 and the positive wins.
WORD_PAIRS = [pair("flip", None, speech(0, 3, 3), speech(0, 1, 2))]

EXPECTED = {
    # (reduction, span, softmax): (story accuracy, word accuracy)
    ("sum", "sequence", "full"): (0.625, 0.0),
    ("sum", "continuation", "full"): (0.625, 0.0),
    ("mean", "sequence", "full"): (0.625, 0.0),
    ("mean", "continuation", "full"): (0.375, 0.0),
    ("sum", "sequence", "speech"): (0.625, 1.0),
    ("mean", "continuation", "speech"): (0.375, 1.0),
}


@pytest.mark.parametrize("key", list(EXPECTED), ids=["-".join(k) for k in EXPECTED])
def test_accuracy_under_each_convention(world: Any, key: tuple[str, str, str]) -> None:
    vocab, _, model, _ = world
    convention = Convention(reduction=key[0], span=key[1], softmax=key[2])
    scorer = LikelihoodScorer(model, pad_id=vocab.pad_token_id)
    (story,) = score_pairs(scorer, vocab, STORY_PAIRS, [convention])
    (word,) = score_pairs(scorer, vocab, WORD_PAIRS, [convention])
    assert (story.accuracy, word.accuracy) == EXPECTED[key]
    assert story.outcomes[2] == 0.5 and story.positive_nll[2] == story.negative_nll[2]


def test_nll_values_are_the_bigram_table(world: Any) -> None:
    vocab, table, model, t = world
    scorer = LikelihoodScorer(model, pad_id=vocab.pad_token_id)
    summed = Convention(reduction="sum", span="continuation")
    (scores,) = score_pairs(scorer, vocab, STORY_PAIRS[3:], [summed])
    expected_negative = -np.log(table[t["u4"], t["u5"]] * table[t["u5"], t["u5"]] ** 2)
    assert scores.positive_nll[0] == pytest.approx(-np.log(0.5), abs=1e-5)
    assert scores.negative_nll[0] == pytest.approx(expected_negative, abs=1e-5)


def test_margin_is_the_mean_log_likelihood_advantage_of_the_positive(world: Any) -> None:
    vocab, table, model, t = world
    scorer = LikelihoodScorer(model, pad_id=vocab.pad_token_id)
    summed = Convention(reduction="sum", span="continuation")
    per_token = Convention(reduction="mean", span="continuation")
    got = score_pairs(scorer, vocab, STORY_PAIRS, [summed, per_token])
    log = {k: np.log(table[t["u0"], t[k]]) for k in ("u1", "u2")}
    log_length_neg = np.log(table[t["u4"], t["u5"]] * table[t["u5"], t["u5"]] ** 2)
    # right, wrong, tie, length (the negative's three tokens: per token, a third of the sum)
    sums = [log["u1"] - log["u2"], log["u2"] - log["u1"], 0.0, np.log(0.5) - log_length_neg]
    means = [*sums[:3], np.log(0.5) - log_length_neg / 3]
    assert got[0].margin == pytest.approx(np.mean(sums), abs=1e-5)
    assert got[1].margin == pytest.approx(np.mean(means), abs=1e-5)
    assert got[1].margin < 0 < got[0].margin  # the length pair flips sign per token


def test_all_conventions_come_from_one_set_of_forward_passes(world: Any) -> None:
    vocab, _, model, _ = world
    scorer = LikelihoodScorer(model, pad_id=vocab.pad_token_id)
    conventions = [
        Convention(reduction=r, span=s)
        for r in ("sum", "mean")
        for s in ("sequence", "continuation")
    ]
    results = score_pairs(scorer, vocab, STORY_PAIRS, conventions)
    assert [r.accuracy for r in results] == [0.625, 0.625, 0.625, 0.375]
    assert scorer.forward_passes == 1  # the 4 packed pairs fit one batch


def test_batching_and_prompt_sharing_do_not_change_the_scores(world: Any) -> None:
    vocab, _, model, _ = world
    pairs = STORY_PAIRS + [
        pair(f"p{k}", speech(*range(k % 6)), speech(1, 2), speech(3)) for k in range(2, 30)
    ]
    convention = [Convention(reduction="sum", span="sequence")]
    batched = LikelihoodScorer(model, pad_id=vocab.pad_token_id)
    single = LikelihoodScorer(model, pad_id=vocab.pad_token_id, max_batch_tokens=1)
    (a,) = score_pairs(batched, vocab, pairs, convention)
    (b,) = score_pairs(single, vocab, pairs, convention, share_prompts=False)
    np.testing.assert_allclose(a.positive_nll, b.positive_nll, atol=1e-5)
    np.testing.assert_allclose(a.negative_nll, b.negative_nll, atol=1e-5)
    assert batched.forward_passes == 1 and single.forward_passes == 2 * len(pairs)


@pytest.mark.parametrize("family", ["llama", "qwen2"])
def test_packed_candidates_score_as_if_each_ran_alone(family: str) -> None:
    # a random (untrained) model: every token's logits depend on its whole context, so a mask
    # or position error in the packed row would show
    from slscale.models.train.toy import ToyModel

    torch.manual_seed(0)
    model = ToyModel(family=family, vocab_size=40, hidden_size=32)().eval()
    prompt = (1, 5, 9, 2, 7, 7)
    candidates = [(*prompt, 3, 4, 8), (*prompt, 3, 6), (*prompt, 11), (*prompt, 3, 4, 8)]
    scorer = LikelihoodScorer(model)
    (packed,) = scorer.token_logprobs([candidates], {"full": None})["full"]
    for cand, scores in zip(candidates, packed, strict=True):
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([cand])).logits[0, :-1]
        alone = logits.log_softmax(-1).gather(-1, torch.tensor(cand[1:])[:, None])[:, 0]
        np.testing.assert_allclose(scores, alone.double().numpy(), atol=1e-5)
    assert np.array_equal(packed[0], packed[3])  # one path in the trie: an exact tie


def test_batches_are_longest_first_and_within_the_token_budget(world: Any) -> None:
    _, _, model, _ = world
    scorer = LikelihoodScorer(model, max_batch_tokens=12)
    lengths = [2, 5, 3, 6, 1, 4]
    batches = scorer.batches(lengths)
    assert [[lengths[i] for i in b] for b in batches] == [[6, 5], [4, 3, 2], [1]]


def test_candidates_are_written_like_training_documents(world: Any) -> None:
    vocab, _, _, t = world
    b, s, tx = t["bos"], t["S"], t["T"]
    pos, _ = encode_pair(pair("ss", speech(0), speech(1, 2), speech(3)), vocab)
    assert (pos.ids, pos.continuation_start) == ((b, s, t["u0"], t["u1"], t["u2"]), 3)
    pos, _ = encode_pair(pair("st", speech(0), text("a b"), text("c")), vocab)
    assert (pos.ids, pos.continuation_start) == ((b, s, t["u0"], tx, t["a"], t["b"]), 4)
    pos, _ = encode_pair(pair("ts", text("a"), speech(5), speech(4)), vocab)
    assert (pos.ids, pos.continuation_start) == ((b, tx, t["a"], s, t["u5"]), 4)
    pos, _ = encode_pair(pair("tt", text("a b"), text("c d"), text("d")), vocab)
    assert (pos.ids, pos.continuation_start) == ((b, tx, t["a"], t["b"], t["c"], t["d"]), 4)
    pos, _ = encode_pair(pair("t", None, text("d"), text("c")), vocab)
    assert (pos.ids, pos.continuation_start) == ((b, tx, t["d"]), 2)


def test_cross_modal_pairs_with_a_text_softmax(world: Any) -> None:
    vocab, _, model, _ = world
    scorer = LikelihoodScorer(model, pad_id=vocab.pad_token_id)
    # after <text>: P(a) = .6 > P(b) = .2; after "a": P(b) = .6 > P(c) = .1
    pairs = [
        pair("st", speech(0), text("a"), text("b")),
        pair("tt", text("a"), text("b"), text("c")),
    ]
    for softmax in ("full", "text"):
        (scores,) = score_pairs(
            scorer, vocab, pairs, [Convention(span="continuation", softmax=softmax)]
        )
        assert scores.accuracy == 1.0


def test_a_softmax_that_scores_no_token_is_an_error(world: Any) -> None:
    vocab, _, model, _ = world
    scorer = LikelihoodScorer(model, pad_id=vocab.pad_token_id)
    only_speech = Convention(span="continuation", softmax="speech")
    with pytest.raises(SlscaleError, match=r"pair 'st'.*scores none"):
        score_pairs(scorer, vocab, [pair("st", speech(0), text("a"), text("b"))], [only_speech])


def test_convention_names_round_trip_and_bad_ones_are_named() -> None:
    for c in (Convention(), Convention(reduction="sum", span="continuation", softmax="text")):
        assert Convention.parse(c.name) == c
    assert Convention.parse("cuervo-marxer").span == "continuation"
    with pytest.raises(ConfigError, match="'reduction' = 'median'"):
        Convention.parse("nll=median")
    with pytest.raises(ConfigError, match="expected comma-separated"):
        Convention.parse("mean")


def test_suite_finds_manifests_and_scores_them(world: Any, tmp_path: Path) -> None:
    vocab, _, model, _ = world
    write_manifest(STORY_PAIRS, tmp_path / "ssc_ss.jsonl")
    write_manifest([pair("st", speech(0), text("a"), text("b"))], tmp_path / "ssc_st.jsonl")
    write_manifest(WORD_PAIRS, tmp_path / "ms_swuggy_s.jsonl")
    refs = find_manifests(tmp_path, ["sSC", "MS-sWUGGY"], ["S", "S2T", "T"])
    assert [(r.benchmark, r.variant, r.path.name) for r in refs] == [
        ("sSC", "S", "ssc_ss.jsonl"),
        ("sSC", "S2T", "ssc_st.jsonl"),
        ("MS-sWUGGY", "S", "ms_swuggy_s.jsonl"),
    ]
    conventions = [Convention(), Convention(span="continuation"), Convention(softmax="speech")]
    scores = evaluate_suite(model, vocab, refs, conventions)
    got = {(s.benchmark, s.variant, s.convention): (s.accuracy, s.n_items) for s in scores}
    assert got == {
        ("sSC", "S", "nll=mean,span=sequence,softmax=full"): (0.625, 4),
        ("sSC", "S", "nll=mean,span=continuation,softmax=full"): (0.375, 4),
        ("sSC", "S2T", "nll=mean,span=sequence,softmax=full"): (1.0, 1),
        ("sSC", "S2T", "nll=mean,span=continuation,softmax=full"): (1.0, 1),
        ("MS-sWUGGY", "S", "nll=mean,span=sequence,softmax=full"): (0.0, 1),
        ("MS-sWUGGY", "S", "nll=mean,span=continuation,softmax=full"): (0.0, 1),
        # a speech-only softmax applies to speech continuations only (not to S2T)
        ("sSC", "S", "nll=mean,span=sequence,softmax=speech"): (0.625, 4),
        ("MS-sWUGGY", "S", "nll=mean,span=sequence,softmax=speech"): (1.0, 1),
    }


def test_suite_names_what_is_missing(tmp_path: Path) -> None:
    write_manifest(WORD_PAIRS, tmp_path / "sblimp_s.jsonl")
    with pytest.raises(ConfigError, match=r"--suite tSC: no manifest.*holds: sblimp_s.jsonl"):
        find_manifests(tmp_path, ["tSC"], ["S"])
    with pytest.raises(ConfigError, match="unknown benchmark 'xSC'"):
        find_manifests(tmp_path, ["xSC"], ["S"])
    with pytest.raises(ConfigError, match="unknown variant 'Q'"):
        find_manifests(tmp_path, ["sBLIMP"], ["Q"])


def test_scorer_caps_the_batch_by_logit_memory(world: Any) -> None:
    _, _, model, _ = world
    scorer = LikelihoodScorer(model, max_batch_tokens=10**9, logits_bytes=16 * 4 * 100)
    assert scorer.max_batch_tokens == 100  # 100 positions of 16 float32 logits


def test_generation_stays_in_its_modality(world: Any) -> None:
    from slscale.models.evaluate.generate import generate

    vocab, _, model, t = world
    # greedy over units from u0: u1 (.45), then u1 -> u1 (.7) ...
    assert generate(model, vocab, speech(0), SPEECH, max_new_tokens=3) == [t["u1"]] * 3
    # from u3 the likeliest next token is <text> (.9), which a speech continuation may not use
    assert generate(model, vocab, speech(3), SPEECH, max_new_tokens=2) == [t["u3"]] * 2
    # a text continuation after a speech prompt starts after <text>: "a" (.6), then "b" (.6)
    assert generate(model, vocab, speech(0), TEXT, max_new_tokens=2) == [t["a"], t["b"]]


def test_sampled_generation_is_seeded(world: Any) -> None:
    from slscale.models.evaluate.generate import generate

    vocab, _, model, _ = world
    units = set(range(vocab.unit_offset, vocab.unit_offset + vocab.num_units))
    draws = [
        generate(model, vocab, None, SPEECH, max_new_tokens=20, temperature=1.0, seed=s)
        for s in (1, 1, 2)
    ]
    assert draws[0] == draws[1] != draws[2]
    assert all(set(d) <= units for d in draws)
