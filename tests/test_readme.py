"""The README is a contract: its ```python block runs as written on every backend, with small
stand-in training arrays defined before it (the block's only free names)."""

import pathlib
import re

import numpy as np

REPO = pathlib.Path(__file__).resolve().parents[1]


def test_readme_python_block_runs_as_written():
    text = (REPO / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert len(blocks) == 1, "expected one ```python block in README.md"
    rng = np.random.default_rng(0)
    namespace = {
        "x_train": rng.normal(size=(64, 32, 32, 3)).astype("float32"),
        "y_train": rng.integers(0, 10, size=(64,)).astype("int32"),
    }
    exec(compile(blocks[0], "README.md", "exec"), namespace)
    history = namespace["model"].history.history
    assert len(history["loss"]) == 20 and np.isfinite(history["loss"]).all()
    # The callbacks ran: the controller logged the keep ratio, the monitor the density.
    assert "keep_ratio" in history and "nz" in history and "accuracy" in history
