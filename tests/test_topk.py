"""GlobalTopK and SparseActivation (Wang 2026, section 2.4) against a NumPy top-k reference:
exact counts, values, gradients, the tie policy, the keep-ratio variable inside compiled steps
and inside ``model.fit``, and argument checks."""

import math

import keras
import numpy as np
import pytest
from keras import ops

import reference as ref
from autodiff import grad_of_weighted_sum
from conftest import BACKEND, to_numpy
from kerasparse import layers

RATIOS = [1.0, 0.5, 0.1, 1e-6]

# (shape, mode, axis); D for channel mode is H*W, for spatial mode C, for global C*H*W.
# D values (40, 120, 30, 20, 6, 5) make ceil(r*D) insensitive to float32 rounding of r.
LAYOUTS = [
    ((3, 40), "global", -1),
    ((2, 4, 5, 6), "global", -1),
    ((2, 4, 5, 6), "channel", -1),  # channels_last: C=6, D=H*W=20
    ((2, 6, 4, 5), "channel", 1),  # channels_first: C=6, D=20
    ((2, 5, 6), "channel", -1),  # rank 3 (batch, length, channels): D=5
    ((2, 4, 5, 6), "spatial", -1),  # D=C=6
    ((2, 6, 4, 5), "spatial", 1),  # D=C=6
    ((3, 30), "spatial", -1),  # rank 2: the features are the channels
]
LAYOUT_IDS = [f"{m}-{'x'.join(map(str, s))}-axis{a}" for s, m, a in LAYOUTS]


def _group_counts(mask, mode, axis):
    rows, _ = ref._groups(mask, mode, axis)
    return rows.sum(axis=1)


@pytest.mark.parametrize("shape, mode, axis", LAYOUTS, ids=LAYOUT_IDS)
@pytest.mark.parametrize("r", RATIOS)
def test_keeps_exactly_ceil_r_d_per_group(rng, shape, mode, axis, r):
    x = ref.tie_free(rng, shape)
    y = to_numpy(layers.GlobalTopK(keep_ratio=r, mode=mode, axis=axis)(x))
    d = ref.group_size(shape, mode, axis)
    k = ref.keep_count(r, d)
    assert k == max(1, math.ceil(r * d))
    counts = _group_counts(y != 0, mode, axis)
    np.testing.assert_array_equal(counts, np.full_like(counts, k))
    np.testing.assert_array_equal(y, ref.topk(x, r, mode, axis))


@pytest.mark.parametrize("shape, mode, axis", LAYOUTS[1::2], ids=LAYOUT_IDS[1::2])
def test_gradient_flows_through_kept_entries_only(rng, shape, mode, axis):
    x = ref.tie_free(rng, shape)
    w = rng.normal(size=shape).astype(np.float32)
    layer = layers.GlobalTopK(keep_ratio=0.3, mode=mode, axis=axis)
    y, grad = grad_of_weighted_sum(layer, x, w)
    mask = ref.topk_mask(x, 0.3, mode, axis)
    np.testing.assert_array_equal(y, np.where(mask, x, 0))
    np.testing.assert_array_equal(grad, np.where(mask, w, 0))


def test_keep_ratio_one_is_an_exact_identity(rng):
    # Ties, zeros, negatives and repeated values: r == 1 must still return x unchanged,
    # with gradient 1 everywhere.
    x = rng.integers(-3, 4, size=(4, 3, 3, 5)).astype(np.float32)
    for mode in ("global", "channel", "spatial"):
        y = to_numpy(layers.GlobalTopK(1.0, mode=mode)(x))
        np.testing.assert_array_equal(y, x)
    w = rng.normal(size=x.shape).astype(np.float32)
    y, grad = grad_of_weighted_sum(layers.GlobalTopK(1.0), x, w)
    np.testing.assert_array_equal(y, x)
    np.testing.assert_array_equal(grad, w)


def test_keeps_at_least_one_entry(rng):
    x = ref.tie_free(rng, (4, 50))
    y = to_numpy(layers.GlobalTopK(keep_ratio=1e-9)(x))
    np.testing.assert_array_equal((y != 0).sum(axis=1), [1, 1, 1, 1])
    np.testing.assert_array_equal(y.max(axis=1), x.max(axis=1))


def test_float32_keep_ratio_tolerance():
    # r = 0.1 is stored as the float32 0.10000000149..., so float32 r * 1000 is a hair above
    # 100. The documented policy (ops.keep_count) treats it as the exact fraction: k = 100.
    assert float(np.float32(0.1)) * 1000 > 100
    x = np.arange(1, 1001, dtype=np.float32)[None, ::-1].copy()
    y = to_numpy(layers.GlobalTopK(keep_ratio=0.1)(x))
    assert int((y != 0).sum()) == 100
    np.testing.assert_array_equal(y[0, :100], x[0, :100])


@pytest.mark.parametrize(
    "r, d",
    [
        # r * D is 0.05 above an integer: far (over 10^4 float32 ulps) from any rounding
        # effect of storing r in float32, so k = ceil(r * D) is unambiguous.
        (1.05e-5, 100_000),  # ceil(1.05) = 2
        (0.5000005, 100_000),  # ceil(50000.05) = 50001
    ],
)
def test_keep_count_is_exact_for_large_groups(r, d):
    expected = math.ceil(r * d)
    r32 = float(np.float32(r))
    assert math.ceil(r32 * d) == expected and abs(r32 * d - round(r32 * d)) > 0.04
    x = np.arange(1, d + 1, dtype=np.float32)[None, ::-1].copy()
    y = to_numpy(layers.GlobalTopK(keep_ratio=r)(x))
    assert int((y != 0).sum()) == expected


def test_tie_policy_keeps_every_entry_tied_at_the_threshold():
    # Documented: the threshold is the k-th largest value and every entry >= it is kept, so
    # ties at the threshold keep more than k entries, never fewer.
    x = np.array([[3.0, 2.0, 2.0, 2.0, 1.0], [5.0, 4.0, 3.0, 2.0, 1.0]], np.float32)
    y = to_numpy(layers.GlobalTopK(keep_ratio=0.4)(x))  # k = 2
    np.testing.assert_array_equal(y, [[3, 2, 2, 2, 0], [5, 4, 0, 0, 0]])


def test_ties_never_keep_fewer_than_k_and_never_drop_a_larger_entry(rng):
    x = rng.integers(0, 4, size=(6, 3, 3, 4)).astype(np.float32) + 1  # many ties, no zeros
    for mode, axis in [("global", -1), ("channel", -1), ("spatial", 1)]:
        y = to_numpy(layers.GlobalTopK(0.3, mode=mode, axis=axis)(x))
        rows, _ = ref._groups(x, mode, axis)
        out, _ = ref._groups(y, mode, axis)
        k = ref.keep_count(0.3, rows.shape[1])
        assert ((out != 0).sum(axis=1) >= k).all()
        np.testing.assert_array_equal(out[out != 0], rows[out != 0])  # kept values unchanged
        smallest_kept = np.where(out != 0, rows, np.inf).min(axis=1)
        largest_dropped = np.where(out == 0, rows, -np.inf).max(axis=1)
        assert (smallest_kept >= largest_dropped).all()


# --- SparseActivation: the nonlinearity, then top-k -------------------------------------------


def test_sparse_activation_relu_matches_reference(rng):
    x = rng.normal(size=(4, 3, 3, 8)).astype(np.float32)
    for r in (0.05, 0.3, 0.9):  # 0.9: more than the positives, the zeros stay zeros
        y = to_numpy(layers.SparseActivation("relu", keep_ratio=r)(x))
        relu = np.maximum(x, 0)
        np.testing.assert_array_equal(y, ref.topk(relu, r))
        k = ref.keep_count(r, 72)
        np.testing.assert_array_equal(
            (y != 0).reshape(4, -1).sum(axis=1),
            np.minimum(k, (x > 0).reshape(4, -1).sum(axis=1)),
        )


def test_sparse_activation_with_a_kerasparse_activation_layer(rng):
    x = rng.uniform(-1, 1, size=(3, 40)).astype(np.float32)
    layer = layers.SparseActivation(layers.CReLU(tau=0.2, m=0.6), keep_ratio=0.25)
    # ~40% of x pass the threshold 0.2 and ~10% are clipped at m: the 10th largest lies in
    # the linear piece, so it is not tied.
    a = ref.crelu(x, 0.2, 0.6).astype(np.float32)
    y = to_numpy(layer(x))
    np.testing.assert_allclose(y, ref.topk(a, 0.25), atol=1e-6)


def test_sparse_activation_gradient(rng):
    x = ref.away_from(rng.normal(size=(3, 4, 4, 5)), [0.0], 1e-3).astype(np.float32)
    w = rng.normal(size=x.shape).astype(np.float32)
    layer = layers.SparseActivation("relu", keep_ratio=0.2, mode="spatial")
    _, grad = grad_of_weighted_sum(layer, x, w)
    mask = ref.topk_mask(np.maximum(x, 0), 0.2, "spatial", -1) & (x > 0)
    np.testing.assert_array_equal(grad, np.where(mask, w, 0))


def test_sparse_activation_callable_and_bad_activation(rng):
    x = ref.tie_free(rng, (2, 20))
    y = to_numpy(layers.SparseActivation(keras.ops.abs, keep_ratio=0.5)(x))
    np.testing.assert_array_equal(y, ref.topk(np.abs(x), 0.5))
    with pytest.raises(ValueError, match="activation='nope'"):
        layers.SparseActivation("nope")
    with pytest.raises(ValueError, match="activation='crelu'"):
        layers.SparseActivation("crelu")  # needs tau and m: pass a layer
    with pytest.raises(ValueError, match="activation=3"):
        layers.SparseActivation(3)


# --- the keep-ratio variable -----------------------------------------------------------------


def test_keep_ratio_is_a_non_trainable_float32_scalar_variable():
    layer = layers.SparseActivation(keep_ratio=0.25)
    assert isinstance(layer.keep_ratio, keras.Variable)
    assert tuple(layer.keep_ratio.shape) == () and layer.keep_ratio.dtype == "float32"
    assert not layer.keep_ratio.trainable
    assert layer.trainable_weights == []
    assert any(v is layer.keep_ratio for v in layer.non_trainable_weights)
    assert float(to_numpy(layer.keep_ratio)) == pytest.approx(0.25)


def test_assigned_keep_ratio_takes_effect_in_a_compiled_step_without_retracing(rng):
    x = ref.tie_free(rng, (4, 60))
    inputs = keras.Input((60,))
    model = keras.Model(inputs, layers.GlobalTopK(0.5, name="topk")(inputs))
    traces = []

    def count_trace(t):
        traces.append(1)  # Python runs only while tracing (jax, tensorflow)
        return t

    outputs = keras.layers.Lambda(count_trace)(model.output)
    model = keras.Model(inputs, outputs)
    for r in (0.5, 0.1, 0.75, 1e-6, 1.0):
        model.get_layer("topk").keep_ratio.assign(r)
        y = model.predict(x, batch_size=4, verbose=0)  # compiled on jax and tensorflow
        k = ref.keep_count(r, 60)
        np.testing.assert_array_equal((y != 0).sum(axis=1), [k] * 4)
        np.testing.assert_array_equal(y, ref.topk(x, r))
        if r == 0.5:
            first = len(traces)
    if BACKEND in ("jax", "tensorflow"):
        assert len(traces) == first, "predict was retraced for a new keep ratio"


class _AssignKeepRatio(keras.callbacks.Callback):
    """Sets the top-k layer's keep ratio at each epoch's start, through self.model."""

    def __init__(self, ratios, traces):
        super().__init__()
        self.ratios, self.traces, self.traces_after_epoch = ratios, traces, []

    def on_epoch_begin(self, epoch, logs=None):
        self.model.get_layer("topk").keep_ratio.assign(self.ratios[epoch])

    def on_epoch_end(self, epoch, logs=None):
        self.traces_after_epoch.append(len(self.traces))


def _nonzero_fraction(y_true, y_pred):
    return ops.mean(ops.cast(ops.not_equal(y_pred, 0), "float32"))


FIT_CASES = [("GlobalTopK", "compiled"), ("SparseActivation", "compiled"), ("GlobalTopK", "eager")]
if BACKEND == "tensorflow":
    # Keras compiles tensorflow steps with XLA only on GPUs by default ("auto"); the XLA path
    # of the top-k differs from the graph path, so it is run here explicitly too. (jax steps
    # are always XLA; torch must not use jit_compile=True.)
    FIT_CASES.append(("GlobalTopK", "xla"))


@pytest.mark.parametrize("topk_cls, step", FIT_CASES, ids=["-".join(c) for c in FIT_CASES])
def test_keep_ratio_assigned_in_fit_shows_in_the_same_run(rng, topk_cls, step):
    run_eagerly = step == "eager"
    d = 40
    ratios = [1.0, 0.35, 0.1, 1e-6]
    traces = []

    def count_trace(t):
        traces.append(1)  # Python executes here only while tracing under jax/tensorflow jit
        return t

    if topk_cls == "GlobalTopK":
        topk = layers.GlobalTopK(keep_ratio=0.8, name="topk")
    else:  # "linear": no ReLU zeros, so the non-zeros are exactly k
        topk = layers.SparseActivation("linear", keep_ratio=0.8, name="topk")
    model = keras.Sequential(
        [keras.Input((8,)), keras.layers.Dense(d), keras.layers.Lambda(count_trace), topk]
    )
    model.compile(
        optimizer=keras.optimizers.SGD(0.01),
        loss="mse",
        metrics=[_nonzero_fraction],
        run_eagerly=run_eagerly,
        jit_compile={"torch": False}.get(BACKEND, True if step == "xla" else "auto"),
    )
    x = rng.normal(size=(64, 8)).astype(np.float32)
    y = rng.normal(size=(64, d)).astype(np.float32)
    callback = _AssignKeepRatio(ratios, traces)
    history = model.fit(
        x, y, batch_size=64, epochs=len(ratios), callbacks=[callback], verbose=0, shuffle=False
    )
    expected = [ref.keep_count(r, d) / d for r in ratios]
    np.testing.assert_allclose(history.history["_nonzero_fraction"], expected, rtol=1e-6)
    assert float(to_numpy(model.get_layer("topk").keep_ratio)) == pytest.approx(ratios[-1])
    if run_eagerly or BACKEND == "torch":
        # Eager (and torch's non-jit "compiled" fit) runs the Python of every step, so there
        # is nothing to retrace; the per-epoch values above are the check.
        assert np.all(np.diff(callback.traces_after_epoch) >= 1)  # 1 step per epoch
    else:
        # jax/tensorflow trace the train step once; new keep ratios must not retrace it.
        first = callback.traces_after_epoch[0]
        assert callback.traces_after_epoch == [first] * len(ratios)


# --- bad arguments ---------------------------------------------------------------------------


@pytest.mark.parametrize("cls", [layers.GlobalTopK, layers.SparseActivation])
@pytest.mark.parametrize(
    "kwargs, bad",
    [
        ({"keep_ratio": 0.0}, "keep_ratio=0.0"),
        ({"keep_ratio": -0.5}, "keep_ratio=-0.5"),
        ({"keep_ratio": 1.5}, "keep_ratio=1.5"),
        ({"keep_ratio": float("nan")}, "keep_ratio=nan"),
        ({"keep_ratio": "0.5"}, "keep_ratio='0.5'"),
        ({"mode": "local"}, "mode='local'"),
        ({"axis": "last"}, "axis='last'"),
    ],
)
def test_bad_arguments_raise_value_error_naming_the_value(cls, kwargs, bad):
    with pytest.raises(ValueError, match=f"{cls.__name__}.*Received: {bad}") as info:
        cls(**kwargs)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    "kwargs, batch_shape, match",
    [
        ({}, (None,), r"expects inputs of rank >= 2.*Received: input_shape=\(None,\)"),
        ({"mode": "channel"}, (None, 6), r"rank >= 3.*Received: input_shape=\(None, 6\)"),
        ({"mode": "spatial", "axis": 3}, (None, 4, 6), r"Received: axis=3 for input_shape="),
        ({"mode": "channel", "axis": -4}, (None, 4, 6), r"Received: axis=-4 for input_shape="),
    ],
)
@pytest.mark.parametrize("cls", [layers.GlobalTopK, layers.SparseActivation])
def test_wrong_input_rank_or_axis_fails_in_build(cls, kwargs, batch_shape, match):
    layer = cls(**kwargs)
    with pytest.raises(ValueError, match=match):
        layer(keras.Input(batch_shape=batch_shape))
