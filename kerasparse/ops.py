"""The math behind kerasparse's layers, as pure ``keras.ops`` functions.

The layers in :mod:`kerasparse.layers` are thin wrappers around these functions, so the same
code runs on JAX, PyTorch and TensorFlow, eager or compiled.
"""

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
        size: the number of entries D the top-k runs over (a Python int).
    """
    r = ops.cast(keep_ratio, "float32")
    rd = r * float(size)
    # The tolerance is relative to r * D (not to D): an absolute D * 2**-20 would turn
    # r * D = 1.05 into k = 1 for D = 100,000.
    k = ops.ceil(rd - rd * _K_REL_TOL)
    return ops.cast(ops.clip(k, 1.0, float(size)), "int32")


def kth_largest(rows, k):
    """The k-th largest value of each row of a 2-D tensor, shape ``(rows, 1)``.

    ``k`` is an int32 scalar tensor (it may come from a variable: nothing here needs it
    static, so a compiled step does not retrace when it changes). No gradient flows through
    the result (it is a selection threshold). No full sort is done: see
    :func:`_kth_largest_rows` for the per-backend selection.
    """
    return ops.stop_gradient(_kth_largest_rows(ops.stop_gradient(rows), k))


def _kth_largest_rows(rows, k):
    """Per-backend fast path behind :func:`kth_largest` (the only backend-specific code).

    A full sort of each row (O(D log D), 65,536 values per sample in WRN-28-4's first
    group) costs more than the convolutions around it, so each backend uses its cheapest
    exact selection that accepts a ``k`` known only at run time:

    - torch (Keras runs it eagerly): ``torch.topk`` with ``k`` read as a Python int.
    - tensorflow in a graph (Keras' default on CPU): ``tf.math.top_k``, which takes a tensor
      ``k``; under XLA (Keras' default on GPU) ``k`` must be a compile-time constant there,
      so XLA-compiled steps use the radix select below.
    - jax, XLA-compiled tensorflow and any other backend: :func:`_kth_largest_radix` in
      keras.ops (``lax.top_k`` needs a static ``k``; a sort is 40x slower on CPU).

    Every path returns the exact k-th largest value (same tie policy), shape ``(rows, 1)``,
    in the dtype of ``rows``.
    """
    backend = keras.backend.backend()
    n = rows.shape[-1]
    if backend == "torch":
        import torch

        with torch.no_grad():
            k_int = int(k)
            if 2 * k_int > n + 1:
                # topk's cost grows with the number selected: take the smallest n-k+1
                # instead (the k-th largest is the (n-k+1)-th smallest).
                values = torch.topk(rows, n - k_int + 1, dim=-1, largest=False, sorted=False)
                return values.values.amax(dim=-1, keepdim=True)
            values = torch.topk(rows, k_int, dim=-1, sorted=False).values
            return values.amin(dim=-1, keepdim=True)
    if backend == "tensorflow":
        import tensorflow as tf
        from tensorflow.python.ops import control_flow_util

        graph = tf.compat.v1.get_default_graph()
        if tf.executing_eagerly() or not control_flow_util.GraphOrParentsInXlaContext(graph):
            x = rows if rows.dtype in (tf.float32, tf.float64) else tf.cast(rows, tf.float32)
            take_smallest = 2 * k > n + 1
            # As for torch: select the fewer of the k largest or the n-k+1 smallest.
            count = tf.where(take_smallest, n - k + 1, k)
            signed = tf.where(take_smallest, -x, x)
            values = tf.math.top_k(signed, count, sorted=False).values
            smallest_kept = tf.reduce_min(values, axis=-1, keepdims=True)
            return tf.cast(tf.where(take_smallest, -smallest_kept, smallest_kept), rows.dtype)
    return _kth_largest_radix(rows, k)


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
    bits = ops.view(x, "int32")
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
    return ops.cast(ops.view(bits, "float32"), rows.dtype)


_INT32_MIN = -(2**31)


def _to_rows(x, mode, channel_axis):
    """Move ``x`` to a canonical layout whose rows are the top-k groups of ``mode``.

    Returns (rows, restore) where ``restore(y_rows)`` maps a tensor shaped like ``rows``
    back to the layout and shape of ``x``.
    """
    rank = len(x.shape)
    if mode == "global":
        shape = ops.shape(x)
        # A static row length even when the batch size is unknown (TensorFlow graphs).
        return ops.reshape(x, (-1, _static_size(x.shape[1:]))), lambda y: ops.reshape(y, shape)
    channel_axis = channel_axis % rank
    if mode == "spatial":
        # Channels last, one row per (sample, location).
        moved = ops.moveaxis(x, channel_axis, -1) if channel_axis != rank - 1 else x
        moved_shape = ops.shape(moved)
        rows = ops.reshape(moved, (-1, moved.shape[-1]))

        def restore(y):
            y = ops.reshape(y, moved_shape)
            return ops.moveaxis(y, -1, channel_axis) if channel_axis != rank - 1 else y

        return rows, restore
    # mode == "channel": channels at axis 1, one row per (sample, channel).
    moved = ops.moveaxis(x, channel_axis, 1) if channel_axis != 1 else x
    moved_shape = ops.shape(moved)
    rows = ops.reshape(moved, (-1, _static_size(moved.shape[2:])))

    def restore(y):
        y = ops.reshape(y, moved_shape)
        return ops.moveaxis(y, 1, channel_axis) if channel_axis != 1 else y

    return rows, restore


def _static_size(shape):
    size = 1
    for d in shape:
        size *= d
    return size


def global_topk(x, keep_ratio, mode="global", channel_axis=-1):
    """Keep the k = ceil(r*D) largest entries of each group of ``x``, zero the rest.

    Groups by ``mode``: ``"global"`` — all non-batch entries of a sample (D = C*H*W);
    ``"channel"`` — each channel of a sample over its spatial positions (D = H*W);
    ``"spatial"`` — each spatial location over its channels (D = C).

    Ties: every entry equal to the k-th largest value is kept, so with tied values at the
    threshold more than k entries can survive (never fewer). Gradients flow through kept
    entries only. ``r == 1`` keeps every entry (an exact identity).
    """
    rows, restore = _to_rows(x, mode, channel_axis)
    size = rows.shape[-1]
    k = keep_count(keep_ratio, size)

    def select():
        threshold = kth_largest(rows, k)
        return restore(ops.where(rows >= threshold, rows, ops.zeros_like(rows)))

    # Fast exits, exact under the tie policy above: with k == D every entry is kept; and
    # when no entry is negative and every row has fewer than k non-zeros (often the case
    # after ReLU), the k-th largest is 0, so again every entry is kept. Either way the
    # result is ``x`` itself, with gradient 1 everywhere, as the select would give. A
    # run-time ``cond`` (lax.cond / tf.cond / Python on torch), so a new r never retraces.
    def unless_few_nonzeros():
        rows_nonzero = ops.sum(ops.cast(ops.not_equal(rows, 0), "int32"), axis=-1)
        few = ops.logical_and(ops.min(rows) >= 0, ops.max(rows_nonzero) < k)
        return ops.cond(few, lambda: x, select)

    # Nested so that r == 1 costs no pass over the data at all.
    return ops.cond(k >= size, lambda: x, unless_few_nonzeros)


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
