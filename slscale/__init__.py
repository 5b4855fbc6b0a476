"""slscale: scaling-law studies of speech language models.

The namespace root holds what every stage shares: run specs and states, the results store,
config loading, compute facts (:mod:`slscale.compute`) and the CLI. Stages live in
``slscale.sweep`` (many runs), ``slscale.models`` (one run), ``slscale.fitting`` (maths on
tables) and ``slscale.analysis`` (figures, tables); ``slscale.workflows`` (the demo,
plan-next) chains them. Core imports no stage (``docs/architecture.md``).
"""

__version__ = "0.1.0"
