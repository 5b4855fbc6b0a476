"""Speech-text data: readers, interleaving, streams, mixing and packing.

What other stages call:

* :func:`slscale.models.data.factory.make_batch_source` ``(spec, vocab, data_dir, seed,
  shard=, num_shards=)`` — the run's endless, resumable training ``BatchSource``
  (:class:`~slscale.models.data.mixing.MixedBatchSource`, ``tokens_consumed()`` reports the
  exact tokens per stream, per source and in speech units);
* :func:`slscale.models.data.factory.make_validation_sources` — one single-pass held-out source
  per stream; :class:`~slscale.models.data.factory.RunData` does both from one corpus load;
* :func:`slscale.models.data.manifest.read_manifest` — evaluation pairs (sSC, tSC, sBLIMP,
  sWUGGY, cross-modal and multi-speaker variants) as :class:`EvalPair` objects.

Formats: :mod:`.readers` (speech units + alignments, text), :mod:`.layout` (where files live),
:mod:`.manifest` and :mod:`.importers` (evaluation sets). The vocabulary is
:mod:`slscale.models.vocab`.
"""
