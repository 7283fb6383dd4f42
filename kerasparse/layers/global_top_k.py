import keras

from kerasparse import ops as ksops
from kerasparse.validation import check_axis, check_choice, check_keep_ratio, check_rank


@keras.saving.register_keras_serializable(package="kerasparse")
class GlobalTopK(keras.layers.Layer):
    """Per-sample top-k: keep the k = ceil(r * D) largest activations, zero the rest.

    Wang 2026 ("Joint Training Across Multiple Activation Sparsity Regimes", arXiv
    2603.03131), section 2.4: for each sample the activation tensor is flattened over all
    non-batch axes (D = C*H*W), the ``ceil(r * D)`` largest entries are kept and the others
    set to zero. Gradients flow through the kept entries only.

    Modes (the "k-winners-take-all" variants):

    - ``"global"``: over all non-batch entries of a sample (the paper's ``topk_mode=global``).
    - ``"channel"``: within each channel, over its spatial positions (D = H*W); rank >= 3.
    - ``"spatial"``: at each spatial location, over its channels (D = C).

    ``axis`` is the channel axis (``-1`` for channels_last, ``1`` for channels_first), used by
    the ``channel`` and ``spatial`` modes.

    The keep ratio r is the non-trainable float32 scalar variable ``layer.keep_ratio``:
    assign it (``layer.keep_ratio.assign(0.5)``) between epochs or batches and the next
    compiled step uses the new value without retracing. From a callback, reach the layer
    through ``self.model`` (on JAX this syncs the training state). It is saved with the
    weights, so a ``.keras`` file keeps the current r.

    Exactness and ties: k = max(1, ceil(r * D)) (so r == 1 is an exact identity and at least
    one entry survives). The threshold is the k-th largest value and every entry >= it is
    kept: with ties at the threshold more than k entries survive, never fewer. After ReLU the
    zeros are "kept" as zeros, so the number of non-zeros is min(k, #positive).

    Args:
        keep_ratio: initial r in (0, 1].
        mode: ``"global"``, ``"channel"`` or ``"spatial"``.
        axis: channel axis for the ``channel`` and ``spatial`` modes.
    """

    def __init__(self, keep_ratio=1.0, mode="global", axis=-1, **kwargs):
        super().__init__(**kwargs)
        name = type(self).__name__
        self.initial_keep_ratio = check_keep_ratio(name, keep_ratio)
        self.mode = check_choice(name, "mode", mode, ksops.TOPK_MODES)
        self.axis = check_axis(name, axis)
        # A scalar whose shape never depends on the input, so it is created here rather than
        # in build(): a controller can then set it before the model has been built.
        self.keep_ratio = self.add_weight(
            name="keep_ratio",
            shape=(),
            initializer=keras.initializers.Constant(self.initial_keep_ratio),
            trainable=False,
            dtype="float32",
            autocast=False,
        )

    def build(self, input_shape):
        min_rank = 3 if self.mode == "channel" else 2
        what = "(batch, ..., channels)" if self.mode != "global" else "(batch, ...)"
        check_rank(type(self).__name__, input_shape, min_rank, self.axis, what)

    def call(self, inputs):
        return ksops.global_topk(inputs, self.keep_ratio, self.mode, self.axis)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            {"keep_ratio": self.initial_keep_ratio, "mode": self.mode, "axis": self.axis}
        )
        return config
