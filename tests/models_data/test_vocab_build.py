"""Vocabulary extension and model building: scratch, TextLM (local / hub offline), units-only."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from models_data_helpers import bpe_tokenizer, tiny_config

from slscale.errors import ConfigError, SlscaleError
from slscale.models.build import build_model, load_model, save_model
from slscale.models.vocab import (
    PAD_TOKEN,
    extend_tokenizer,
    load_vocab,
    units_only_vocab,
)
from slscale.spec import DataMix, Modality, RunSpec

INTERLEAVED = DataMix(text_share=0.3, interleaved_share=0.4, speech_share=0.3)


def _spec(init: str = "scratch", **kw) -> RunSpec:
    base = {
        "family": "llama",
        "modality": Modality.INTERLEAVED,
        "tokens": 1000,
        "size": "mini-25k",
        "init": init,
        "mix": INTERLEAVED,
    }
    return RunSpec(**{**base, **kw})


def _logits(model, ids: list[int]) -> torch.Tensor:
    model.eval()
    with torch.no_grad():
        return model(torch.tensor([ids])).logits[0]


def test_extension_layout_and_dedicated_pad():
    tok = bpe_tokenizer(pad="eos")  # pad doubles as eos, as in Qwen's tokenizer
    assert tok.convert_ids_to_tokens(1) == "!"
    base = len(tok)
    vocab = extend_tokenizer(tok)
    assert vocab.unit_offset == base and vocab.text_vocab_size == base
    assert tok.convert_ids_to_tokens([base, base + 499]) == ["<Un0>", "<Un499>"]
    assert (vocab.speech_token_id, vocab.text_token_id) == (base + 500, base + 501)
    assert vocab.pad_added and vocab.pad_token_id == base + 502 == tok.pad_token_id
    assert tok.convert_ids_to_tokens(vocab.pad_token_id) == PAD_TOKEN
    assert vocab.pad_token_id not in (0, 1, tok.eos_token_id)
    assert vocab.vocab_size == base + 503
    assert vocab.encode_units(np.array([0, 7, 499])).tolist() == [base, base + 7, base + 499]
    assert vocab.decode_units(np.array([3, base + 7, vocab.speech_token_id])).tolist() == [7]
    with pytest.raises(ValueError, match=r"\[0, 500\)"):
        vocab.encode_units(np.array([500]))
    with pytest.raises(ValueError, match="speech-vocabulary token"):
        vocab.encode_text("hello <speech> world")
    words = ["the", "cat", "sat"]
    joined = np.concatenate(vocab.encode_words(words)).tolist()
    assert vocab.decode_text(joined) == "the cat sat"


def test_dedicated_pad_is_kept_and_units_only_layout():
    from slscale.models.world.lexicon import all_words
    from slscale.models.world.tokenizer import build_tokenizer

    tok = build_tokenizer(all_words())
    vocab = extend_tokenizer(tok)
    assert not vocab.pad_added and vocab.pad_token_id == tok.convert_tokens_to_ids("<pad>")
    only = units_only_vocab()
    assert (only.unit_offset, only.speech_token_id, only.text_token_id, only.vocab_size) == (
        0,
        500,
        501,
        502,
    )
    assert only.pad_token_id == only.text_token_id and only.units_only
    with pytest.raises(SlscaleError, match="cannot encode text"):
        only.encode_text("x")


def test_already_extended_tokenizer_is_refused(tmp_path: Path):
    tok = bpe_tokenizer()
    extend_tokenizer(tok)
    tok.save_pretrained(tmp_path / "tok")
    from transformers import AutoTokenizer

    again = AutoTokenizer.from_pretrained(str(tmp_path / "tok"))
    with pytest.raises(SlscaleError, match=r"tokenizer .*tok already has speech tokens \('<Un0>'"):
        extend_tokenizer(again, where=f"tokenizer {tmp_path / 'tok'}")


@pytest.mark.parametrize("family", ["llama", "qwen2", "opt", "gpt_neox"])
def test_textlm_extension_keeps_text_logits(
    family: str, make_checkpoint: Callable[..., Path], tmp_path: Path
):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = make_checkpoint(family)
    original = AutoModelForCausalLM.from_pretrained(str(folder))
    text_ids = AutoTokenizer.from_pretrained(str(folder)).encode("the cat sat on the mat!")
    before = _logits(original, text_ids)
    model, vocab = build_model(_spec(str(folder), family="qwen2" if family == "qwen2" else "llama"))
    rows = before.shape[1]
    assert model.get_input_embeddings().weight.shape[0] == vocab.vocab_size == rows + 503
    after = _logits(model, text_ids)
    torch.testing.assert_close(after[:, :rows], before, rtol=0, atol=0)
    new_rows = model.get_input_embeddings().weight[rows:]
    mean = model.get_input_embeddings().weight[:rows].mean(0)
    assert torch.allclose(new_rows, mean.expand_as(new_rows), atol=1e-2)
    assert new_rows.std(0).min() > 0  # jittered, not identical
    save_model(model, vocab, tmp_path / "extended")
    reloaded, vocab2 = load_model(tmp_path / "extended")
    assert vocab2 == vocab and vocab2.tokenizer.encode("the cat") == vocab.tokenizer.encode(
        "the cat"
    )
    torch.testing.assert_close(_logits(reloaded, text_ids), after, rtol=0, atol=0)
    # an extended checkpoint is loaded as it is when used as an init
    again, vocab3 = build_model(_spec(str(tmp_path / "extended")))
    assert vocab3 == vocab
    torch.testing.assert_close(_logits(again, text_ids), after, rtol=0, atol=0)
    assert model.config.pad_token_id == vocab.pad_token_id


def test_textless_units_only_keeps_first_rows(make_checkpoint: Callable[..., Path]):
    from transformers import AutoModelForCausalLM

    folder = make_checkpoint("llama")
    original = AutoModelForCausalLM.from_pretrained(str(folder))
    original.resize_token_embeddings(600)  # make sure the TextLM has more than 502 rows
    original.save_pretrained(folder)
    spec = _spec(str(folder), modality=Modality.TEXTLESS, mix=DataMix(), units_only_vocab=True)
    model, vocab = build_model(spec)
    assert vocab.units_only and model.get_input_embeddings().weight.shape[0] == 502
    torch.testing.assert_close(
        model.get_input_embeddings().weight, original.get_input_embeddings().weight[:502]
    )
    torch.testing.assert_close(
        model.get_output_embeddings().weight, original.get_output_embeddings().weight[:502]
    )
    assert model.config.vocab_size == 502


def test_scratch_models(tmp_path: Path):
    spec = _spec(modality=Modality.TEXTLESS, mix=DataMix(), units_only_vocab=True)
    model, vocab = build_model(spec, config=tiny_config("qwen2", 10))
    assert vocab.units_only and model.config.vocab_size == 502
    tok = bpe_tokenizer()
    tok.save_pretrained(tmp_path / "tok")
    model, vocab = build_model(_spec(), config=tiny_config("llama", 10), tokenizer=tmp_path / "tok")
    assert model.get_input_embeddings().weight.shape[0] == vocab.vocab_size == len(tok) + 503
    same, _ = build_model(_spec(), config=tiny_config("llama", 10), tokenizer=tmp_path / "tok")
    torch.testing.assert_close(
        same.get_input_embeddings().weight, model.get_input_embeddings().weight
    )  # seeded by spec.seed
    sized, _ = build_model(_spec(size="mini-25k"), tokenizer=tmp_path / "tok")  # families
    assert sized.config.hidden_size == 32 and sized.config.vocab_size == vocab.vocab_size


def test_bad_inits(tmp_path: Path, monkeypatch):
    with pytest.raises(ConfigError, match="needs a text tokenizer"):
        build_model(_spec(), config=tiny_config("llama", 10))
    with pytest.raises(ConfigError, match="set units_only_vocab: true"):
        build_model(
            _spec(modality=Modality.TEXTLESS, mix=DataMix()), config=tiny_config("llama", 10)
        )
    with pytest.raises(ConfigError, match=r"init '/no/such/ckpt': no such checkpoint folder"):
        build_model(_spec("/no/such/ckpt"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match=r"has no config\.json"):
        build_model(_spec(str(tmp_path / "empty")))
    with pytest.raises(ConfigError, match=r"tokenizer /no/such/tok: no such folder"):
        build_model(_spec(), config=tiny_config("llama", 10), tokenizer="/no/such/tok")
    with pytest.raises(ConfigError, match=r"tokenizer .*empty: cannot load it"):
        build_model(_spec(), config=tiny_config("llama", 10), tokenizer=tmp_path / "empty")
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(
        SlscaleError,
        match=r"init 'example-org/tiny-textlm': cannot load it .*"
        r"download it first",
    ):
        build_model(_spec("example-org/tiny-textlm"))


def test_vocab_save_and_load(tmp_path: Path):
    vocab = extend_tokenizer(bpe_tokenizer())
    vocab.save(tmp_path / "v")
    loaded = load_vocab(tmp_path / "v")
    assert loaded == vocab and loaded.tokenizer.pad_token_id == vocab.pad_token_id
    units_only_vocab().save(tmp_path / "u")
    assert load_vocab(tmp_path / "u") == units_only_vocab()
    with pytest.raises(SlscaleError, match="was not saved by slscale"):
        load_vocab(tmp_path)
