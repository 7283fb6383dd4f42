import keras
from keras import ops

from kerasparse import ops as ksops
from kerasparse.validation import check_axis, check_number, check_rank


@keras.saving.register_keras_serializable(package="kerasparse")
class RMSNorm2D(keras.layers.Layer):
    """RMS normalisation over the channel axis at every spatial location.

    Wang 2026 (arXiv 2603.03131), section 2.3:

        y = x / sqrt(mean_c(x**2) + epsilon) * scale + bias

    with no mean subtraction, the mean taken over the channels of each location (for rank-2
    inputs, over the features), and a learnable per-channel ``scale`` (ones) and ``bias``
    (zeros). No batch statistics are used. Computed in float32 and cast back to the layer's
    compute dtype (``bfloat16`` inputs work under ``mixed_bfloat16``).

    Args:
        epsilon: added to the mean square (paper: 1e-10), > 0.
        axis: the channel axis: ``-1`` (channels_last, or rank-2 features) or ``1``
            (channels_first).
    """

    def __init__(self, epsilon=1e-10, axis=-1, **kwargs):
        super().__init__(**kwargs)
        name = type(self).__name__
        self.epsilon = check_number(name, "epsilon", epsilon, low=0.0, low_open=True)
        self.axis = check_axis(name, axis)

    def build(self, input_shape):
        axis = check_rank(
            type(self).__name__, input_shape, 2, self.axis, "(batch, ..., channels)"
        )
        channels = input_shape[axis]
        if channels is None:
            raise ValueError(
                "RMSNorm2D needs a known channel dimension. "
                f"Received: input_shape={tuple(input_shape)} with axis={self.axis}"
            )
        self._broadcast_shape = [1] * len(input_shape)
        self._broadcast_shape[axis] = channels
        self.scale = self.add_weight(
            name="scale", shape=(channels,), initializer="ones", autocast=False
        )
        self.bias = self.add_weight(
            name="bias", shape=(channels,), initializer="zeros", autocast=False
        )

    def call(self, inputs):
        x = ops.cast(inputs, "float32")
        scale = ops.reshape(ops.cast(self.scale, "float32"), self._broadcast_shape)
        bias = ops.reshape(ops.cast(self.bias, "float32"), self._broadcast_shape)
        y = ksops.rms_norm(x, scale, bias, axis=self.axis, epsilon=self.epsilon)
        return ops.cast(y, self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update({"epsilon": self.epsilon, "axis": self.axis})
        return config
