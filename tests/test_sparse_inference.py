"""Dent & Tanner 2026 appendix F (issue 17): the sparse matrix-vector product and the
layer-by-layer sparse inference of a DeepMLP equal NumPy's dense products on this backend
(correctness only: timings live in ``kerasparse bench --sparse-matvec``, docs/benchmarks.md)."""

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from conftest import BACKEND
from kerasparse import sparse_inference as si
from kerasparse.cli import app


@pytest.mark.parametrize("m, n, s", [(7, 13, 0.0), (30, 50, 0.5), (100, 40, 0.9), (5, 9, 1.0)])
def test_sparse_matvec_equals_numpy(m, n, s):
    kernel, x = si.random_problem(m, n, s, seed=n)
    assert np.count_nonzero(x == 0) == round(s * n)
    ops = si.backend_ops(BACKEND)
    want = x.astype(np.float64) @ kernel.astype(np.float64)  # y = W x with W = kernel^T
    for fn in (ops.sparse, ops.dense):
        got = ops.numpy(ops.sync(fn(ops.put(kernel), ops.put(x))))
        assert got.shape == (m,)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4)


def test_sparse_layer_uses_the_union_of_a_batchs_non_zero_columns():
    rng = np.random.default_rng(0)
    h = rng.standard_normal((4, 40)).astype(np.float32)
    h[:, rng.permutation(40)[:30]] = 0.0  # 30 columns zero in every example
    h[rng.random(h.shape) < 0.5] = 0.0  # and other zeros that differ by example
    kernel = rng.standard_normal((40, 11)).astype(np.float32)
    bias = rng.standard_normal(11).astype(np.float32)
    ops = si.backend_ops(BACKEND)
    act = si._Activation(None)
    got = ops.numpy(ops.sync(ops.sparse_layer(ops.put(kernel), ops.put(bias), ops.put(h), act)))
    np.testing.assert_allclose(got, h @ kernel + bias, rtol=1e-5, atol=1e-4)


@pytest.fixture(scope="module")
def mlp():
    from kerasparse.models import get_model

    model = get_model("mlp100x300", depth=3, width=48, sparsity=0.85)
    x = np.random.default_rng(1).standard_normal((6, 28, 28, 1)).astype("float32")
    return model, x * np.sqrt(model.q_star)


def test_sparse_inference_of_a_deep_mlp_equals_its_predictions(mlp):
    model, x = mlp
    want = np.asarray(model.predict_on_batch(x))
    layers = si.mlp_layers(model)
    assert len(layers) == 4 and layers[-1][2] is None  # 3 hidden + the logits layer
    for sparse in (False, True):
        np.testing.assert_allclose(si.mlp_forward(BACKEND, layers, x, sparse), want,
                                   rtol=1e-4, atol=1e-4)


def test_bench_mlp_reports_the_sparsity_it_exploits(mlp):
    model, x = mlp
    (row,) = si.bench_mlp(BACKEND, model, x, batch_sizes=(6,), repeats=1, warmup=1)
    # NumPy reference: zeros of the hidden activations act1..act2 (the inputs of the layers
    # that are gathered), and the kernel rows zero in every example.
    layers = si.mlp_layers(model)
    h = x.reshape(6, -1)
    zeros, skipped = [], []
    for i, (kernel, bias, act) in enumerate(layers[:-1]):
        h = np.asarray(act(h @ kernel + bias))
        zeros.append(np.mean(h == 0))
        skipped.append(np.mean(np.all(h == 0, axis=0)))
    assert row["activation_sparsity"] == pytest.approx(np.mean(zeros))
    assert row["rows_skipped"] == pytest.approx(np.mean(skipped))
    assert 0.6 < row["activation_sparsity"] < 1.0  # EoC CReLU at s = 0.85
    assert row["speedup"] == pytest.approx(row["dense_ms"] / row["sparse_ms"])


def test_bench_sparse_matvec_cli_prints_table3_layout():
    runner = CliRunner()
    args = ["bench", "--sparse-matvec", "--matvec-n", "20,300", "--matvec-m-over-n", "1",
            "--matvec-sparsity", "0.8", "--run", "none", "--steps", "1", "--warmup", "1",
            "--clock", "cpu"]
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output.strip().splitlines()[-1])
    assert report["backend"] == BACKEND and report["network"] is None
    assert report["clock"] == "cpu" and "load_average" in report
    rows = report["matvec"]
    assert [(r["m"], r["n"], r["sparsity"]) for r in rows] == [(20, 20, 0.8), (300, 300, 0.8)]
    assert [r["paper_speedup"] for r in rows] == [None, 1.782]  # Table 3, m/n = 1, n = 300
    for r in rows:
        assert r["speedup"] == pytest.approx(r["dense_us"] / r["sparse_us"])
    lines = si.format_table3(rows)
    assert lines[0].split() == ["m/n", "n", "s=0.8"]
    assert lines[2].split()[:2] == ["1", "300"] and lines[2].split()[3] == "(1.782)"


def test_table3_is_the_papers():
    """Spot checks against the printed Table 3 (Dent & Tanner 2026, appendix F)."""
    assert si.PAPER_TABLE3[(0.5, 100)] == (1.250, 1.183, 1.216)
    assert si.PAPER_TABLE3[(1.0, 3000)][2] == 2.936
    assert len(si.PAPER_TABLE3) == len(si.GRID_M_OVER_N) * len(si.GRID_N)
