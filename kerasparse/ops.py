"""The math behind kerasparse's layers, as pure ``keras.ops`` functions.

The layers in :mod:`kerasparse.layers` are thin wrappers around these functions, so the same
code runs on JAX, PyTorch and TensorFlow, eager or compiled.
"""

from keras import ops

TOPK_MODES = ("global", "channel", "spatial")

# k = ceil(r * D) is evaluated in float32 (the keep ratio is a float32 variable). float32(0.1) is
# 0.10000000149..., so 0.1 * 1000 would give ceil(100.0000015) = 101. Values within a relative
# 2**-20 above an integer are treated as that integer; this changes k only for keep ratios
# that are within one float32 rounding of an exact fraction of D.
_K_REL_TOL = 2.0**-20


def keep_count(keep_ratio, size):
    """Number of entries kept by top-k: ``k = clip(ceil(r * size), 1, size)`` (int32 tensor).

    Args:
        keep_ratio: scalar (Python float, or a tensor/variable) r in (0, 1].
        size: the number of entries D the top-k runs over (a Python int).
    """
    r = ops.cast(keep_ratio, "float32")
    k = ops.ceil(r * float(size) - float(size) * _K_REL_TOL)
    return ops.cast(ops.clip(k, 1.0, float(size)), "int32")


def kth_largest(rows, k):
    """The k-th largest value of each row of a 2-D tensor, shape ``(rows, 1)``.

    ``k`` is an int32 scalar tensor (it may come from a variable: nothing here needs it
    static, so a compiled step does not retrace when it changes).
    """
    n = rows.shape[-1]
    ascending = ops.sort(rows, axis=-1)
    return ops.take(ascending, ops.reshape(n - k, (1,)), axis=1)


def _to_rows(x, mode, channel_axis):
    """Move ``x`` to a canonical layout whose rows are the top-k groups of ``mode``.

    Returns (rows, restore) where ``restore(y_rows)`` maps a tensor shaped like ``rows``
    back to the layout and shape of ``x``.
    """
    rank = len(x.shape)
    if mode == "global":
        shape = ops.shape(x)
        return ops.reshape(x, (shape[0], -1)), lambda y: ops.reshape(y, shape)
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
    k = keep_count(keep_ratio, rows.shape[-1])
    threshold = ops.stop_gradient(kth_largest(rows, k))
    kept = ops.where(rows >= threshold, rows, ops.zeros_like(rows))
    return restore(kept)


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
