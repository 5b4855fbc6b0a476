"""slscale.sweep: many runs — grids, their cost, and the scheduler that trains them.

* :mod:`.grid`, :mod:`.generators`, :mod:`.io` — grid files (axes, IsoFLOP/ratio/WSD-ladder
  generators) expanded into run specs; :mod:`.examples` — the shipped grids.
* :mod:`.accounting`, :mod:`.plan`, :mod:`.resources`, :mod:`.widths` — parameters, FLOPs,
  GPU-hours, ZeRO stage and worker counts per run.
* :mod:`.scheduler`, :mod:`.launch` — the Ray driver: leases, retries by cause, preemption,
  elastic resume; :mod:`.tune` — Optuna learning-rate search; :mod:`.slurm` — sbatch scripts.
* CLI: ``slscale grid`` (:mod:`.grid_commands`), ``slscale sweep`` and ``tune``
  (:mod:`.sweep_commands`).
"""
