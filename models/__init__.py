"""slscale.models: one training run and what it needs (no knowledge of sweeps).

* :mod:`.families` — model families (frozen ``Family`` records) and size presets, sized to a
  parameter target; :mod:`.build` builds a run's model from scratch or from a TextLM with the
  speech-unit vocabulary extension (:mod:`.vocab`).
* :mod:`.data` — speech, text and interleaved streams, mixed by token share and packed.
* :mod:`.train` — the DeepSpeed trainer: ZeRO, checkpoints, resume (also on another worker
  count), WSD ladder branches, the run's ``result.json`` and store rows.
* :mod:`.evaluate` — sSC/tSC/sBLIMP/sWUGGY-style pair scoring and generation.
* :mod:`.world` — the offline miniature speech-text world (data, eval sets, tiny TextLMs).
* CLI: ``slscale train``, ``eval`` (:mod:`.run_commands`), ``data`` and ``world``.
"""
