"""The math behind kerasparse's layers, as pure ``keras.ops`` functions.

The layers in :mod:`kerasparse.layers` are thin wrappers around these functions, so the same
code runs on JAX, PyTorch and TensorFlow, eager or compiled.
"""

import os

import keras
from keras import ops

TOPK_MODES = ("global", "channel", "spatial")

# k = ceil(r * D) is evaluated in float32 (the keep ratio is a float32 variable). float32(0.1) is
# 0.10000000149..., so 0.1 * 1000 would give ceil(100.0000015) = 101. Values within a relative
# 2**-22 (relative to r * D) above an integer are treated as that integer: storing r in
# float32 and the float32 product err by at most about 2**-23 relative, so this changes k only
# for keep ratios within float32 rounding of an exact fraction of D. (2**-20 was too wide: it
# turned r * D = 50000.05, an unambiguous k = 50001, into 50000.)
_K_REL_TOL = 2.0**-22


def keep_count(keep_ratio, size):
    """Number of entries kept by top-k: ``k = clip(ceil(r * size), 1, size)`` (int32 tensor).

    Args:
        keep_ratio: scalar (Python float, or a tensor/variable) r in (0, 1].
        size: the number of entries D the top-k runs over: a Python int, or a scalar tensor
            when the row length is only known at run time (unknown spatial sizes).
    """
    r = ops.cast(keep_ratio, "float32")
    d = ops.cast(size, "float32") if ops.is_tensor(size) else float(size)
    rd = r * d
    # The tolerance is relative to r * D (not to D): an absolute D * 2**-20 would turn
    # r * D = 1.05 into k = 1 for D = 100,000.
    k = ops.ceil(rd - rd * _K_REL_TOL)
    return ops.cast(ops.clip(k, 1.0, d), "int32")


def kth_largest(rows, k, positives=None):
    """The k-th largest value of each row of a 2-D tensor, shape ``(rows, 1)``.

    ``k`` is an int32 scalar tensor (it may come from a variable: nothing here needs it
    static or reads it on the host, so a compiled step does not retrace when it changes and
    an accelerator never waits for the host). No gradient flows through the result (it is a
    selection threshold). No full sort is done: see :func:`_kth_largest_rows` for the
    per-backend selection (and ``positives``, an optional count already made).
    """
    return ops.stop_gradient(_kth_largest_rows(ops.stop_gradient(rows), k, positives))


def _kth_largest_rows(rows, k, positives=None):
    """Per-backend fast path behind :func:`kth_largest` (the only backend-specific code).

    A full sort of each row (O(D log D), 65,536 values per sample in WRN-28-4's first
    group) costs more than the convolutions around it, so each backend uses its cheapest
    exact selection that takes ``k`` as a tensor, with no host read:

    - torch (eager in Keras, or torch.compile): one ``torch.topk`` of static size on the
      row and a padding that encodes k (:func:`_kth_largest_torch`).
    - tensorflow in a graph (Keras' default on CPU): ``tf.math.top_k`` (:func:`_kth_largest_tf`),
      which takes a tensor ``k``; under XLA (Keras' default on GPU) ``k`` must be a
      compile-time constant there, so XLA-compiled steps use the radix select below.
    - jax on a CPU, calls of 65,536 values or more: NumPy's introselect through a host
      callback (:func:`_kth_largest_numpy_jax`; CPU tensorflow graphs and eager torch on a
      CPU also select with NumPy, :func:`kth_largest_numpy`).
    - jax otherwise, XLA-compiled tensorflow and any other backend: :func:`_kth_largest_radix`
      in keras.ops (``lax.top_k`` needs a static ``k``; a sort is 40x slower on CPU).

    Every path returns the exact k-th largest value (same tie policy), shape ``(rows, 1)``,
    in the dtype of ``rows``. ``positives``: optional positives per row (int), passed only
    when no entry of ``rows`` is negative (see :func:`_positives`); tensorflow uses it.
    """
    backend = keras.backend.backend()
    if backend == "torch":
        return _kth_largest_torch(rows, k)
    if backend == "tensorflow" and not _in_xla_tf():
        return _kth_largest_tf(rows, k, positives)
    if backend == "jax" and _jax_numpy_select(rows):
        return _kth_largest_numpy_jax(rows, k, positives)
    return _kth_largest_radix(rows, k)


# jax selects with NumPy (a host callback) when XLA runs on the CPU and a call selects at
# least this many values; below it the radix select's 32 fused passes cost less than the
# callback's fixed cost (measured: docs/benchmarks.md).
_JAX_NUMPY_SELECT_MIN_SIZE = 2**16


def _jax_numpy_select(rows):
    """Whether jax selects with NumPy here: on a CPU, with one device only (with several,
    data-parallel steps deadlocked: a device's all-reduce inside the site's ``cond``
    waited for the other device's thread, held by the callback), for float rows of at
    least ``_JAX_NUMPY_SELECT_MIN_SIZE`` values."""
    import jax

    return (NUMPY_CPU_SELECT and jax.default_backend() == "cpu" and jax.device_count() == 1
            and rows.dtype in ("float16", "float32", "float64")
            and rows.shape[0] * rows.shape[-1] >= _JAX_NUMPY_SELECT_MIN_SIZE)


def _kth_largest_numpy_jax(rows, k, positives=None):
    """jax on a CPU: :func:`kth_largest_numpy` through a host callback
    (:func:`_host_select_primitive`, else ``jax.pure_callback``), inside the
    compiled step (k stays a traced value: no retrace when it changes). On a CPU the
    callback's data are already in host memory; XLA's radix select makes 32 passes over
    each row where introselect makes about two (32 x 65,536 ReLU outputs, k = 20 %:
    docs/benchmarks.md). ``positives`` (as in :func:`_kth_largest_rows`) tells NumPy
    whether the rows have no negative entry; -1: unknown, checked there. A host callback
    does not survive serialisation of the traced step (``model.export`` through jax2tf):
    set :data:`NUMPY_CPU_SELECT` to False before tracing a model for export."""
    import jax
    import jax.numpy as jnp

    n = rows.shape[-1]
    nonnegative = -1 if positives is None else jnp.where(jnp.max(positives) <= n, 1, 0)

    args = (rows, jnp.asarray(k, "int32"), jnp.asarray(nonnegative, "int32"))
    primitive = _host_select_primitive()
    if primitive is not None:
        return primitive.bind(*args)
    return jax.pure_callback(
        _host_select, jax.ShapeDtypeStruct((rows.shape[0], 1), rows.dtype), *args,
        vmap_method="sequential",
    )


def _host_select(rows, k, nonnegative):
    """The host side of :func:`_kth_largest_numpy_jax` (``nonnegative``: 1, 0, or -1 for
    unknown)."""
    import numpy as np

    flag = None if int(nonnegative) < 0 else bool(nonnegative)
    return np.ascontiguousarray(kth_largest_numpy(rows, k, flag))


_HOST_SELECT_PRIMITIVE = []


def _host_select_primitive():
    """:func:`_host_select` as a jax primitive lowered to XLA's CPU Python callback
    (``jax.interpreters.mlir.emit_python_callback``), or None where this jax lacks those
    hooks (``jax.pure_callback`` is used then). Written by hand because
    ``jax.pure_callback`` hands its function new jax arrays: XLA's callback copies the
    operand into a NumPy array, then ``pure_callback`` copies that again with
    ``device_put``. Here NumPy gets XLA's copy (read-only) as it is. A first-group WRN-28-4
    site, 8 MB a call at k = 20 %: 13.5 ms a call against 17.2 ms through ``pure_callback``
    and 10.2 ms for NumPy alone (benchmarks/jax_select_handoff.py). Forward-mode and
    ``vmap`` are defined (zero tangent; one call per mapped element, as
    ``vmap_method="sequential"``)."""
    if not _HOST_SELECT_PRIMITIVE:
        _HOST_SELECT_PRIMITIVE.append(_make_host_select_primitive())
    return _HOST_SELECT_PRIMITIVE[0]


def _make_host_select_primitive():
    import inspect

    import jax
    import jax.numpy as jnp

    try:
        from jax.core import ShapedArray
        from jax.extend.core import Primitive
        from jax.interpreters import ad, batching, mlir

        emit = mlir.emit_python_callback
        takes_token_flag = "returns_token" in inspect.signature(emit).parameters
    except (ImportError, AttributeError, TypeError, ValueError):
        return None
    primitive = Primitive("kerasparse_kth_largest_numpy")
    primitive.def_impl(jax.jit(primitive.bind))  # eager calls: one compiled call, built once
    primitive.def_abstract_eval(lambda rows, k, flag: ShapedArray((rows.shape[0], 1), rows.dtype))

    def lowering(ctx, *args):
        extra = {"returns_token": False} if takes_token_flag else {}
        results, *_ = emit(ctx, lambda *a: (_host_select(*a),), None, list(args),
                           ctx.avals_in, ctx.avals_out, has_side_effect=False, **extra)
        return results

    def jvp(primals, tangents):
        out = primitive.bind(*primals)
        return out, jnp.zeros_like(out)

    def batch(args, dims):
        size = next(a.shape[d] for a, d in zip(args, dims) if d is not None)
        args = [jnp.broadcast_to(a, (size, *a.shape)) if d is None else jnp.moveaxis(a, d, 0)
                for a, d in zip(args, dims)]
        return jax.lax.map(lambda a: primitive.bind(*a), tuple(args)), 0

    mlir.register_lowering(primitive, lowering, platform="cpu")
    ad.primitive_jvps[primitive] = jvp
    batching.primitive_batchers[primitive] = batch
    return primitive


def _kth_largest_torch(rows, k):
    """torch: the exact k-th largest of each row for a tensor ``k``, with no host read.

    ``torch.topk`` and ``kthvalue`` need a Python int, and reading ``k`` (or any count) on
    the host would stall an accelerator once per call (issue 12). So the rank is made
    static and ``k`` is carried by the *values* of a padding (shapes depend on n only):
    prepending a copies of -inf (a from ``k``) moves the wanted value to a fixed rank. Exact
    for every finite or infinite value, ties included (values are selected, never
    positions); NaNs are not supported. Two layouts of the same idea, chosen by shape and
    device (static, so torch.compile sees one graph for every k):

    - long rows on a CPU: each row's median of ``[row, pad]`` (:func:`_kth_largest_median_torch`);
      ``Tensor.median()`` selects plain values, where every batched selection in torch
      also carries indices: measured about as fast as ``torch.topk`` with a host-side k.
    - otherwise (accelerators, many short rows): one batched ``torch.topk`` of static size
      (:func:`_kth_largest_topk_torch`).
    """
    import torch

    k = torch.as_tensor(k, device=rows.device).to(torch.int64)
    n = rows.shape[-1]
    if rows.device.type == "cpu" and n >= 2048 and rows.shape[0] <= 1024:
        return _kth_largest_median_torch(rows, k)
    return _kth_largest_topk_torch(rows, k)


def _kth_largest_median_torch(rows, k):
    """The k-th largest of each row as the lower median of ``[row, pad]``, ``pad`` being
    n - 1 values: k - 1 of them -inf, the others +inf. The lower median of 2n - 1 values is
    the n-th smallest, which is then the (n - k + 1)-th smallest of the row: its k-th
    largest. One ``median()`` per row (a loop over the static row count)."""
    import torch

    n = rows.shape[-1]
    pad = torch.where(
        torch.arange(n - 1, device=rows.device) < k - 1,
        torch.tensor(float("-inf"), dtype=rows.dtype, device=rows.device),
        torch.tensor(float("inf"), dtype=rows.dtype, device=rows.device),
    )
    padded = torch.cat([rows, pad.expand(rows.shape[0], n - 1)], dim=-1)
    return torch.stack([row.median() for row in padded.unbind(0)]).unsqueeze(-1)


def _kth_largest_topk_torch(rows, k):
    """The k-th largest of each row with one batched ``torch.topk`` of static size.

    The k-th largest is the j-th smallest with j = n - k + 1; taking the rows as they are
    when j <= h = ceil(n/2) and negated otherwise (then the rank is k <= h), the wanted
    value is the q-th smallest, q in [1, h], of a row ``s``. Prepending h - q copies of
    -inf (and filling the rest of h - 1 slots with +inf) makes it the h-th smallest of
    ``[s, pad]``: ``topk(h, largest=False)`` on 1.5 n values per row, then its maximum.
    """
    import torch

    n = rows.shape[-1]
    h = (n + 1) // 2
    j = n - k + 1  # the wanted value is the j-th smallest
    low = j <= h
    q = torch.where(low, j, k)  # its rank from the bottom of s, in [1, h]
    sign = torch.where(low, 1.0, -1.0).to(rows.dtype)
    pad = torch.where(
        torch.arange(h - 1, device=rows.device) < h - q,
        torch.tensor(float("-inf"), dtype=rows.dtype, device=rows.device),
        torch.tensor(float("inf"), dtype=rows.dtype, device=rows.device),
    )
    padded = torch.cat([rows * sign, pad.expand(rows.shape[0], h - 1)], dim=-1)
    smallest = torch.topk(padded, h, dim=-1, largest=False, sorted=False).values
    return smallest.amax(-1, keepdim=True) * sign


# torch on a CPU, eager: decide the exits and the selection's size on the host. A CPU
# tensor's value is already there when Python reads it (torch's CPU ops run synchronously),
# so a host read stalls nothing; what the sync-free path costs instead is the selection
# at every site, even where r == 1 or ReLU left fewer than k non-zeros (measured, WRN-28-4
# step, 1 thread: about 1.17x ReLU at r = 1 against 1.01-1.04 with these exits;
# docs/benchmarks.md). Off under torch.compile (a host read breaks the graph and a Python
# int k recompiles per value) and on every other device (a GPU would wait for each read).
# Tests set it False to run the accelerator path on CPU tensors.
TORCH_CPU_HOST_EXITS = True


def _torch_host_exits(rows):
    import torch

    return (TORCH_CPU_HOST_EXITS and rows.device.type == "cpu"
            and not torch.compiler.is_compiling())


def _global_topk_torch(x, rows, restore, k):
    """torch: :func:`global_topk` with no host read (no ``int(k)``, no data-dependent Python
    branch), so an accelerator never waits for the host and torch.compile traces one graph
    for every keep ratio.

    Every call selects: the old host-side exits (r == 1; fewer positives than k) are the
    same arithmetic here (the threshold is then the row's minimum, or 0 after ReLU, and
    every entry is kept, with gradient 1), only not skipped. The mask is made of float
    passes (:class:`_MaskTorch`). Eager CPU tensors take the host-side exits instead
    (:data:`TORCH_CPU_HOST_EXITS`, :func:`_global_topk_torch_host`).
    """
    import torch

    if rows.numel() == 0 or rows.device.type == "meta":
        return x  # (meta: Keras' symbolic shape inference)
    if _torch_host_exits(rows):
        return _global_topk_torch_host(x, rows, restore, k)
    with torch.no_grad():
        threshold = _kth_largest_torch(rows.detach(), k)
    return restore(_MaskTorch.apply(rows, threshold))


def _global_topk_torch_host(x, rows, restore, k):
    """Eager torch on a CPU: the exits of the generic path (r == 1; no negatives and fewer
    than k non-zeros in every row) decided on the host, and the selection sized by a
    Python-int k (:func:`_kth_largest_host_torch`). The same result and gradient as the
    sync-free path (tested against it and NumPy)."""
    import torch

    k = int(k)
    n = rows.shape[-1]
    if k >= n:
        return x
    with torch.no_grad():
        detached = rows.detach()
        positives = None
        if bool(detached.amin() >= 0):
            positives = _count_positives_torch(detached)  # the non-zeros are the positives
            if int(positives.max()) < k:
                return x  # the k-th largest is 0 and nothing is negative: all kept
        threshold = _kth_largest_host_torch(detached, k, positives)
        # Each row's threshold as the float just below it, on the host: x >= t exactly
        # where x > below. A row whose k-th largest is -inf keeps -inf entries, which
        # torch.threshold cannot express (it drops x == below): the generic mask then.
        below = _just_below(threshold).squeeze(-1).tolist()
    if float("-inf") in below:
        return restore(_MaskTorch.apply(rows, threshold))
    return restore(_RowThresholdTorch.apply(rows, below))


def _just_below(threshold):
    """The float just below each threshold (torch): ``x >= t`` exactly where ``x > below``,
    the form ``torch.threshold`` takes."""
    import torch

    return torch.nextafter(threshold, torch.full_like(threshold, float("-inf")))


def _relu_topk_torch_host(x, rows, restore, k):
    """Eager torch on a CPU: :func:`relu_topk` fused. ReLU is monotone, so the k-th largest
    of relu(row) is relu(the k-th largest of row): it is selected on the row itself (whose
    negatives leave introselect no block of zeros to slow on), and one ``torch.threshold``
    per row at max(just below it, 0) applies ReLU and the top-k mask in one pass forward
    and one backward (:class:`_RowThresholdTorch`). Fewer than k positives in every row:
    plain ReLU. Values and gradients equal ``global_topk(relu(x))``'s (tested)."""
    import torch

    k = int(k)
    if k >= rows.shape[-1]:
        return torch.relu(x)
    with torch.no_grad():
        detached = rows.detach()
        positives = torch.relu(detached).sign_().sum(-1, dtype=torch.float32)
    if int(positives.max()) < k:
        return torch.relu(x)  # (outside no_grad: its gradient is the site's)
    with torch.no_grad():
        threshold = _kth_largest_host_torch(detached, k, nonnegative=False)
        below = _just_below(threshold)
        # A row's k-th largest <= 0 (fewer than k positives): its ReLU, x > 0. A NaN
        # threshold (NaN inputs) likewise, so that negatives stay dropped.
        below = below.clamp_min(0).nan_to_num_(nan=0.0).squeeze(-1).tolist()
    return restore(_RowThresholdTorch.apply(rows, below))


def _kth_largest_host_torch(rows, k, positives=None, nonnegative=None):
    """The k-th largest of each row with the cheapest ``torch.topk`` for a Python-int k.

    ``torch.topk``'s cost grows with the number it selects, so it selects the fewer of the
    k largest and the n-k+1 smallest or, when no entry is negative (as after ReLU) and
    ``m = max(p) - k + 1`` is small, the m smallest positives (``p``: positives per row;
    the k-th largest of a row with p >= k is its (p-k+1)-th smallest positive, and 0 when
    p < k). After ReLU p is often close to k, so m is small (32 x 65,536 ReLU outputs,
    k = D/2: m ~ 200, 5 ms instead of 19 ms for the smaller side, single thread).
    ``nonnegative``: whether no entry is negative, if known (else: known when ``positives``
    is given; NumPy checks otherwise).
    """
    import torch

    n = rows.shape[-1]
    fewest = min(k, n - k + 1)
    if positives is not None:
        m = int(positives.max()) - k + 1
        # The positives path sorts its m values (m log m): worth it only for a small m
        # (measured: sorted m = 4,000 already costs more than unsorted D/2).
        if 0 < m and 16 * m <= fewest:
            return _kth_largest_among_positives_torch(rows, k, positives, m)
    if NUMPY_CPU_SELECT and rows.dtype in _NUMPY_SELECT_DTYPES:
        # The CPU tensor's own memory handed to NumPy (no copy): see kth_largest_numpy.
        if nonnegative is None and positives is not None:
            nonnegative = True
        return torch.from_numpy(
            kth_largest_numpy(rows.numpy(), k, nonnegative, torch.get_num_threads()))
    if k == fewest:
        return torch.topk(rows, k, dim=-1, sorted=False).values.amin(-1, keepdim=True)
    values = torch.topk(rows, n - k + 1, dim=-1, largest=False, sorted=False).values
    return values.amax(-1, keepdim=True)  # the (n-k+1)-th smallest


# CPU selections by NumPy (kth_largest_numpy): eager torch on CPU tensors (with the host
# exits above) and TensorFlow graphs on a machine without a GPU. Tests set it False to run
# the backends' own selections (what a GPU runs) on CPU tensors too.
NUMPY_CPU_SELECT = True


def kth_largest_numpy(rows, k, nonnegative=None, threads=None, relu=False):
    """The k-th largest of each row of a 2-D NumPy array, shape ``(rows, 1)`` (``k`` an
    int or 0-d array, clipped to [1, D]; rows of length 0 give 0). With ``relu``: the
    k-th largest of ``max(rows, 0)`` (0 where a row has fewer than k positives; a NaN
    entry counts as the largest, as in ``np.partition``), selected on ``rows`` as they are.

    Used on CPUs by eager torch, TensorFlow graphs (through ``tf.numpy_function``) and
    jax (a host callback). Float rows of ``_SAMPLED_SELECT_MIN_LENGTH`` values or more are
    selected through a sample's bracket (:func:`_kth_smallest_sampled`, about 2x faster);
    shorter rows, other dtypes and missed brackets by NumPy's introselect
    (``np.partition``) over whole rows. Written around NumPy because no
    backend's own CPU selection is as cheap for a mid-size k (the keep ratios where the
    controllers spend most epochs): ``torch.topk`` / ``kthvalue`` and ``tf.math.top_k``
    all carry indices, and cost 2-3x more for 32 x 65,536 post-ReLU values at k = 20 % or
    5 % (docs/benchmarks.md). Exact: a selection of values, ties and +-inf included.

    For introselect, rows with no negative entry (``nonnegative``: True / False if the
    caller knows, else checked here) take :func:`_distinct_zeros` first: introselect slows
    down on a block of equal values, and after ReLU half of a row is zeros (32 x 65,536
    values, k = 20 %: 21.8 ms as they are, 4.1 ms once the zeros are distinct, plus 2.9 ms
    for the pass).

    Large calls are split by rows between ``threads`` threads (default
    :func:`select_threads`): the backend's own threads wait for the selection meanwhile.
    """
    import numpy as np

    rows = np.asarray(rows)
    n = rows.shape[-1]
    if n == 0:
        return np.zeros((rows.shape[0], 1), rows.dtype)
    j = n - min(max(int(k), 1), n)  # the k-th largest is the j-th smallest (0-based)
    if relu:
        # Values <= 0 act as ReLU's zeros: the sampled bracket starts above 0, so it reads
        # the row as if ReLU had been applied (no ReLU pass; rows[...] only where needed).
        nonnegative = True
    elif nonnegative is None:
        nonnegative = bool(rows.min() >= 0)  # False for NaN
    distinct = nonnegative and rows.dtype.kind == "f"

    def partition(part):
        if relu:
            part = np.maximum(part, 0)  # (NaN stays NaN)
        if not distinct:
            return np.partition(part, j, axis=-1)[:, j : j + 1]
        kth = np.partition(_distinct_zeros(part), j, axis=-1)[:, j : j + 1]
        # A negative k-th largest means fewer than k positives: the row's k-th largest is 0.
        return np.maximum(kth, 0).astype(rows.dtype)

    def select(part):
        if rows.dtype.kind != "f" or n < _SAMPLED_SELECT_MIN_LENGTH:
            return partition(part)
        return _kth_smallest_sampled(part, j, distinct, partition)

    chunks = _row_chunks(rows, threads)
    if len(chunks) == 1:
        return select(rows)
    return np.concatenate(list(_select_pool().map(select, chunks)))


# Rows are split between threads only in parts of at least this many values: below it the
# hand-off costs more than it saves (32 x 16,384 ReLU outputs: 2.9 ms on one thread, 4.5 ms
# split in two; 32 x 65,536: 10.0 against 6.7 ms; docs/benchmarks.md).
_THREAD_MIN_VALUES = 2**19
_SELECT_POOL = []


def select_threads():
    """Threads for :func:`kth_largest_numpy`: ``OMP_NUM_THREADS`` where set (the benchmarks'
    one-thread runs), else the CPUs this process may use, at most 8."""
    env = os.environ.get("OMP_NUM_THREADS", "")
    if env.isdigit() and int(env) > 0:
        return int(env)
    if hasattr(os, "sched_getaffinity"):
        cpus = len(os.sched_getaffinity(0))
    else:
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, 8))


def _row_chunks(rows, threads=None):
    """``rows`` split into up to ``threads`` blocks of whole rows (views), none under
    ``_THREAD_MIN_VALUES`` values; one block when splitting does not pay."""
    import numpy as np

    threads = select_threads() if threads is None else threads
    parts = min(threads, rows.shape[0], rows.size // _THREAD_MIN_VALUES)
    return np.array_split(rows, parts) if parts > 1 else [rows]


def _select_pool():
    """The threads that select blocks of rows at once. Hand-written (a ThreadPoolExecutor)
    because NumPy's ``partition`` runs on one core and releases the GIL, and no backend
    offers a CPU selection with a run-time ``k`` that uses more: two threads take
    32 x 65,536 ReLU outputs from 13.8 to 7.9 ms (k = D/2). Re-created after a fork (a
    forked child has the executor but not its threads)."""
    from concurrent.futures import ThreadPoolExecutor

    if not _SELECT_POOL:
        _SELECT_POOL.append(ThreadPoolExecutor(8, thread_name_prefix="kerasparse-select"))
    return _SELECT_POOL[0]


def _forget_select_pool():
    _SELECT_POOL.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_select_pool)


# Rows at least this long are selected through a sample (_kth_smallest_sampled); shorter
# ones by introselect over the whole row, already cheap there.
_SAMPLED_SELECT_MIN_LENGTH = 2**14
_SAMPLE_SIZE = 2048
_SAMPLE_INDEX = {}


def _kth_smallest_sampled(rows, j, nonnegative, whole_rows):
    """The j-th smallest (0-based) of each row of a float array, shape ``(rows, 1)``, as
    ``np.partition`` gives it (NaNs ordered last), by Floyd and Rivest's sampling idea:
    a sorted sample of 1,024 to 2,048 entries per row brackets the j-th smallest between
    two of its values ``lo <= hi`` (4 standard deviations of a sample rank either side),
    two vectorised passes count the entries below ``lo`` and up to ``hi``, and only the
    entries in between (about 8 % of a row at worst) go to introselect. Where a bracket
    missed (counts say the j-th smallest lies outside it: rare, and every row with NaNs
    there), the row goes to ``whole_rows``, the plain introselect, so the result is exact
    whatever the sample. Measured 2-3x faster than introselect over whole rows (32 x
    65,536 ReLU outputs, k = 50 / 20 / 5 %: docs/benchmarks.md); introselect reads each
    entry several times and branches on it, the bracket's passes are branch-free.

    ``nonnegative``: no entry is negative (as after ReLU), or the rows stand for their ReLU
    (``kth_largest_numpy(..., relu=True)``). Then ``lo`` is raised above 0 so that the
    block of zeros (or of entries <= 0) is never a candidate (a tie block that slows
    introselect), and a row whose j-th smallest is one of its zeros is known from counts
    alone. Every count compares with ``lo > 0`` or ``0``, where a row and its ReLU agree.
    """
    import numpy as np

    count, n = rows.shape
    dtype = rows.dtype
    # A sample of about 1/16 of the row, 1,024 to 2,048 entries (measured: a larger sample
    # narrows the bracket but costs more than it saves; docs/benchmarks.md).
    s = min(max(n // 16, _SAMPLE_SIZE // 2), _SAMPLE_SIZE, n)
    index = _SAMPLE_INDEX.get((n, s))
    if index is None:
        # Random positions, not a stride: rows in channels-last memory order repeat their
        # channels with a period, and a stride that is a multiple of it samples one channel.
        index = np.sort(np.random.default_rng(0).choice(n, s, replace=False))
        _SAMPLE_INDEX[(n, s)] = index
    # (np.take: 3x faster here than rows[:, index].) Sorted, not partitioned: introselect
    # slows down on ties, and after ReLU half of a sample is zeros (7.3 ms against 0.8 ms
    # for the sort at 32 x 4,096; docs/benchmarks.md).
    sample = np.sort(np.take(rows, index, axis=-1), axis=-1)
    q = (j + 0.5) / n
    spread = int(np.ceil(4.0 * np.sqrt(s * q * (1.0 - q)))) + 2
    low, high = int(q * s) - spread, int(q * s) + spread
    lo = sample[:, low : low + 1] if low >= 0 else np.full((count, 1), -np.inf, dtype)
    hi = sample[:, high : high + 1] if high < s else np.full((count, 1), np.inf, dtype)
    if nonnegative:
        # The smallest normal number, not a subnormal: XLA's CPU threads (where jax's
        # callback runs) treat subnormal operands as 0, which let every zero in (slowly).
        lo = np.maximum(lo, np.finfo(dtype).tiny)
        hi = np.maximum(hi, lo)
    below = rows < lo
    within = rows <= hi
    fewer = _count_per_row(below)  # entries < lo (a NaN is in neither count)
    upto = _count_per_row(within)  # entries <= hi
    inside = (fewer <= j) & (j < upto)
    zero = (fewer > j) if nonnegative else np.zeros(count, bool)
    if zero.any():
        # Below lo are the zeros (or, for rows read as their ReLU, the entries <= 0) and any
        # subnormals: where those alone outnumber j, the j-th smallest is 0; otherwise
        # (subnormals) the row goes to whole_rows.
        part = rows if zero.all() else rows[zero]  # (rows[zero] copies)
        zero[zero] = _count_per_row(part <= 0) > j  # (a NaN is not <= 0)
    within ^= below  # (rows < lo is within rows <= hi: lo <= hi)
    if not inside.all():
        within[~inside] = False
    # The candidates of each row (row after row), then the (j - fewer)-th of each by
    # introselect: a NumPy call per row, on a few percent of it.
    # (np.compress of the flat arrays: 4x faster here than rows[within].)
    flat = np.compress(within.ravel(), rows.ravel())
    candidates = np.split(flat, np.cumsum(np.where(inside, upto - fewer, 0))[:-1])
    out = np.zeros((count, 1), dtype)
    for i in np.flatnonzero(inside):
        rank = j - fewer[i]
        out[i, 0] = np.partition(candidates[i], rank)[rank]
    missed = ~inside & ~zero
    if missed.any():
        out[missed] = whole_rows(rows[missed])
    return out


def _count_per_row(mask):
    """``np.count_nonzero(mask, axis=-1)`` for a 2-D bool array, faster: NumPy counts a
    whole array with SIMD but along an axis by a slow reduction (32 x 65,536: 0.09 ms as a
    loop over rows, 0.58 ms along the axis); many short rows as bytes summed."""
    import numpy as np

    if mask.shape[0] <= 64:
        return np.fromiter((np.count_nonzero(row) for row in mask), np.intp, mask.shape[0])
    return mask.view(np.uint8).sum(axis=-1, dtype=np.intp)


_NEGATIVE_RAMPS = {}


def _distinct_zeros(rows):
    """``rows`` (no negative entry) with its zeros (+0.0 and -0.0) replaced by the distinct
    negatives -1, -2, ..., -n by position: every positive and the order of the positives
    unchanged, no ties among the rest. Arithmetic (``x + (x == 0) * ramp``, one vectorised
    pass) rather than ``np.where``, which took 4x longer here. In float32, or float64 for
    float64 rows (a float16 ramp would round -2049 and beyond into ties again)."""
    import numpy as np

    n = rows.shape[-1]
    dtype = np.float64 if rows.dtype == np.float64 else np.float32
    ramp = _NEGATIVE_RAMPS.get((n, dtype))
    if ramp is None:
        ramp = _NEGATIVE_RAMPS[(n, dtype)] = -np.arange(1, n + 1, dtype=dtype)
    return rows.astype(dtype, copy=False) + (rows == 0) * ramp


def _count_positives_torch(rows):
    """Positives per row of a tensor with no negative entry (int64). ``sign().sum()`` is
    a vectorised pass (0.3 ms for 32 x 65,536 values, single thread) where
    ``count_nonzero`` takes 2 ms; the float32 sum of 0/1 is exact below 2**24 per row."""
    import torch

    if rows.shape[-1] >= 2**24:
        return torch.count_nonzero(rows, dim=-1)
    return torch.sign(rows).sum(-1, dtype=torch.float32).long()


def _kth_largest_among_positives_torch(rows, k, positives, m):
    """The (p-k+1)-th smallest positive of each row with p >= k positives, 0 elsewhere
    (rows have no negative entry; ``m = max(p) - k + 1`` >= 1)."""
    import torch

    if rows.dtype == torch.float32:
        # Order-preserving int32 keys with the zeros (+0.0 and -0.0) moved to the top, so
        # the m smallest keys are the m smallest positives: for x >= 0 the bit pattern is
        # monotone, and (bits - 1) & 0x7FFFFFFF sends 0 (and -0.0) to INT32_MAX. One
        # vectorised pass; ``torch.where(rows > 0, rows, inf)`` took 9 ms here.
        keys = rows.view(torch.int32) - 1
        keys.bitwise_and_(0x7FFFFFFF)
    else:
        keys = torch.where(rows > 0, rows, torch.tensor(float("inf"), dtype=rows.dtype))
    smallest = torch.topk(keys, m, dim=-1, largest=False, sorted=True).values
    kth = smallest.gather(-1, (positives - k).clamp(min=0).unsqueeze(-1))
    if rows.dtype == torch.float32:
        kth = (kth + 1).view(torch.float32)
    return torch.where((positives >= k).unsqueeze(-1), kth, torch.zeros_like(kth))


if keras.backend.backend() == "torch":
    # Defined at import (the backend is fixed by then), not on first use: a class
    # definition inside a torch.compile'd step would break its graph.
    import torch as _torch

    # The dtypes NumPy can select in (kth_largest_numpy); bfloat16 keeps torch.topk.
    _NUMPY_SELECT_DTYPES = (_torch.float16, _torch.float32, _torch.float64)

    class _MaskTorch(_torch.autograd.Function):
        """y = rows where rows >= threshold, else 0; dy/drows = the same mask.

        Made of vectorised float passes (on a CPU a comparison's bool tensor, and
        multiplying by it, cost several times more: 32 x 65,536 values, forward and
        backward 13 ms that way, 5 ms this way; ``torch.where`` and ``fmax`` are not
        vectorised there): with t' the float just below the threshold, rows >= threshold
        exactly where rows - t' > 0, so the mask is sign(relu(rows - t')) (in float32 for
        lower-precision rows, where t' lies between two of their values). The difference's NaNs
        (only from -inf - -inf, a row whose k-th largest is -inf, or NaN rows) become 1 before
        the sign (torch's sign(NaN) is 0). Dropped
        entries are first lifted to the (finite) threshold, so a dropped -inf gives 0, not
        NaN, while a NaN input still propagates (a diverging run must not be hidden).
        """

        @staticmethod
        def forward(ctx, rows, threshold):
            t32 = threshold.to(_torch.float32)
            below = _torch.nextafter(t32, _torch.full_like(t32, float("-inf")))
            mask = (rows - below).nan_to_num_(nan=1.0).relu_().sign_()
            if mask.dtype != rows.dtype:
                mask = mask.to(rows.dtype)
            ctx.save_for_backward(mask)
            bound = threshold.clamp(max=_torch.finfo(rows.dtype).max)
            return rows.clamp_min(bound).mul_(mask)

        @staticmethod
        def backward(ctx, grad):
            (mask,) = ctx.saved_tensors
            return grad * mask, None


    class _RowThresholdTorch(_torch.autograd.Function):
        """y = rows where rows > below[i] in row i, else 0; dy/drows = the same mask: the
        mask of the torch host path (CPU, ``below`` Python floats: each row's threshold
        just below its k-th largest), one ``torch.threshold`` per row. Written as a
        Function because its forward and backward are then one vectorised pass each
        (the kernels of ReLU, ``threshold`` and ``threshold_backward``, with a per-row
        scalar), where the float passes of :class:`_MaskTorch` that take a threshold
        tensor are six and one (32 x 65,536 values, forward and backward: 4.1 ms against
        6.4 ms; ReLU's 2.7 ms). NaN inputs propagate (``threshold`` keeps them)."""

        @staticmethod
        def forward(ctx, rows, below):
            y = _torch.empty_like(rows)
            for i, b in enumerate(below):
                _torch.threshold(rows[i], b, 0.0, out=y[i])
            ctx.save_for_backward(rows)
            ctx.below = below
            return y

        @staticmethod
        def backward(ctx, grad):
            (rows,) = ctx.saved_tensors
            grad_rows = _torch.empty_like(rows)
            for i, b in enumerate(ctx.below):
                _torch.ops.aten.threshold_backward.grad_input(
                    grad[i], rows[i], b, grad_input=grad_rows[i]
                )
            return grad_rows, None


def _memory_order_rows_torch(x):
    """Global mode on torch, for a channels_last-strided 4-D tensor (what oneDNN convolutions
    often return): one row per sample in memory order, as a view, with a ``restore`` that
    gives the result the input's layout. The top-k of a row does not depend on the order of
    its entries, so this is exact; it saves the copy of a logical-order reshape and, more,
    a layout change that made the next convolution reorder its input (measured: the
    WRN-28-4 step's convolutions 10-20 % slower at r = 0.5 than with ReLU). None otherwise.
    """
    import torch

    if x.dim() != 4 or x.is_contiguous() or not x.is_contiguous(
        memory_format=torch.channels_last
    ):
        return None
    nhwc = x.permute(0, 2, 3, 1)
    return nhwc.reshape(x.shape[0], -1), lambda y: y.reshape(nhwc.shape).permute(0, 3, 1, 2)


def _in_xla_tf():
    """True inside an XLA-compiled TensorFlow function (where ``tf.math.top_k`` needs a
    static ``k``)."""
    import tensorflow as tf
    from tensorflow.python.ops import control_flow_util

    if tf.executing_eagerly():
        return False
    return control_flow_util.GraphOrParentsInXlaContext(tf.compat.v1.get_default_graph())


def _kth_largest_tf(rows, k, positives=None):
    """tensorflow graph (or eager): the k-th largest of each row with ``tf.math.top_k``.

    As for torch (:func:`_kth_largest_torch`), ``top_k``'s cost grows with the number it
    selects (32 x 65,536 values: 100 ms for D/2, 8 ms for 500), so it selects the fewer
    of the k largest and the n-k+1 smallest or, when no entry is negative and
    ``m = max(p) - k + 1`` is small, the m smallest positives. ``k`` is a tensor; the choice is a ``tf.cond`` at run time.
    """
    import tensorflow as tf

    n = rows.shape[-1]
    if n is None:  # unknown spatial size: the row length is a run-time value
        n = tf.shape(rows)[-1]
    x = rows if rows.dtype in (tf.float32, tf.float64) else tf.cast(rows, tf.float32)
    k = tf.cast(k, tf.int32)
    if positives is None:
        positives = tf.where(tf.reduce_min(x) >= 0, _positives(x), n + 1)  # n+1: unknown
    positives = tf.cast(positives, tf.int32)
    m = tf.reduce_max(positives) - k + 1
    fewest = tf.minimum(k, n - k + 1)

    def among_positives():
        # The (p-k+1)-th smallest positive of each row (0 where p < k): the m largest of
        # -x over the positives (the zeros become -inf), sorted, then one per row.
        negated = tf.where(x > 0, -x, tf.constant(-float("inf"), x.dtype))
        largest = tf.math.top_k(negated, tf.maximum(m, 1), sorted=True).values
        index = tf.maximum(positives - k, 0)[:, None]
        kth = -tf.gather(largest, index, batch_dims=1)
        return tf.where(positives[:, None] >= k, kth, tf.zeros_like(kth))

    def smaller_side():
        if _tf_numpy_selects():
            # On a CPU NumPy selects 2-3x faster than top_k (kth_largest_numpy).
            nonnegative = tf.reduce_max(positives) <= n  # n + 1 marks "unknown"
            kth = tf.numpy_function(kth_largest_numpy, [x, k, nonnegative], x.dtype,
                                    stateful=False)
            return tf.ensure_shape(kth, [x.shape[0], 1])
        take_smallest = 2 * k > n + 1
        count = tf.where(take_smallest, n - k + 1, k)
        signed = tf.where(take_smallest, -x, x)
        values = tf.math.top_k(signed, count, sorted=False).values
        smallest_kept = tf.reduce_min(values, axis=-1, keepdims=True)
        return tf.where(take_smallest, -smallest_kept, smallest_kept)

    # Only for a small m: top_k's sorted output costs m log m (m = 6,600 was slower than
    # the unsorted smaller side). An "unknown" count (n + 1) never passes this test.
    kth = tf.cond(8 * m <= fewest, among_positives, smaller_side)
    return tf.cast(kth, rows.dtype)


def _positives(rows):
    """Positives per row of ``rows``, valid where no entry is negative (then the non-zeros
    are the positives). ``sum(sign)`` in float32 is one vectorised pass (TF: 0.7 ms for
    32 x 65,536 values vs 2 ms for ``count_nonzero``) and exact below 2**24 per row (an
    unknown row length gets the exact integer count)."""
    if rows.shape[-1] is None or rows.shape[-1] >= 2**24:
        return ops.cast(ops.count_nonzero(rows, axis=-1), "int32")
    return ops.cast(ops.sum(ops.sign(ops.cast(rows, "float32")), axis=-1), "int32")


def _kth_largest_radix(rows, k):
    """Exact k-th largest of each row by a 32-pass radix select on the float bit pattern.

    Written here because no keras.ops function selects with a run-time ``k`` without a full
    sort. Each float32 value maps to an int32 key with the same order; the k-th largest key
    is then built bit by bit, most significant first: a bit is set if at least ``k`` keys
    are >= the prefix with that bit set. 32 passes of compare+count over each row (fused by
    XLA), no sort, ``k`` dynamic. Exact for every finite value and +-inf (ties included);
    -0.0 and +0.0 are ordered but compare equal afterwards. NaNs are not supported.
    """
    x = ops.cast(rows, "float32")
    bits = _bitcast(x, "int32")
    # Negative floats order backwards in their bit pattern: flip their 31 magnitude bits.
    keys = ops.where(bits < 0, ops.bitwise_xor(bits, 0x7FFFFFFF), bits)
    k = ops.cast(k, "int32")

    def count_at_least(candidate):
        return ops.sum(ops.cast(keys >= candidate, "int32"), axis=-1, keepdims=True)

    # The sign bit first: is the k-th largest key >= 0?
    zero = ops.zeros((ops.shape(keys)[0], 1), "int32")
    prefix = ops.where(count_at_least(zero) >= k, zero, zero + _INT32_MIN)

    def step(i, prefix):
        candidate = ops.bitwise_or(prefix, ops.left_shift(ops.ones_like(prefix), 30 - i))
        return ops.where(count_at_least(candidate) >= k, candidate, prefix)

    prefix = ops.fori_loop(0, 31, step, prefix)
    bits = ops.where(prefix < 0, ops.bitwise_xor(prefix, 0x7FFFFFFF), prefix)
    return ops.cast(_bitcast(bits, "float32"), rows.dtype)


def _bitcast(x, dtype):
    """``ops.view`` between 32-bit types; on TensorFlow ``tf.bitcast``, which (unlike Keras'
    view there) also takes tensors of unknown shape."""
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        return tf.bitcast(x, dtype)
    return ops.view(x, dtype)


_INT32_MIN = -(2**31)


def _to_rows(x, mode, channel_axis):
    """Move ``x`` to a canonical layout whose rows are the top-k groups of ``mode``.

    Returns (rows, restore) where ``restore(y_rows)`` maps a tensor shaped like ``rows``
    back to the layout and shape of ``x``. The row length is static where the input shape
    is (so a TensorFlow graph with an unknown batch size keeps it), else a run-time value
    (unknown spatial sizes).
    """
    rank = len(x.shape)
    if mode == "global":
        shape = ops.shape(x)
        return ops.reshape(x, (-1, _row_size(x, 1))), lambda y: ops.reshape(y, shape)
    channel_axis = channel_axis % rank
    if mode == "spatial":
        # Channels last, one row per (sample, location).
        moved = ops.moveaxis(x, channel_axis, -1) if channel_axis != rank - 1 else x
        moved_shape = ops.shape(moved)
        rows = ops.reshape(moved, (-1, _row_size(moved, rank - 1)))

        def restore(y):
            y = ops.reshape(y, moved_shape)
            return ops.moveaxis(y, -1, channel_axis) if channel_axis != rank - 1 else y

        return rows, restore
    # mode == "channel": channels at axis 1, one row per (sample, channel).
    moved = ops.moveaxis(x, channel_axis, 1) if channel_axis != 1 else x
    moved_shape = ops.shape(moved)
    rows = ops.reshape(moved, (-1, _row_size(moved, 2)))

    def restore(y):
        y = ops.reshape(y, moved_shape)
        return ops.moveaxis(y, 1, channel_axis) if channel_axis != 1 else y

    return rows, restore


def _row_size(x, first_axis):
    """The product of ``x``'s dimensions from ``first_axis`` on: a Python int when they are
    all static, else a scalar tensor (TensorFlow graphs with unknown spatial sizes)."""
    dims = x.shape[first_axis:]
    if all(d is not None for d in dims):
        size = 1
        for d in dims:
            size *= d
        return size
    shape = ops.shape(x)
    size = 1
    for axis, d in enumerate(dims, start=first_axis):
        size = size * (d if d is not None else shape[axis])
    return size


def _length(rows):
    """The row length of a 2-D ``rows``: static if known, else a scalar tensor."""
    return rows.shape[-1] if rows.shape[-1] is not None else ops.shape(rows)[-1]


def global_topk(x, keep_ratio, mode="global", channel_axis=-1):
    """Keep the k = ceil(r*D) largest entries of each group of ``x``, zero the rest.

    Groups by ``mode``: ``"global"`` — all non-batch entries of a sample (D = C*H*W);
    ``"channel"`` — each channel of a sample over its spatial positions (D = H*W);
    ``"spatial"`` — each spatial location over its channels (D = C).

    Ties: every entry equal to the k-th largest value is kept, so with tied values at the
    threshold more than k entries can survive (never fewer). Gradients flow through kept
    entries only. ``r == 1`` keeps every entry (an exact identity).
    """
    torch_backend = keras.backend.backend() == "torch"
    layout = _memory_order_rows_torch(x) if torch_backend and mode == "global" else None
    rows, restore = layout or _to_rows(x, mode, channel_axis)
    size = _length(rows)
    k = keep_count(keep_ratio, size)
    if torch_backend:
        return _global_topk_torch(x, rows, restore, k)

    # Fast exits, exact under the tie policy above: with k == D every entry is kept; and
    # when no entry is negative and every row has fewer than k non-zeros (often the case
    # after ReLU), the k-th largest is 0, so again every entry is kept. Either way the
    # result is ``x`` itself, with gradient 1 everywhere, as the select would give. A
    # run-time ``cond`` (lax.cond / tf.cond), so a new r never retraces. The positives
    # counted for the exit are reused by the selection.
    def unless_few_nonzeros():
        nonnegative = ops.min(rows) >= 0
        positives = _positives(rows)
        few = ops.logical_and(nonnegative, ops.max(positives) < k)

        def select():
            # Positives are only meaningful without negatives; size + 1 marks "unknown".
            known = ops.where(nonnegative, positives, size + 1)
            threshold = kth_largest(rows, k, known)
            # (">=": a NaN entry is dropped here. "where(rows < t, 0, rows)" would keep it,
            # as torch's masks do, but made TensorFlow's WRN-28-4 step at r = 0.5 about
            # 10 % slower, 1.12-1.13x ReLU against 1.02 (docs/benchmarks.md).)
            return restore(ops.where(rows >= threshold, rows, ops.zeros_like(rows)))

        return ops.cond(few, lambda: x, select)

    # Nested so that r == 1 costs no pass over the data at all.
    return ops.cond(k >= size, lambda: x, unless_few_nonzeros)


def relu_topk(x, keep_ratio, mode="global", channel_axis=-1):
    """``global_topk(relu(x), keep_ratio, mode, channel_axis)``: Wang 2026's sparse site
    (ReLU, then top-k), the same values, tie policy and gradients.

    Eager torch on a CPU computes it fused (:func:`_relu_topk_torch_host`: no separate
    ReLU pass forward or backward, and the selection on the pre-activations), as do
    TensorFlow graphs on a CPU (:func:`_relu_topk_tf`); every other path runs the two in
    turn (XLA fuses their elementwise parts).
    """
    backend = keras.backend.backend()
    if backend == "torch":
        layout = _memory_order_rows_torch(x) if mode == "global" else None
        rows, restore = layout or _to_rows(x, mode, channel_axis)
        if rows.numel() and rows.device.type != "meta" and _torch_host_exits(rows):
            return _relu_topk_torch_host(x, rows, restore, keep_count(keep_ratio, _length(rows)))
    elif backend == "tensorflow" and _tf_numpy_site(x):
        rows, restore = _to_rows(x, mode, channel_axis)
        return _relu_topk_tf(x, rows, restore, keep_count(keep_ratio, _length(rows)))
    return global_topk(ops.relu(x), keep_ratio, mode, channel_axis)


def _tf_numpy_selects():
    """Whether TensorFlow selects with NumPy (:func:`kth_largest_numpy`): on a machine
    without a GPU, unless tests turned it off."""
    import tensorflow as tf

    return NUMPY_CPU_SELECT and not tf.config.list_logical_devices("GPU")


def _tf_numpy_site(x):
    """Whether TensorFlow runs :func:`relu_topk` fused (:func:`_relu_topk_tf`): a graph or
    eager step (not XLA-compiled) where NumPy selects, for float inputs."""
    return (_tf_numpy_selects() and not _in_xla_tf()
            and keras.backend.standardize_dtype(x.dtype)
            in ("float16", "bfloat16", "float32", "float64"))


def _relu_topk_tf(x, rows, restore, k):
    """TensorFlow graphs on a CPU: :func:`relu_topk` as one count, one selection on the
    pre-activations and one masking pass, the count and the mask XLA-compiled
    (:func:`_tf_xla_functions`). ReLU is monotone, so the k-th largest of relu(row) is
    selected on the row itself (``kth_largest_numpy(..., relu=True)``); the mask
    ``row >= t``, with ``t`` raised to the dtype's smallest normal number, applies ReLU and
    the top-k at once, and its gradient is the site's. This replaces the separate kernels
    of ``global_topk(relu(x))``, each a pass over the data here (ReLU, the exits' min and
    sign-sum, the compare and select of the mask, ReLU's gradient): a first-group WRN-28-4
    site at r = 0.2 costs +8.5 ms over ReLU instead of +10.6 ms, forward and backward; in
    the whole step that is within this machine's noise (docs/benchmarks.md). The exits are
    as there: r == 1 and fewer than k positives in every row (often the case after ReLU
    at r >= 0.5) are plain ReLU, decided by ``tf.cond`` at run time (no retrace when r
    changes). Subnormal
    pre-activations count as 0, as they do in TensorFlow's CPU kernels (it flushes them).
    Values and gradients equal ``global_topk(relu(x))``'s (tested), a NaN pre-activation
    dropped at a selecting site as there.

    jax keeps ``global_topk(relu(x))``: XLA already fuses its elementwise passes, and the
    fused form measured no faster there (within the machine's noise, 5-8 % between runs;
    docs/benchmarks.md)."""
    import tensorflow as tf

    size = _length(rows)
    xla = _tf_xla_functions()

    def select():
        threshold = _relu_threshold_tf(rows, k)
        return restore(xla["mask"](rows, threshold, rows))

    def unless_few_positives():
        few = xla["max_positives"](rows) < tf.cast(k, tf.float32)
        return tf.cond(few, lambda: tf.nn.relu(x), select)

    return tf.cond(k >= size, lambda: tf.nn.relu(x), unless_few_positives)


_TF_XLA = {}


def _tf_xla_functions():
    """TensorFlow's site passes as XLA-compiled functions, called from the (uncompiled) graph
    around them: each is one fused pass where the graph runs two or three kernels
    (``where(x >= t, x, 0)``: 2.4 ms against 5.3 ms for 32 x 65,536 values;
    docs/benchmarks.md); TensorFlow differentiates the compiled function itself. The NumPy
    selection stays outside them (XLA cannot call it)."""
    if not _TF_XLA:
        import tensorflow as tf

        @tf.function(jit_compile=True, autograph=False, reduce_retracing=True)
        def max_positives(rows):
            # (A float32 sum of a compare: one fused pass; exact below 2**24 per row.)
            return tf.reduce_max(tf.reduce_sum(tf.cast(rows > 0, tf.float32), axis=-1))

        @tf.function(jit_compile=True, autograph=False, reduce_retracing=True)
        def mask(rows, threshold, values):
            return tf.where(rows >= threshold, values, tf.zeros_like(values))

        _TF_XLA.update(max_positives=max_positives, mask=mask)
    return _TF_XLA


def _relu_threshold_tf(rows, k):
    """The k-th largest of each row's ReLU by :func:`kth_largest_numpy` through
    ``tf.numpy_function``, at least the smallest normal number of ``rows``' dtype (a row
    with fewer than k positives keeps its positives: its ReLU); shape ``(rows, 1)``, dtype
    of ``rows``. No gradient flows through it."""
    import numpy as np
    import tensorflow as tf

    dtype = keras.backend.standardize_dtype(rows.dtype)
    host = tf.stop_gradient(rows if dtype in ("float32", "float64") else tf.cast(rows, "float32"))
    kth = tf.numpy_function(_kth_largest_relu_numpy, [host, tf.cast(k, tf.int32)], host.dtype,
                            stateful=False)
    kth = tf.cast(tf.ensure_shape(kth, [rows.shape[0], 1]), rows.dtype)
    # (bfloat16 has float32's exponent range, so float32's smallest normal number.)
    tiny = np.finfo("float32" if dtype == "bfloat16" else dtype).tiny
    return tf.maximum(kth, tf.cast(tiny, rows.dtype))


def _kth_largest_relu_numpy(rows, k):
    """:func:`kth_largest_numpy` of ``max(rows, 0)``, with 0 for a NaN result (that row's
    ReLU is then kept: negatives stay dropped)."""
    import numpy as np

    return np.fmax(kth_largest_numpy(rows, k, relu=True), 0).astype(rows.dtype, copy=False)


def rms_norm(x, scale, bias, axis=-1, epsilon=1e-10):
    """RMS normalisation over ``axis``: ``x / sqrt(mean(x**2, axis) + eps) * scale + bias``.

    ``scale`` and ``bias`` must already broadcast against ``x`` (per-channel on ``axis``).
    No mean is subtracted (Wang 2026, section 2.3).
    """
    mean_square = ops.mean(ops.square(x), axis=axis, keepdims=True)
    return x * ops.rsqrt(mean_square + epsilon) * scale + bias


def nonzero_fraction(x):
    """Fraction of entries of ``x`` that are not zero (a float32 scalar)."""
    return ops.mean(ops.cast(ops.not_equal(x, 0), "float32"))
