"""slscale.workflows: flows that chain the stages — the floor above them, beside the CLI.

The stages import only downwards (see ``docs/architecture.md``); a flow that needs several of
them at once lives here:

* :mod:`.demo` — ``slscale demo``: world → TextLMs → sweep → eval → figures → report, with
  :mod:`.demo_report` (the findings as Markdown and HTML) and :mod:`.demo_checks` (the claims
  the miniature must bear out);
* :mod:`.plan_next_commands` — ``slscale plan-next`` and ``slscale recommend``: fit an arm's
  runs (:mod:`.plan_next_data`) and turn the chosen cells into its next grid
  (:mod:`.plan_next`); the design maths is :mod:`slscale.fitting.design`.

Together with :mod:`slscale.cli` these are the only modules that import across stages.
"""
