"""The tutorial notebook (docs/tutorial.ipynb) runs from top to bottom in a fresh kernel.

Its cells assert the claims they show: the two-layer networks' RMS distance to the mean-field limit
falls with a fitted width exponent near -1/2 (the mean-field CLT), and a 4x wider deep muP network is
closer to its DMFT limit by a factor near 2 = sqrt(4). A failed assertion, an exception or an error
output in any cell fails this test. The notebook is stored without outputs; it runs at sizes that
take ~10 s of CPU (numpy backend: no numba compilation on a fresh install).
"""
import os
import sys
import time
from pathlib import Path

import nbclient
import nbformat
from jupyter_client.kernelspec import KernelSpecManager

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "docs" / "tutorial.ipynb"


def test_notebook_is_stored_without_outputs():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code, "the tutorial has no code cells"
    dirty = [i for i, c in enumerate(code) if c.outputs or c.execution_count is not None]
    assert not dirty, f"code cells {dirty} of docs/tutorial.ipynb hold outputs: clear them before committing"


def test_tutorial_notebook_executes():
    spec = KernelSpecManager().get_kernel_spec("python3")
    # jupyter_client replaces a bare "python" with this interpreter; any other argv would run the
    # notebook in another environment (another meanfield, or none)
    assert spec.argv[0] in ("python", "python3", sys.executable), (
        f"the 'python3' kernel runs {spec.argv[0]}, not this interpreter ({sys.executable}): "
        "pip install ipykernel in this environment, or remove the other 'python3' kernelspec")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    # the kernel imports this checkout's meanfield even where another copy is installed
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT)] + [p for p in [os.environ.get("PYTHONPATH")] if p]))
    client = nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                                     resources={"metadata": {"path": str(NOTEBOOK.parent)}})
    start = time.perf_counter()
    client.execute(env=env)  # raises CellExecutionError on an exception or a failed assert
    wall = time.perf_counter() - start
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors, errors
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "fitted slope" in text and "ratio for a 4x wider network" in text, text
    figures = sum("image/png" in o.get("data", {}) for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert figures == 3, f"expected the notebook's 3 figures, got {figures}"
    print(f"tutorial notebook: {wall:.1f} s wall")
