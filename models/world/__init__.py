"""The offline miniature speech-text world (generated from a seed, no download).

:mod:`.stories` (text with topics and cause → effect structure), :mod:`.speech` (pseudo-speech:
words → 25 Hz units with speakers, durations, noise, alignments), :mod:`.evalsets` (sSC/tSC/
sBLIMP/sWUGGY-like pair manifests with cross-modal and multi-speaker variants),
:mod:`.tokenizer` (word-level text tokenizer), :mod:`.generate` (writes it all), :mod:`.pretrain`
(a tiny TextLM for the interleaved arm's init), :mod:`.baselines` and :mod:`.check` (count-based
calibration of the evaluation sets). CLI: ``slscale world generate | pretrain-textlm |
baselines``.
"""
