"""The fast top-k paths of kerasparse.ops (issues 6 and 12) against an independent NumPy
reference: the per-backend selection (torch: a static-size torch.topk with k in a padding;
tf.math.top_k; the keras.ops radix select), the radix select itself on every backend (it is
jax's path and XLA-compiled TensorFlow's), the exits (r == 1, fewer than k non-zeros: skipped
by a run-time cond on jax/tensorflow, plain arithmetic on torch), ties, signs and zeros,
bfloat16 inputs, and no retracing when the keep ratio changes inside a compiled function."""

import math

import keras
import numpy as np
import pytest
from keras import ops

import reference as ref
from autodiff import grad_of_weighted_sum
from conftest import BACKEND, to_numpy
from kerasparse import ops as ksops

RATIOS = [1.0, 0.5, 0.1, 1e-6]


_PATHS = {
    "torch": ["host_exits", "host_exits_topk", "sync_free"],
    "tensorflow": ["numpy_select", "top_k"],
    "jax": ["numpy_select_any_size"],
}


@pytest.fixture(autouse=True, params=_PATHS.get(BACKEND, ["-"]))
def torch_path(request, monkeypatch):
    """torch has two paths for global_topk: eager CPU tensors decide the exits on the host
    (``ksops.TORCH_CPU_HOST_EXITS``), accelerators and torch.compile never read the host.
    On a CPU torch's host path and TensorFlow graphs select with NumPy
    (``ksops.NUMPY_CPU_SELECT``), a GPU with the backend's own top-k; jax on a CPU with
    NumPy through a host callback for large calls. Every test here runs on each path (the
    GPU ones here on CPU tensors)."""
    if request.param == "sync_free":
        monkeypatch.setattr(ksops, "TORCH_CPU_HOST_EXITS", False)
    if request.param in ("host_exits_topk", "top_k"):
        monkeypatch.setattr(ksops, "NUMPY_CPU_SELECT", False)
    if request.param == "numpy_select_any_size":
        # jax on a CPU selects with NumPy only from 65,536 values per call (the radix
        # select below that): here at every size, so that path meets every case below
        # (the radix select has its own test, and the other test files run it).
        monkeypatch.setattr(ksops, "_JAX_NUMPY_SELECT_MIN_SIZE", 0)
    return request.param


def np_kth_largest(rows, k):
    """Reference: the k-th largest of each row by a full NumPy sort."""
    return np.sort(np.asarray(rows, np.float64), axis=-1)[:, rows.shape[-1] - k][:, None]


def _rows_cases(rng):
    d = 97
    tie_free = ref.tie_free(rng, (4, d))
    mixed = tie_free.copy()
    mixed[0] = 0.0  # an all-zero row
    mixed[1] = -np.abs(mixed[1])  # an all-negative row
    mixed[2, ::2] = 0.0  # half zeros (as after ReLU)
    ties = rng.integers(-2, 3, size=(4, d)).astype(np.float32)  # many ties
    extremes = tie_free.copy()
    extremes[0, :5] = [np.inf, -np.inf, -0.0, 0.0, np.finfo(np.float32).max]
    extremes[1, :3] = [np.finfo(np.float32).tiny, -np.finfo(np.float32).tiny, 1e-45]
    return {"tie_free": tie_free, "mixed": mixed, "ties": ties, "extremes": extremes}


@pytest.mark.parametrize("case", ["tie_free", "mixed", "ties", "extremes"])
@pytest.mark.parametrize("k", [1, 49, 96, 97])
def test_kth_largest_matches_numpy(rng, case, k):
    rows = _rows_cases(rng)[case]
    got = to_numpy(ksops.kth_largest(ops.convert_to_tensor(rows), ops.convert_to_tensor(k, "int32")))
    np.testing.assert_array_equal(got, np_kth_largest(rows, k).astype(np.float32))


@pytest.mark.parametrize("case", ["tie_free", "mixed", "ties", "extremes"])
def test_radix_select_matches_numpy_on_every_backend(rng, case):
    # The keras.ops radix select is jax's path and XLA-compiled TensorFlow's; run it directly
    # here on whichever backend is active, for every k of the row.
    rows = _rows_cases(rng)[case][:, :40]
    x = ops.convert_to_tensor(rows)
    radix = _compiled(ksops._kth_largest_radix)  # compiled once: k is a run-time argument
    for k in range(1, 41):
        got = to_numpy(radix(x, ops.convert_to_tensor(k, "int32")))
        np.testing.assert_array_equal(got, np_kth_largest(rows, k).astype(np.float32), err_msg=f"k={k}")


@pytest.mark.parametrize("mode, axis", [("global", -1), ("channel", -1), ("channel", 1), ("spatial", 1)])
@pytest.mark.parametrize("r", RATIOS)
def test_global_topk_matches_reference_on_relu_like_data(rng, mode, axis, r):
    # ReLU-like input: about half exact zeros, the rest distinct positives.
    x = ref.tie_free(rng, (3, 6, 5, 8))
    x = np.maximum(x, 0.0)
    y = to_numpy(ksops.global_topk(ops.convert_to_tensor(x), r, mode, axis))
    np.testing.assert_array_equal(y, ref.topk(x, r, mode, axis))


def test_fewer_nonzeros_than_k_returns_the_input_with_full_gradient(rng):
    # Every row has 10 positives out of 60 and k = 30: the k-th largest is 0, every entry is
    # kept (the fast exit), and the gradient is 1 everywhere as the select would give.
    x = np.zeros((3, 60), np.float32)
    for i in range(3):
        x[i, rng.choice(60, 10, replace=False)] = rng.uniform(1, 2, 10)
    w = rng.normal(size=x.shape).astype(np.float32)
    y, grad = grad_of_weighted_sum(lambda t: ksops.global_topk(t, 0.5), x, w)
    np.testing.assert_array_equal(y, x)
    np.testing.assert_array_equal(grad, w)


def test_exactly_k_nonzeros_masks_the_gradient_of_zeros(rng):
    # 30 positives, k = 30: the threshold is the smallest positive, so the zeros are not
    # kept and get no gradient (the fast exit must not fire here).
    x = np.zeros((2, 60), np.float32)
    for i in range(2):
        x[i, rng.choice(60, 30, replace=False)] = rng.uniform(1, 2, 30)
    w = rng.normal(size=x.shape).astype(np.float32)
    y, grad = grad_of_weighted_sum(lambda t: ksops.global_topk(t, 0.5), x, w)
    np.testing.assert_array_equal(y, x)
    np.testing.assert_array_equal(grad, np.where(x > 0, w, 0))


def test_bfloat16_input_keeps_the_same_entries(rng):
    # Mixed precision feeds bfloat16 activations: the selection must be exact there too.
    x = ref.tie_free(rng, (2, 64)).astype(np.float32)
    xb = ops.cast(ops.convert_to_tensor(x), "bfloat16")
    x_rounded = to_numpy(ops.cast(xb, "float32"))
    assert len(np.unique(x_rounded)) == x.size  # still tie-free after rounding
    y = ksops.global_topk(xb, 0.25)
    assert keras.backend.standardize_dtype(y.dtype) == "bfloat16"
    np.testing.assert_array_equal(to_numpy(ops.cast(y, "float32")), ref.topk(x_rounded, 0.25))


def test_keep_count_for_large_groups():
    assert int(ksops.keep_count(0.5, 65536)) == 32768
    assert int(ksops.keep_count(0.1, 1000)) == 100  # float32(0.1) * 1000 is 100.0000015
    assert int(ksops.keep_count(1e-6, 65536)) == 1
    assert int(ksops.keep_count(1.0, 65536)) == 65536
    assert int(ksops.keep_count(0.3, 65536)) == math.ceil(0.3 * 65536)


def _compiled(fn):
    """``fn`` compiled by the backend (jax.jit / tf.function); torch runs eagerly in Keras."""
    if BACKEND == "jax":
        import jax

        return jax.jit(fn)
    if BACKEND == "tensorflow":
        import tensorflow as tf

        return tf.function(fn)
    return fn


@pytest.mark.parametrize("mode", ["global", "channel"])
def test_new_keep_ratio_does_not_retrace(rng, mode):
    # The keep ratio is an argument (a traced scalar, as a variable is inside a compiled
    # step): one trace serves every r, including r == 1 and the fewer-than-k exit.
    x = np.maximum(ref.tie_free(rng, (2, 4, 4, 6)), 0)
    traces = []

    def fn(t, r):
        traces.append(1)
        return ksops.global_topk(t, r, mode)

    compiled = _compiled(fn)
    for r in (0.5, 0.1, 1.0, 0.9, 1e-6):
        y = to_numpy(compiled(ops.convert_to_tensor(x), ops.convert_to_tensor(r, "float32")))
        np.testing.assert_array_equal(y, ref.topk(x, np.float32(r), mode), err_msg=f"r={r}")
    # torch: Keras runs it eagerly (jit_compile=False), fn runs each call and nothing traces.
    assert len(traces) == (5 if BACKEND == "torch" else 1)


def test_jax_host_select_primitive_eager_jit_vmap_jvp(rng):
    # jax on a CPU hands NumPy the rows through kerasparse's own callback primitive (no
    # copy into a jax array first); eager, under jit, under vmap (one call per element)
    # and under forward-mode (zero tangent) it gives the exact k-th largest of each row.
    if BACKEND != "jax":
        pytest.skip("jax only: the other backends call NumPy without jax's callbacks")
    import jax
    import jax.numpy as jnp

    primitive = ksops._host_select_primitive()
    assert primitive is not None, "this jax lacks the hooks: pure_callback would be used"
    rows = rng.standard_normal((3, 4, 2**15)).astype("float32")
    want = -np.sort(-rows, axis=-1)[..., 99:100]

    def kth(r):
        return ksops._kth_largest_numpy_jax(r, jnp.int32(100))

    np.testing.assert_array_equal(np.asarray(kth(jnp.asarray(rows[0]))), want[0])
    np.testing.assert_array_equal(np.asarray(jax.jit(kth)(rows[1])), want[1])
    np.testing.assert_array_equal(np.asarray(jax.jit(jax.vmap(kth))(rows)), want)
    value, tangent = jax.jvp(kth, (jnp.asarray(rows[2]),), (jnp.ones_like(rows[2]),))
    np.testing.assert_array_equal(np.asarray(value), want[2])
    assert not np.asarray(tangent).any()


def test_tensorflow_xla_path_with_a_variable_keep_ratio(rng):
    if BACKEND != "tensorflow":
        pytest.skip(
            "tensorflow only: XLA-compiled TensorFlow (Keras' default on GPU) cannot use "
            "tf.math.top_k with a run-time k and switches to the radix select, which the "
            "radix test above checks on this backend too"
        )
    import tensorflow as tf

    x = ref.tie_free(rng, (3, 4, 4, 5))
    r = tf.Variable(0.5)
    traces = []

    @tf.function(jit_compile=True)
    def fn(t):
        traces.append(1)
        return ksops.global_topk(t, r)

    for value in (0.5, 0.33, 1.0, 1e-6):  # r * D = 40, 26.4, 80, 8e-5: k = 40, 27, 80, 1
        r.assign(value)
        np.testing.assert_array_equal(fn(tf.constant(x)).numpy(), ref.topk(x, np.float32(value)))
    assert len(traces) == 1


# --- ReLU-like rows with p close to k (TensorFlow's "smallest positives" selection) -----------


def _relu_rows_near_k(rng, n, k, positives, ties):
    """ReLU-like rows (zeros, some -0.0, positives) with the given positives per row: rows
    with p < k, p == k and p slightly above k, so max(p) - k + 1 is small (the positives
    path). ``ties``: the positives take few distinct values."""
    rows = np.zeros((len(positives), n), np.float32)
    for i, p in enumerate(positives):
        where = rng.choice(n, p, replace=False)
        if ties:
            rows[i, where] = rng.integers(1, 6, size=p) / 4.0
        else:
            rows[i, where] = rng.permutation(p).astype(np.float32) / p + 0.5
    rows[:, ::7] = np.where(rows[:, ::7] == 0, np.float32(-0.0), rows[:, ::7])
    return rows


def _np_topk_with_ties(rows, k):
    """Reference under the documented tie policy: keep every entry >= the k-th largest."""
    return np.where(rows >= np_kth_largest(rows, k), rows, 0).astype(rows.dtype)


@pytest.mark.parametrize("ties", [False, True], ids=["tie_free", "ties"])
def test_kth_largest_among_positives_matches_numpy(rng, ties):
    n, k = 2000, 1000
    rows = _relu_rows_near_k(rng, n, k, [900, 999, 1000, 1001, 1040], ties)
    got = to_numpy(ksops.kth_largest(ops.convert_to_tensor(rows), ops.convert_to_tensor(k, "int32")))
    np.testing.assert_array_equal(got, np_kth_largest(rows, k).astype(np.float32))
    # The same rows inside global_topk (which counts the positives once for the exit and
    # the selection), values and gradient, on every backend's path.
    w = rng.normal(size=rows.shape).astype(np.float32)
    y, grad = grad_of_weighted_sum(lambda t: ksops.global_topk(t, 0.5), rows, w)
    expected = _np_topk_with_ties(rows, k)
    np.testing.assert_array_equal(y, expected)
    kept = rows >= np_kth_largest(rows, k)
    np.testing.assert_array_equal(grad, np.where(kept, w, 0))
    if ties:
        assert ((expected != 0).sum(axis=1)[2:] > k).any()  # ties kept beyond k
    np.testing.assert_array_equal((expected != 0).sum(axis=1)[:2], [900, 999])  # p < k: all


def test_positives_path_on_bfloat16_keeps_ties(rng):
    # bfloat16 has 8 significant bits: the positives are heavily tied after rounding.
    rows = _relu_rows_near_k(rng, 2000, 1000, [950, 1000, 1030], ties=False)
    xb = ops.cast(ops.convert_to_tensor(rows), "bfloat16")
    rounded = to_numpy(ops.cast(xb, "float32"))
    y = to_numpy(ops.cast(ksops.global_topk(xb, 0.5), "float32"))
    np.testing.assert_array_equal(y, _np_topk_with_ties(rounded, 1000))


@pytest.mark.parametrize("n", [1, 2, 39, 40])
def test_kth_largest_for_every_k_of_odd_and_even_rows(rng, n):
    # Every k of short rows of both parities (torch: the padded static-size topk, whose
    # rank and side switch at k = ceil(n/2); tensorflow: top_k; jax: the radix select),
    # with ties, zeros of both signs and infinities.
    rows = rng.integers(-3, 4, size=(3, n)).astype(np.float32)
    rows[0] = ref.tie_free(rng, (n,))
    rows[1, : min(n, 3)] = [np.inf, -0.0, -np.inf][: min(n, 3)]
    x = ops.convert_to_tensor(rows)
    for k in range(1, n + 1):
        got = to_numpy(ksops.kth_largest(x, ops.convert_to_tensor(k, "int32")))
        np.testing.assert_array_equal(got, np_kth_largest(rows, k).astype(np.float32),
                                      err_msg=f"k={k}")


@pytest.mark.parametrize("path", ["median", "topk"])
def test_both_torch_selections_match_numpy(rng, path):
    """torch has two layouts of its host-free selection, chosen by shape and device (per-row
    medians for long rows on a CPU, one batched topk otherwise): both, on every kind of row
    and every k of short rows, and inside global_topk on long ReLU rows (values, gradients,
    the fewer-positives-than-k case)."""
    if BACKEND != "torch":
        pytest.skip("torch only: the two layouts of its selection")
    import torch

    select = {"median": ksops._kth_largest_median_torch, "topk": ksops._kth_largest_topk_torch}[path]
    for rows in _rows_cases(rng).values():
        for k in (1, 2, 48, 49, 50, 96, 97):
            got = select(torch.from_numpy(rows), torch.tensor(k)).numpy()
            np.testing.assert_array_equal(got, np_kth_largest(rows, k), err_msg=f"k={k}")
    for n in (1, 2, 7, 8):
        rows = rng.integers(-2, 3, size=(3, n)).astype(np.float32)
        for k in range(1, n + 1):
            got = select(torch.from_numpy(rows), torch.tensor(k)).numpy()
            np.testing.assert_array_equal(got, np_kth_largest(rows, k), err_msg=f"n={n} k={k}")
    # Long ReLU rows go to the median layout on a CPU; force the other one for "topk".
    rows = np.maximum(ref.tie_free(rng, (3, 4096)), 0)
    rows[2, rows[2] > 0.9] = 0  # few positives: the threshold is 0, every entry kept
    w = rng.normal(size=rows.shape).astype(np.float32)
    original = ksops._kth_largest_torch
    if path == "topk":
        ksops._kth_largest_torch = lambda r, k: ksops._kth_largest_topk_torch(
            r, torch.as_tensor(k).long())
    try:
        for r in (0.5, 0.2, 0.05, 1.0):
            k = ref.keep_count(r, 4096)
            y, grad = grad_of_weighted_sum(lambda t: ksops.global_topk(t, r), rows, w)
            kept = rows >= np_kth_largest(rows, k)
            np.testing.assert_array_equal(y, np.where(kept, rows, 0))
            np.testing.assert_array_equal(grad, np.where(kept, w, 0))
    finally:
        ksops._kth_largest_torch = original


def test_a_row_of_minus_infinities_keeps_them(rng):
    # A row whose k-th largest is -inf keeps all its entries (every one is >= -inf), -inf
    # included: not 0, not NaN.
    x = np.full((2, 40), -np.inf, np.float32)
    x[0, :5] = ref.tie_free(rng, (5,))
    x[1, :25] = ref.tie_free(rng, (25,))
    y = to_numpy(ksops.global_topk(ops.convert_to_tensor(x), 0.5))
    np.testing.assert_array_equal(y, np.where(x >= np_kth_largest(x, 20), x, 0))


def test_infinities_and_negatives_in_global_topk(rng):
    # -inf must be dropped as 0, not turned into NaN (torch masks by multiplying otherwise).
    x = ref.tie_free(rng, (3, 40))
    x[0, :3] = [-np.inf, np.inf, -np.inf]
    x[1, :2] = [-np.inf, -np.inf]
    w = rng.normal(size=x.shape).astype(np.float32)
    for r in (0.5, 0.1):
        k = ref.keep_count(r, 40)
        y, grad = grad_of_weighted_sum(lambda t: ksops.global_topk(t, r), x, w)
        np.testing.assert_array_equal(y, _np_topk_with_ties(x, k))
        np.testing.assert_array_equal(grad, np.where(x >= np_kth_largest(x, k), w, 0))


@pytest.mark.parametrize("r", [0.05, 0.3, 0.5, 0.9])
def test_torch_channels_last_input_is_exact_and_keeps_its_layout(rng, r):
    """Global mode reads a channels_last-strided torch tensor (as oneDNN convolutions return
    it) in memory order: same values and gradients as the NumPy reference on the logical
    NCHW array, and the output keeps the channels_last layout (no reorder before the next
    convolution)."""
    if BACKEND != "torch":
        pytest.skip("torch only: memory layouts are a torch tensor property")
    import torch

    x = rng.standard_normal((3, 8, 6, 5)).astype("float32")
    w = rng.standard_normal(x.shape).astype("float32")
    xt = torch.from_numpy(x).contiguous(memory_format=torch.channels_last).requires_grad_(True)
    assert ksops._memory_order_rows_torch(xt) is not None  # the layout path is the one tested
    y = ksops.global_topk(xt, r)
    assert y.is_contiguous(memory_format=torch.channels_last) and not y.is_contiguous()
    np.testing.assert_array_equal(y.detach().numpy(), ref.topk(x, r))
    (grad,) = torch.autograd.grad((y * torch.from_numpy(w)).sum(), xt)
    np.testing.assert_array_equal(grad.numpy(), w * ref.topk_mask(x, r))


def test_kth_largest_numpy_matches_a_full_sort(rng):
    # The CPU selection of eager torch and TensorFlow graphs (np.partition), against a full
    # sort: every kind of row, k at both ends, k clipped to [1, D], empty rows.
    for rows in _rows_cases(rng).values():
        for k in (1, 2, 48, 96, 97):
            np.testing.assert_array_equal(ksops.kth_largest_numpy(rows, k),
                                          np_kth_largest(rows, k).astype(np.float32))
        np.testing.assert_array_equal(ksops.kth_largest_numpy(rows, 500), rows.min(-1, keepdims=True))
        np.testing.assert_array_equal(ksops.kth_largest_numpy(rows, 0), rows.max(-1, keepdims=True))
    assert ksops.kth_largest_numpy(np.zeros((3, 0), np.float32), 1).shape == (3, 1)


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
def test_kth_largest_numpy_on_rows_without_negatives(rng, dtype):
    # Rows with no negative entry (ReLU / CReLU outputs) are selected with their zeros made
    # distinct first (kerasparse.ops._distinct_zeros): half zeros, -0.0 among them, an
    # all-zero row, +inf, ties at a clip value; k on both sides of the positives' count.
    # Against a full sort, with the caller's flag and with the check left to the function.
    d = 101
    rows = np.maximum(ref.tie_free(rng, (5, d)), 0.0).astype(dtype)
    rows[1, ::3] = -0.0
    rows[2] = 0.0
    rows[3, :4] = [np.inf, np.inf, 0.0, -0.0]
    rows[4] = np.minimum(rows[4], np.quantile(rows[4][rows[4] > 0], 0.5))  # ties at a clip
    positives = int((rows > 0).sum(-1).max())
    for k in (1, 2, 17, positives - 1, positives, positives + 1, d - 1, d):
        want = np_kth_largest(rows, k).astype(dtype)
        for flag in (None, True):
            got = ksops.kth_largest_numpy(rows, k, flag)
            assert got.dtype == rows.dtype and got.shape == (5, 1)
            np.testing.assert_array_equal(got, want, err_msg=f"k={k} nonnegative={flag}")


@pytest.mark.parametrize("threads", [2, 3, 7])
def test_kth_largest_numpy_split_between_threads_matches_a_full_sort(rng, monkeypatch, threads):
    # Large calls are split by rows between threads (kerasparse.ops._row_chunks); the
    # minimum block size is lowered so that these small rows are split too: 7 rows between
    # 2, 3 and 7 threads (uneven blocks), signed and non-negative rows, every k kind.
    monkeypatch.setattr(ksops, "_THREAD_MIN_VALUES", 1)
    d = 64
    signed = ref.tie_free(rng, (7, d)).astype(np.float32)
    relu = np.maximum(signed, 0.0)
    relu[3] = 0.0
    assert len(ksops._row_chunks(signed, threads)) == threads
    for rows in (signed, relu):
        for k in (1, 5, 32, 40, d):
            want = np_kth_largest(rows, k).astype(np.float32)
            got = ksops.kth_largest_numpy(rows, k, threads=threads)
            assert got.shape == (7, 1) and got.dtype == np.float32
            np.testing.assert_array_equal(got, want, err_msg=f"k={k}")


def test_kth_largest_numpy_threads_follow_omp_num_threads(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert ksops.select_threads() == 1
    least = ksops._THREAD_MIN_VALUES
    rows = np.zeros((8, least), np.float32)
    assert len(ksops._row_chunks(rows)) == 1
    monkeypatch.setenv("OMP_NUM_THREADS", "4")
    assert [len(c) for c in ksops._row_chunks(rows)] == [2, 2, 2, 2]
    monkeypatch.delenv("OMP_NUM_THREADS")
    assert 1 <= ksops.select_threads() <= 8
    # Never a block under _THREAD_MIN_VALUES values.
    assert len(ksops._row_chunks(np.zeros((2, least), np.float32), 8)) == 2
    assert len(ksops._row_chunks(np.zeros((8, least // 8), np.float32), 8)) == 1
    assert len(ksops._row_chunks(np.zeros((8, least // 4), np.float32), 8)) == 2


def _hard_rows(rng, d, dtype):
    """Rows that test a selection: signed, ReLU-like (zeros, -0.0, denormals), ties at a
    clip value, +-inf, NaNs, all zeros, one constant value."""
    signed = ref.tie_free(rng, (10, d))
    rows = np.concatenate([signed[:3], np.maximum(signed[3:], 0.0)]).astype(dtype)
    rows[1, ::7] = np.inf
    rows[1, 3::11] = -np.inf
    rows[2, ::5] = np.nan
    rows[4, ::3] = -0.0
    rows[4, 1::97] = np.finfo(dtype).smallest_subnormal
    rows[5] = 0.0
    rows[6] = np.minimum(rows[6], np.quantile(rows[6][rows[6] > 0], 0.3))  # ties at a clip
    rows[7] = 1.5
    rows[8, : d // 2] = 0.0
    return rows


def _np_kth_smallest(rows, j):
    return np.sort(rows, axis=-1)[:, j : j + 1]  # NaNs last, as np.partition orders them


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
def test_sampled_selection_matches_a_full_sort(rng, dtype):
    # Long rows are selected through a sample (kerasparse.ops._kth_smallest_sampled): a
    # bracket from a sorted sample, counts, introselect on the entries between. Every kind
    # of row, k from 1 to D, against a full sort; at the real sizes (D = 2**14, sample 1,024).
    d = ksops._SAMPLED_SELECT_MIN_LENGTH
    rows = _hard_rows(rng, d, dtype)
    for k in (1, 2, 50, d // 20, d // 5, d // 2, d - 3, d):
        j = d - k
        want = _np_kth_smallest(rows, j)
        nonneg = np.nan_to_num(rows, nan=-1.0).min(-1) >= 0
        for part, flag in ((rows[~nonneg], False), (rows[nonneg], True)):
            got = ksops._kth_smallest_sampled(part, j, flag, lambda r: _np_kth_smallest(r, j))
            np.testing.assert_array_equal(got, want[nonneg == flag], err_msg=f"k={k} {flag}")
        # Through the public function (its own non-negative check, its own fallback).
        got = ksops.kth_largest_numpy(rows[3:], k)
        np.testing.assert_array_equal(got, np.maximum(want[3:], 0), err_msg=f"k={k}")


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
@pytest.mark.parametrize("d", [97, ksops._SAMPLED_SELECT_MIN_LENGTH])
def test_kth_largest_numpy_of_relu_matches_a_sort_of_relu(rng, dtype, d):
    # relu=True (TensorFlow's fused site): the k-th largest of max(rows, 0), selected on the
    # signed rows as they are. Every kind of row (signed, NaN, +-inf, subnormals, ties),
    # plus all-negative rows and rows with few positives, short rows (introselect) and long
    # ones (the sampled bracket), k from 1 to D, one thread and three; against a full sort
    # of max(rows, 0) (NaN stays NaN and sorts last, as np.partition orders it).
    rows = _hard_rows(rng, d, dtype)
    few = -np.abs(ref.tie_free(rng, (2, d))).astype(dtype)
    few[0, :: max(d // 10, 1)] *= -1  # 10 % positive
    rows = np.concatenate([rows, few])
    relu = np.maximum(rows, 0)
    for k in (1, 2, 7, d // 20, d // 10, d // 10 + 1, d // 5, d // 2, d - 3, d):
        want = _np_kth_smallest(relu, d - k)
        for threads in (1, 3):
            got = ksops.kth_largest_numpy(rows, k, threads=threads, relu=True)
            assert got.dtype == rows.dtype and got.shape == want.shape
            np.testing.assert_array_equal(got, want, err_msg=f"k={k} threads={threads}")
    # What the TensorFlow site takes: NaN results become 0 (that row keeps its ReLU).
    got = ksops._kth_largest_relu_numpy(rows, 3)
    want = _np_kth_smallest(relu, d - 3)
    np.testing.assert_array_equal(got, np.where(np.isnan(want), 0, want))


@pytest.mark.parametrize("count", [5, 64, 65, 300])
def test_count_per_row_matches_count_nonzero(rng, count):
    # Both of its forms: a loop over at most 64 rows, bytes summed beyond.
    mask = rng.random((count, 333)) < 0.3
    mask[0] = False
    mask[-1] = True
    got = ksops._count_per_row(mask)
    np.testing.assert_array_equal(got, np.count_nonzero(mask, axis=-1))


def _site_rows(rng, shape):
    """Pre-activations for a whole site: signed, a sample with few positives, one with
    ties among its positives, one all negative."""
    x = ref.tie_free(rng, shape)
    x[1] = -np.abs(x[1])
    x[1].reshape(-1)[::9] *= -1.0  # about 11 % positive
    x[2] = np.round(x[2] * 4) / 4  # ties
    x[3] = -np.abs(x[3])
    return x


@pytest.mark.skipif(BACKEND != "tensorflow", reason="TensorFlow's fused site")
@pytest.mark.parametrize("r", [1.0, 0.5, 0.2, 0.05])
def test_tensorflow_fused_site_in_a_graph_matches_a_sort_of_relu(rng, monkeypatch, torch_path, r):
    # In a TensorFlow graph on a CPU the site runs fused (kerasparse.ops._relu_topk_tf: the
    # selection on the pre-activations, XLA-compiled count and mask): values and gradients
    # against a full NumPy sort of relu(x), and against the unfused global_topk(relu(x)).
    # The keep ratio is a variable (no retrace when it changes), and the spatial size is
    # unknown to the graph (two sizes run through it).
    import tensorflow as tf

    if torch_path == "top_k":
        pytest.skip("the fused site is the NumPy path's")
    calls = []
    fused = ksops._relu_topk_tf
    monkeypatch.setattr(ksops, "_relu_topk_tf", lambda *a: calls.append(1) or fused(*a))
    keep = tf.Variable(r, dtype=tf.float32)

    def site(fn):
        @tf.function(input_signature=[tf.TensorSpec([None, None, None, 6]),
                                      tf.TensorSpec([None, None, None, 6])])
        def run(x, w):
            with tf.GradientTape() as tape:
                tape.watch(x)
                y = fn(x)
                loss = tf.reduce_sum(w * y)
            return y, tape.gradient(loss, x)

        return run

    fused_site = site(lambda t: ksops.relu_topk(t, keep))
    unfused_site = site(lambda t: ksops.global_topk(tf.nn.relu(t), keep))
    for shape in ((4, 5, 7, 6), (4, 9, 3, 6)):
        x = _site_rows(rng, shape).astype(np.float32)
        w = rng.normal(size=shape).astype(np.float32)
        want, mask = _relu_topk_reference(x, r)
        y, grad = (t.numpy() for t in fused_site(x, w))
        np.testing.assert_array_equal(y, want)
        np.testing.assert_array_equal(grad, np.where(mask, w, 0))
        y0, grad0 = (t.numpy() for t in unfused_site(x, w))
        np.testing.assert_array_equal(y, y0)
        np.testing.assert_array_equal(grad, grad0)
    assert calls, "the graph did not take the fused site"
    assert fused_site.experimental_get_tracing_count() == 1


@pytest.mark.skipif(BACKEND != "tensorflow", reason="TensorFlow's fused site")
def test_tensorflow_fused_site_in_float16(rng, torch_path):
    # float16 pre-activations: the selection runs on their float32 values and the threshold
    # comes back exactly; the output stays float16 (on either TensorFlow path).
    x = _site_rows(rng, (4, 6, 6, 8)).astype(np.float16)
    w = rng.normal(size=x.shape).astype(np.float32)
    for r in (0.5, 0.2):
        want, mask = _relu_topk_reference(x, r)
        y, grad = grad_of_weighted_sum(lambda t: ksops.relu_topk(t, r), x, w)
        assert y.dtype == np.float16
        np.testing.assert_array_equal(y, want)
        np.testing.assert_array_equal(grad, np.where(mask, w, 0).astype(np.float16))


def test_sampled_selection_falls_back_where_the_sample_misleads(rng, monkeypatch):
    # The sampled positions hold the row's smallest values (for a small j) or its largest
    # (for a large j), so every bracket misses: each row must go to the whole-row
    # selection, and the result stay exact.
    monkeypatch.setattr(ksops, "_SAMPLE_SIZE", 64)
    d = 1024
    index = np.sort(np.random.default_rng(0).choice(d, 64, replace=False))
    ksops._SAMPLE_INDEX.pop((d, 64), None)
    calls = []
    for j, sign in ((100, -1), (512, 1), (900, 1)):
        rows = ref.tie_free(rng, (4, d)).astype(np.float32)
        rows[:, index] = sign * (1000.0 + np.arange(64, dtype=np.float32))
        calls.clear()

        def whole_rows(part):
            calls.append(len(part))
            return _np_kth_smallest(part, j)

        got = ksops._kth_smallest_sampled(rows, j, False, whole_rows)
        np.testing.assert_array_equal(got, _np_kth_smallest(rows, j))
        assert calls == [4], f"j={j}: every row should have missed its bracket"


def _relu_topk_reference(x, r):
    """Global mode: relu(x), then the entries >= its k-th largest (ties kept), by a full
    sort; the gradient mask is that selection and x > 0 (ReLU's derivative, 0 at 0)."""
    a = np.maximum(x, 0).reshape(x.shape[0], -1)
    k = ksops.keep_count(r, a.shape[1])
    kth = np_kth_largest(a, int(k)).astype(x.dtype)
    keep = (a >= kth) & (a > 0)
    return np.where(keep, a, 0).reshape(x.shape), keep.reshape(x.shape)


@pytest.mark.parametrize("r", RATIOS + [0.3])
def test_relu_topk_matches_a_sort_of_relu(rng, r):
    # The sparse site's op (ReLU then top-k; fused on torch's CPU path): values and
    # gradients against a full NumPy sort of relu(x). Signed input with exact zeros, ties
    # (also at the k-th largest), +-inf, a row with fewer positives than k, a row of
    # negatives.
    x = ref.tie_free(rng, (4, 5, 4, 6))
    x[0, :2] = 0.0
    x[1, 0, 0, :3] = [np.inf, -np.inf, -0.0]
    x[1, 1] = x[1, 2] = np.abs(x[1, 3])  # ties among the positives
    x[2] = -np.abs(x[2])
    x[2, 0, 0, 0] = 0.5
    x[3] = np.abs(x[3])
    w = rng.normal(size=x.shape).astype(np.float32)
    want, keep = _relu_topk_reference(x, r)
    y, grad = grad_of_weighted_sum(lambda t: ksops.relu_topk(t, r), x, w)
    np.testing.assert_array_equal(y, want)
    np.testing.assert_array_equal(grad, np.where(keep, w, 0))


@pytest.mark.parametrize("mode, axis", [("global", -1), ("channel", -1), ("channel", 1), ("spatial", 1)])
@pytest.mark.parametrize("r", [1.0, 0.5, 0.1])
def test_relu_topk_equals_global_topk_of_relu_in_every_mode(rng, mode, axis, r):
    x = ref.tie_free(rng, (3, 6, 5, 8))
    w = rng.normal(size=x.shape).astype(np.float32)
    y, grad = grad_of_weighted_sum(lambda t: ksops.relu_topk(t, r, mode, axis), x, w)
    y0, grad0 = grad_of_weighted_sum(lambda t: ksops.global_topk(ops.relu(t), r, mode, axis), x, w)
    np.testing.assert_array_equal(y, y0)
    np.testing.assert_array_equal(grad, grad0)
    np.testing.assert_array_equal(y, ref.topk(np.maximum(x, 0), r, mode, axis))


def test_relu_topk_keeps_nans_and_drops_negatives(rng):
    # torch's masks keep NaN pre-activations (a diverging run shows in the output); the
    # row's negatives are still dropped. jax and TensorFlow drop a NaN at a selecting site
    # (their mask is "x >= t", chosen for speed: see kerasparse.ops.global_topk).
    if BACKEND != "torch":
        pytest.skip("jax/tensorflow: a NaN at a selecting site is dropped (documented)")
    x = ref.tie_free(rng, (2, 50))
    x[0, 3] = np.nan
    y = to_numpy(ksops.relu_topk(ops.convert_to_tensor(x), 0.2))
    assert np.isnan(y[0, 3])
    assert not (y[~np.isnan(y)] < 0).any()


@pytest.mark.parametrize("r", [0.5, 0.9])
def test_relu_topk_with_fewer_positives_than_k_everywhere_is_relu_with_its_gradient(rng, r):
    # Every row has at most 20 positives of 60 and k >= 30: the exit (plain ReLU) must keep
    # ReLU's gradient, x > 0.
    x = -np.abs(ref.tie_free(rng, (3, 60)))
    for i in range(3):
        x[i, rng.choice(60, 10 + 5 * i, replace=False)] *= -1.0
    w = rng.normal(size=x.shape).astype(np.float32)
    y, grad = grad_of_weighted_sum(lambda t: ksops.relu_topk(t, r), x, w)
    np.testing.assert_array_equal(y, np.maximum(x, 0))
    np.testing.assert_array_equal(grad, np.where(x > 0, w, 0))
