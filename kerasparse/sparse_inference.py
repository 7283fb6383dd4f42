"""What sparse activations buy at inference (Dent & Tanner 2026, appendix F, Table 3).

A layer's input ``x`` (n entries, a fraction s of them zero) times its weights: the dense
product reads every weight; the sparse one finds the non-zero entries of ``x`` and gathers
only the matching weights. Weights are kept in Keras' ``Dense`` kernel layout, ``(n, m)``
(input x output), so "the weight columns of the non-zeros" (of the m x n matrix W = K^T) are
the contiguous *rows* of the kernel: ``y = x[idx] @ K[idx]``, idx = the non-zeros of x.

Each backend runs its own native code (the point is the backend's speed, so no Keras layer
dispatch on the timed path): JAX ``jax.jit``, PyTorch eager (``torch.inference_mode``),
TensorFlow ``tf.function``. The number of non-zeros is data-dependent: PyTorch and
TensorFlow handle the dynamic shape directly; under XLA (JAX) shapes are static, so the
count is read back to the host (a device sync) and rounded up to a bucket of
``n / BUCKETS`` entries, one compiled program per bucket (padding entries multiply a zero).

Timing (``time_pair``): warm-up calls excluded, each call synchronised the backend's way
(``block_until_ready`` on JAX, ``torch.cuda.synchronize`` on a CUDA tensor, a host copy
of the (small) result on TensorFlow), dense and sparse interleaved in one process, the
median over repeats of the mean time of a loop of calls (a loop long enough for the clock).
"""

import functools
import math
import statistics
import time

import numpy as np

# Table 3 of Dent & Tanner 2026 (custom CUDA kernel vs GEMV, GPU): speedup = dense time /
# sparse time, for an m x n matrix and a vector with a fraction s of random zeros.
GRID_M_OVER_N = (0.5, 1.0, 2.0)
GRID_N = (100, 300, 3000)
GRID_SPARSITY = (0.5, 0.8, 0.9)
PAPER_TABLE3 = {  # (m/n, n) -> speedup at s = 0.5, 0.8, 0.9
    (0.5, 100): (1.250, 1.183, 1.216), (0.5, 300): (0.806, 2.097, 2.286),
    (0.5, 3000): (0.272, 0.932, 1.637),
    (1.0, 100): (1.015, 1.208, 1.218), (1.0, 300): (0.842, 1.782, 2.181),
    (1.0, 3000): (0.454, 1.008, 2.936),
    (2.0, 100): (1.620, 2.054, 2.164), (2.0, 300): (0.879, 1.689, 2.157),
    (2.0, 3000): (0.527, 1.090, 1.883),
}
MAX_N = 100_000
MAX_ENTRIES = 1 << 28  # m * n: a 1 GiB float32 matrix
BUCKETS = 32  # JAX: static sizes in steps of ceil(n / BUCKETS)


def check_grid(m_over_n, ns, sparsities):
    """The grid's values, or ValueError naming the first one out of range."""
    for n in ns:
        if not (isinstance(n, int) and 1 <= n <= MAX_N):
            raise ValueError(f"--matvec-n values must be integers in [1, {MAX_N}]. "
                             f"Received: n={n!r}")
    for r in m_over_n:
        if not (math.isfinite(r) and r > 0):
            raise ValueError(f"--matvec-m-over-n values must be positive numbers. "
                             f"Received: m/n={r!r}")
        for n in ns:
            m = matrix_rows(r, n)
            if m < 1 or m * n > MAX_ENTRIES:
                raise ValueError(
                    f"--matvec-m-over-n x --matvec-n gives an m x n matrix of {m} x {n}; "
                    f"allowed: m >= 1 and m * n <= {MAX_ENTRIES} (1 GiB of float32). "
                    f"Received: m/n={r:g}, n={n}")
    for s in sparsities:
        if not (math.isfinite(s) and 0.0 <= s < 1.0):
            raise ValueError(f"--matvec-sparsity values must be in [0, 1). Received: s={s!r}")


def matrix_rows(m_over_n, n):
    return int(round(m_over_n * n))


def random_problem(m, n, sparsity, seed=0):
    """A kernel K (n, m) and a vector x (n,) with exactly round(s * n) zeros at random places
    (the "randomly induced sparsity" of Table 3), float32."""
    rng = np.random.default_rng(seed)
    kernel = rng.standard_normal((n, m)).astype(np.float32)
    x = rng.standard_normal(n).astype(np.float32)
    x[rng.permutation(n)[: int(round(sparsity * n))]] = 0.0
    return kernel, x


# --- per-backend kernels ----------------------------------------------------------------------


@functools.cache
def backend_ops(backend):
    """``Ops`` for ``backend`` ("jax", "torch", "tensorflow" or "numpy")."""
    return {"jax": _JaxOps, "torch": _TorchOps, "tensorflow": _TfOps, "numpy": _NumpyOps}[
        backend]()


class _NumpyOps:
    """The reference: plain NumPy, no compilation, nothing asynchronous."""

    name = "numpy"

    def put(self, a):
        return np.asarray(a)

    def sync(self, y):
        return y

    def numpy(self, y):
        return np.asarray(y)

    def dense(self, kernel, x):
        return x @ kernel

    def sparse(self, kernel, x):
        idx = np.flatnonzero(x)
        return x[idx] @ kernel[idx]

    def dense_layer(self, kernel, bias, h, act):
        return act(h @ kernel + bias)

    def sparse_layer(self, kernel, bias, h, act):
        idx = np.flatnonzero(np.any(h != 0, axis=0))
        return act(h[:, idx] @ kernel[idx] + bias)


    def jit(self, fn):
        return fn


class _JaxOps:
    name = "jax"

    def __init__(self):
        import jax
        import jax.numpy as jnp

        self.jax, self.jnp = jax, jnp
        self._dense = jax.jit(lambda k, x: x @ k)
        self._dense_layer = jax.jit(lambda k, b, h, act: act(h @ k + b), static_argnames="act")

        def gather_matvec(kernel, x, size):
            n = x.shape[0]
            idx = jnp.nonzero(x, size=size, fill_value=n)[0]  # padding: index n
            values = jnp.concatenate([x, jnp.zeros((1,), x.dtype)])[idx]  # padding -> 0
            return values @ jnp.take(kernel, idx, axis=0, mode="clip")

        def gather_layer(kernel, bias, h, size, act):
            n = h.shape[1]
            idx = jnp.nonzero(jnp.any(h != 0, axis=0), size=size, fill_value=n)[0]
            hp = jnp.concatenate([h, jnp.zeros((h.shape[0], 1), h.dtype)], axis=1)
            return act(hp[:, idx] @ jnp.take(kernel, idx, axis=0, mode="clip") + bias)

        self._gather = jax.jit(gather_matvec, static_argnames="size")
        self._gather_layer = jax.jit(gather_layer, static_argnames=("size", "act"))
        self._count = jax.jit(lambda x: jnp.count_nonzero(x))
        self._count_columns = jax.jit(lambda h: jnp.count_nonzero(jnp.any(h != 0, axis=0)))

    def put(self, a):
        return self.jax.device_put(np.asarray(a))

    def sync(self, y):
        return y.block_until_ready()

    def numpy(self, y):
        return np.asarray(y)

    @staticmethod
    def _bucket(count, n):
        step = max(1, -(-n // BUCKETS))
        return min(n, max(step, -(-count // step) * step))

    def dense(self, kernel, x):
        return self._dense(kernel, x)

    def sparse(self, kernel, x):
        # XLA needs a static size: read the count back (a sync), round it up to a bucket.
        count = int(self._count(x))
        return self._gather(kernel, x, size=self._bucket(count, x.shape[0]))

    def dense_layer(self, kernel, bias, h, act):
        return self._dense_layer(kernel, bias, h, act=act)

    def sparse_layer(self, kernel, bias, h, act):
        count = int(self._count_columns(h))
        return self._gather_layer(kernel, bias, h, size=self._bucket(count, h.shape[1]),
                                  act=act)


    def jit(self, fn):
        return self.jax.jit(fn)


class _TorchOps:
    name = "torch"

    def __init__(self):
        import torch

        self.torch = torch
        self.device = "cuda" if torch.cuda.is_available() else "cpu"

    def put(self, a):
        return self.torch.as_tensor(np.asarray(a), device=self.device)

    def sync(self, y):
        if y.is_cuda:
            self.torch.cuda.synchronize()
        return y

    def numpy(self, y):
        return y.detach().cpu().numpy()

    def dense(self, kernel, x):
        with self.torch.inference_mode():
            return x @ kernel

    def sparse(self, kernel, x):
        with self.torch.inference_mode():
            idx = self.torch.nonzero(x).squeeze(1)
            return x.index_select(0, idx) @ kernel.index_select(0, idx)

    def dense_layer(self, kernel, bias, h, act):
        with self.torch.inference_mode():
            return act(self.torch.addmm(bias, h, kernel))

    def sparse_layer(self, kernel, bias, h, act):
        with self.torch.inference_mode():
            idx = self.torch.nonzero(h.ne(0).any(0)).squeeze(1)
            return act(self.torch.addmm(bias, h.index_select(1, idx),
                                        kernel.index_select(0, idx)))


    def jit(self, fn):
        torch = self.torch

        def run(*args):
            with torch.inference_mode():
                return fn(*args)

        return run


class _TfOps:
    name = "tensorflow"

    def __init__(self):
        import tensorflow as tf

        self.tf = tf
        self._dense = tf.function(lambda k, x: tf.linalg.matvec(k, x, transpose_a=True))
        self._dense_layer = tf.function(lambda k, b, h, act: act(tf.matmul(h, k) + b),
                                        reduce_retracing=True)

        def gather_matvec(kernel, x):
            idx = tf.where(tf.not_equal(x, 0))[:, 0]
            return tf.linalg.matvec(tf.gather(kernel, idx), tf.gather(x, idx), transpose_a=True)

        def gather_layer(kernel, bias, h, act):
            idx = tf.where(tf.reduce_any(tf.not_equal(h, 0), axis=0))[:, 0]
            return act(tf.matmul(tf.gather(h, idx, axis=1), tf.gather(kernel, idx)) + bias)

        # reduce_retracing: one graph for every count of non-zeros (dynamic shapes).
        self._gather = tf.function(gather_matvec, reduce_retracing=True)
        self._gather_layer = tf.function(gather_layer, reduce_retracing=True)

    def put(self, a):
        return self.tf.constant(np.asarray(a))

    def sync(self, y):
        # TensorFlow has no block_until_ready: copying the (small) result to the host waits.
        y.numpy()
        return y

    def numpy(self, y):
        return y.numpy()

    def dense(self, kernel, x):
        return self._dense(kernel, x)

    def sparse(self, kernel, x):
        return self._gather(kernel, x)

    def dense_layer(self, kernel, bias, h, act):
        return self._dense_layer(kernel, bias, h, act)

    def sparse_layer(self, kernel, bias, h, act):
        return self._gather_layer(kernel, bias, h, act)


    def jit(self, fn):
        return self.tf.function(fn, reduce_retracing=True)


# --- timing -----------------------------------------------------------------------------------


CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


def time_pair(functions, repeats=7, warmup=3, min_seconds=2e-3, clock="wall"):
    """name -> median seconds per call of each zero-argument ``function`` (which must return
    only after the work is done): ``warmup`` calls each, then a loop length ``inner`` chosen
    so that one loop lasts at least ``min_seconds``, then ``repeats`` rounds of one loop of
    each, interleaved.

    ``clock="cpu"`` measures the process's CPU time (all its threads) instead of wall time:
    on a shared, oversubscribed CPU machine a process runs a fraction of the wall time and is
    preempted mid-loop, so wall-clock medians measure the neighbours; CPU time measures the
    work (use it with the backend held to one thread, ``--threads 1``). On a GPU only wall
    time is meaningful."""
    now = CLOCKS[clock]
    for _ in range(warmup):
        for fn in functions.values():
            fn()
    inner = 1
    for fn in functions.values():
        start = now()
        fn()
        once = max(now() - start, 1e-7)
        inner = max(inner, min(10_000, math.ceil(min_seconds / once)))
    times = {name: [] for name in functions}
    for _ in range(repeats):
        for name, fn in functions.items():
            start = now()
            for _ in range(inner):
                fn()
            times[name].append((now() - start) / inner)
    return {name: statistics.median(values) for name, values in times.items()}


def bench_matvec(backend, m_over_n=GRID_M_OVER_N, ns=GRID_N, sparsities=GRID_SPARSITY,
                 repeats=7, warmup=3, seed=0, clock="wall"):
    """Table 3 on ``backend``: one row per (m/n, n, s) with the dense and sparse median
    seconds, the speedup (dense / sparse) and the paper's speedup where the cell is in its
    grid."""
    check_grid(m_over_n, ns, sparsities)
    ops = backend_ops(backend)
    rows = []
    for r in m_over_n:
        for n in ns:
            m = matrix_rows(r, n)
            for s in sparsities:
                kernel_np, x_np = random_problem(m, n, s, seed)
                kernel, x = ops.put(kernel_np), ops.put(x_np)
                seconds = time_pair({
                    "dense": lambda: ops.sync(ops.dense(kernel, x)),
                    "sparse": lambda: ops.sync(ops.sparse(kernel, x)),
                }, repeats, warmup, clock=clock)
                paper = PAPER_TABLE3.get((float(r), n))
                rows.append({
                    "m_over_n": float(r), "n": n, "m": m, "sparsity": s,
                    "dense_us": seconds["dense"] * 1e6, "sparse_us": seconds["sparse"] * 1e6,
                    "speedup": seconds["dense"] / seconds["sparse"],
                    "paper_speedup": (paper[GRID_SPARSITY.index(s)]
                                      if paper and s in GRID_SPARSITY else None),
                })
    return rows


def format_table3(rows, sparsities=None):
    """Table 3's layout: rows m/n x n, a speedup column per s (the paper's in brackets)."""
    sparsities = sparsities or sorted({r["sparsity"] for r in rows})
    cells = {(r["m_over_n"], r["n"], r["sparsity"]): r for r in rows}
    lines = ["   m/n      n  " + "".join(f"{'s=' + format(s, 'g'):>17}" for s in sparsities)]
    seen = []
    for r in rows:
        if (r["m_over_n"], r["n"]) not in seen:
            seen.append((r["m_over_n"], r["n"]))
    for ratio, n in seen:
        parts = []
        for s in sparsities:
            row = cells.get((ratio, n, s))
            if row is None:
                parts.append(f"{'-':>17}")
                continue
            paper = row["paper_speedup"]
            parts.append(f"{row['speedup']:>9.3f}" + (f" ({paper:.3f})" if paper else " " * 8))
        lines.append(f"{ratio:>6g} {n:>6}  " + "".join(parts))
    lines.append("speedup = dense time / sparse time; (paper, CUDA kernel on a GPU)")
    return lines


# --- a whole network --------------------------------------------------------------------------


def mlp_layers(model):
    """A DeepMLP as plain arrays: [(kernel, bias, activation layer or None)], in order (the
    logits layer last, without activation)."""
    import keras

    dense = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]
    if not dense or not hasattr(model, "depth"):
        raise ValueError(
            "sparse inference needs a DeepMLP (Flatten, Dense + activation layers, Dense "
            f"logits). Received: model={model.name!r} ({type(model).__name__})")
    acts = {layer.name: layer for layer in model.layers}
    result = []
    for layer in dense:
        suffix = layer.name[len("dense"):]
        act = acts.get(f"act{suffix}") if layer.name.startswith("dense") else None
        kernel, bias = (np.asarray(keras.ops.convert_to_numpy(w)) for w in layer.weights[:2])
        result.append((kernel, bias, act))
    return result


class _Activation:
    """An activation layer as a function of native tensors (``layer.call``: Keras ops without
    the layer's __call__ bookkeeping), equal to any other with the same class and config, so
    the compiled per-layer programs (jax.jit static argument, tf.function) are shared by a
    network's identical activation layers instead of compiled once per layer."""

    def __init__(self, layer):
        self.layer = layer
        if layer is None:
            self.key = None
        else:
            config = {k: v for k, v in layer.get_config().items() if k != "name"}
            self.key = (type(layer).__name__, repr(sorted(config.items())))

    def __call__(self, h):
        return h if self.layer is None else self.layer.call(h)

    def __eq__(self, other):
        return isinstance(other, _Activation) and other.key == self.key

    def __hash__(self):
        return hash(self.key)


def mlp_forward(backend, layers, x, sparse):
    """Logits of the MLP ``layers`` (:func:`mlp_layers`) on ``x`` (batch, features), dense
    or exploiting the zeros of each hidden activation (the first layer's input, the data, is
    used densely)."""
    ops = backend_ops(backend)
    h = ops.put(np.asarray(x, np.float32).reshape(len(x), -1))
    for i, (kernel, bias, act) in enumerate(layers):
        layer = ops.sparse_layer if sparse and i > 0 else ops.dense_layer
        h = layer(ops.put(kernel), ops.put(bias), h, _Activation(act))
    return ops.numpy(ops.sync(h))


def bench_mlp(backend, model, x, batch_sizes=(1, 64), repeats=7, warmup=3, clock="wall"):
    """Dense inference (the whole network compiled as one program where the backend
    compiles) against inference that exploits each hidden activation's zeros layer by layer
    (the rows of the next kernel for the columns that are non-zero in any example of the
    batch), per batch size. Returns rows with the median ms, the speedup, the activation
    sparsity (mean over hidden activations of the fraction of zero entries) and the fraction
    of kernel rows skipped (columns zero in every example of the batch)."""
    ops = backend_ops(backend)
    layers = [(ops.put(k), ops.put(b), _Activation(a)) for k, b, a in mlp_layers(model)]

    def dense_forward(h):
        for kernel, bias, act in layers:
            h = ops.dense_layer(kernel, bias, h, act)
        return h

    dense_compiled = ops.jit(dense_forward)

    def sparse_forward(h):
        for i, (kernel, bias, act) in enumerate(layers):
            h = (ops.sparse_layer if i > 0 else ops.dense_layer)(kernel, bias, h, act)
        return h

    rows = []
    for batch in batch_sizes:
        xb = ops.put(np.asarray(x[:batch], np.float32).reshape(batch, -1))
        zeros, skipped = [], []
        h = xb
        for i, (kernel, bias, act) in enumerate(layers):
            if i > 0:
                hn = ops.numpy(h)
                zeros.append(float(np.mean(hn == 0)))
                skipped.append(float(np.mean(np.all(hn == 0, axis=0))))
            h = ops.dense_layer(kernel, bias, h, act)
        seconds = time_pair({
            "dense": lambda: ops.sync(dense_compiled(xb)),
            "sparse": lambda: ops.sync(sparse_forward(xb)),
        }, repeats, warmup, clock=clock)
        rows.append({
            "batch": batch, "dense_ms": seconds["dense"] * 1e3,
            "sparse_ms": seconds["sparse"] * 1e3, "speedup": seconds["dense"] / seconds["sparse"],
            "activation_sparsity": statistics.fmean(zeros),
            "rows_skipped": statistics.fmean(skipped),
        })
    return rows
