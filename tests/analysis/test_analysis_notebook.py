"""notebooks/scaling_analysis.ipynb runs top to bottom against the synthetic study.

The kernel is this interpreter (``sys.executable -m ipykernel_launcher``) from a kernelspec
written for the test, so it works in a fresh clone where no kernelspec was ever installed and
never picks up another environment's ``python3`` kernel.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import nbformat
from analysis_helpers import WHERE
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import AsyncKernelManager
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "scaling_analysis.ipynb"
KERNEL = "slscale-test"


def this_interpreter_kernel(folder: Path) -> AsyncKernelManager:
    """A kernel manager whose only kernelspec runs ipykernel in ``sys.executable``."""
    spec = folder / KERNEL
    spec.mkdir(parents=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    kernel = {"argv": argv, "display_name": KERNEL, "language": "python"}
    (spec / "kernel.json").write_text(json.dumps(kernel))
    specs = KernelSpecManager(kernel_dirs=[str(folder)], ensure_native_kernel=False)
    return AsyncKernelManager(kernel_name=KERNEL, kernel_spec_manager=specs)


def test_notebook_executes_against_a_store(workdir, tmp_path):
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    figures = tmp_path / "figures"
    env = {
        **os.environ,
        "SLSCALE_WORKDIR": str(workdir),
        "SLSCALE_FIGDIR": str(figures),
        "SLSCALE_WHERE": ";".join(WHERE[1::2]),
        "SLSCALE_BOOTSTRAP": "50",
        "SLSCALE_FORMATS": "png",
        "OMP_NUM_THREADS": "1",
    }
    client = NotebookClient(
        notebook,
        km=this_interpreter_kernel(tmp_path / "kernels"),
        timeout=180,
        resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute(env=env)
    text = _stream_text(notebook)
    assert "arms: interleaved, textless — 40 runs in the scaling fits" in text
    assert "more_into_model_size" in text  # the arm comparison ran
    images = [
        o for c in notebook.cells for o in c.get("outputs", []) if "image/png" in o.get("data", {})
    ]
    assert len(images) == 3  # metric laws, IsoFLOP profiles, compute-optimal frontier
    for name in ("metric_vs_compute", "isoflop", "textlm_families"):
        assert (figures / f"{name}.png").is_file() and not (figures / f"{name}.pdf").exists()
    assert (figures / "fits" / "index.json").is_file()
    assert "| SIMS-7B | 7.6B | 15B | 6.86e20 | 59.8 | 66.7 | 88.3 |" in _markdown(notebook)


def _stream_text(notebook: nbformat.NotebookNode) -> str:
    return "".join(
        o.get("text", "") for c in notebook.cells for o in c.get("outputs", [])
        if o.get("output_type") == "stream"
    )  # fmt: skip


def _markdown(notebook: nbformat.NotebookNode) -> str:
    return "".join(
        o["data"].get("text/markdown", "") for c in notebook.cells for o in c.get("outputs", [])
        if "data" in o
    )  # fmt: skip


def test_committed_notebook_is_clean_and_only_calls_the_package():
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(notebook)
    code = [c for c in notebook.cells if c.cell_type == "code"]
    assert all(not c.outputs and c.execution_count is None for c in code)
    source = "\n".join(c.source for c in code)
    assert "def " not in source and "class " not in source  # no logic of its own
    assert "from slscale.analysis import" in source
