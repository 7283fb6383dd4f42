import keras

from kerasparse import layers as kslayers
from kerasparse import presets
from kerasparse.models._common import activation_site, check_input_shape, serialize_initializer
from kerasparse.validation import check_choice, check_keep_ratio, check_number, check_positive_int

NORMS = ("rmsnorm", "batchnorm", "none")
DATA_FORMATS = ("channels_last", "channels_first")


def wrn_kernel_initializer():
    """The WRN reference initialisation: N(0, 2 / fan_out) (Kaiming normal, mode fan_out).

    Zagoruyko & Komodakis' code and the common PyTorch WRN use
    ``kaiming_normal_(mode="fan_out", nonlinearity="relu")`` for the convolutions.
    """
    return keras.initializers.VarianceScaling(
        scale=2.0, mode="fan_out", distribution="untruncated_normal"
    )


def apply_norm(x, norm, channel_axis, epsilon, name):
    """The block's normalisation: RMSNorm2D (Wang 2026 section 2.3), BatchNorm, or nothing."""
    if norm == "rmsnorm":
        return kslayers.RMSNorm2D(epsilon=epsilon, axis=channel_axis, name=name)(x)
    if norm == "batchnorm":
        return keras.layers.BatchNormalization(axis=channel_axis, name=name)(x)
    return x


def apply_conv(x, filters, kernel_size, stride, data_format, kernel_initializer, name):
    """A bias-free ``same``-padded convolution (the norm that follows or precedes supplies
    the shift, as in the reference WRN)."""
    return keras.layers.Conv2D(
        filters,
        kernel_size,
        strides=stride,
        padding="same",
        use_bias=False,
        data_format=data_format,
        kernel_initializer=keras.initializers.get(kernel_initializer),
        name=name,
    )(x)


def apply_block(
    x,
    filters,
    stride,
    *,
    site,
    norm,
    channel_axis,
    epsilon,
    data_format,
    kernel_initializer,
    name,
):
    """One pre-activation basic block: norm -> act -> conv3x3 -> norm -> act -> conv3x3.

    ``site(name)`` makes a fresh activation site layer. Where the number of channels or the
    stride changes, the shortcut is a 1x1 projection of the pre-activated input (as in the
    reference WRN code); otherwise it is the identity.
    """
    in_channels = x.shape[channel_axis]
    project = in_channels != filters or stride != 1
    out = apply_norm(x, norm, channel_axis, epsilon, f"{name}_norm1")
    out = site(f"{name}_act1")(out)
    shortcut = x
    if project:
        shortcut = apply_conv(
            out, filters, 1, stride, data_format, kernel_initializer, f"{name}_shortcut"
        )
    out = apply_conv(out, filters, 3, stride, data_format, kernel_initializer, f"{name}_conv1")
    out = apply_norm(out, norm, channel_axis, epsilon, f"{name}_norm2")
    out = site(f"{name}_act2")(out)
    out = apply_conv(out, filters, 3, 1, data_format, kernel_initializer, f"{name}_conv2")
    return keras.layers.Add(name=f"{name}_add")([shortcut, out])


@keras.saving.register_keras_serializable(package="kerasparse")
class WideResNet(keras.Model):
    """Pre-activation Wide Residual Network with sparse activation sites (Wang 2026, 2.2).

    A 3x3 stem convolution (16 channels); three groups of ``(depth - 4) / 6`` basic blocks
    with ``16 * width``, ``32 * width`` and ``64 * width`` channels and strides 1, 2, 2; then
    norm -> activation site -> global average pooling -> dense logits. Each block is
    norm -> site -> conv3x3 -> norm -> site -> conv3x3 with a 1x1 projection shortcut where
    the shape changes. Convolutions have no bias. WRN-28-4 with RMSNorm has
    5,849,050 trainable parameters (the paper's 5.85 M); its 25 activation sites are
    ``SparseActivation`` layers named ``group{g}_block{b}_act{1,2}`` and ``final_act``.

    The config is the constructor's arguments, so ``get_config``/``from_config`` and
    ``.keras`` files rebuild the same model.

    Args:
        depth: 6n + 4 (10, 16, 22, 28, ...).
        width: the widening factor k (a positive integer).
        num_classes: number of logits.
        input_shape: ``(height, width, channels)`` of the *data*, always channels-last.
        norm: ``"rmsnorm"`` (the paper's RMSNorm2D, default), ``"batchnorm"`` or ``"none"``.
        activation: the site's nonlinearity: ``"relu"`` (the paper), ``"crelu"`` or
            ``"cst"`` (with ``activation_params`` ``{"tau": ..., "m": ...}``), or any Keras
            activation name.
        activation_params: parameters of a kerasparse activation, e.g. ``{"tau": 0.5,
            "m": 2.0}``.
        topk: ``True`` (default): every site is a ``SparseActivation`` (activation, then
            per-sample top-k with ``keep_ratio``). ``False``: plain activation layers, the
            paper's dense baseline without the top-k cost.
        keep_ratio: the sites' initial keep ratio r in (0, 1].
        topk_mode: ``"global"`` (the paper), ``"channel"`` or ``"spatial"``.
        epsilon: RMSNorm2D's epsilon (paper: 1e-10).
        data_format: ``"channels_last"`` (default) or ``"channels_first"``. The model always
            takes channels-last data; with ``channels_first`` it transposes once at the
            input and runs every layer in NCHW (same weights, same outputs).
        kernel_initializer: for the convolutions; default N(0, 2/fan_out) as the reference
            WRN (``None`` means that default).
        name: the model's name.
    """

    def __init__(
        self,
        depth=28,
        width=4,
        num_classes=10,
        input_shape=(32, 32, 3),
        norm="rmsnorm",
        activation="relu",
        activation_params=None,
        topk=True,
        keep_ratio=1.0,
        topk_mode="global",
        epsilon=1e-10,
        data_format="channels_last",
        kernel_initializer=None,
        name="wide_resnet",
        **kwargs,
    ):
        owner = "WideResNet"
        depth = check_positive_int(owner, "depth", depth)
        if depth < 10 or (depth - 4) % 6:
            raise ValueError(
                f"{owner}: depth must be 6n + 4 with n >= 1 (10, 16, 22, 28, ...). "
                f"Received: depth={depth}"
            )
        width = check_positive_int(owner, "width", width)
        num_classes = check_positive_int(owner, "num_classes", num_classes)
        input_shape = check_input_shape(owner, input_shape, rank=3)
        check_choice(owner, "norm", norm, NORMS)
        check_choice(owner, "data_format", data_format, DATA_FORMATS)
        keep_ratio = check_keep_ratio(owner, keep_ratio)
        epsilon = check_number(owner, "epsilon", epsilon, low=0.0, low_open=True)
        activation_params = dict(activation_params or {})
        channel_axis = -1 if data_format == "channels_last" else 1
        site = activation_site(
            activation, activation_params, topk, keep_ratio, topk_mode, channel_axis, owner
        )
        init = kernel_initializer if kernel_initializer is not None else wrn_kernel_initializer()
        init = serialize_initializer(init)

        inputs = keras.Input(shape=input_shape, name="images")
        x = inputs
        if data_format == "channels_first":
            x = keras.layers.Permute((3, 1, 2), name="to_channels_first")(x)
        x = apply_conv(x, 16, 3, 1, data_format, init, "stem_conv")
        blocks = (depth - 4) // 6
        for group, (filters, stride) in enumerate(
            ((16 * width, 1), (32 * width, 2), (64 * width, 2)), start=1
        ):
            for block in range(1, blocks + 1):
                x = apply_block(
                    x,
                    filters,
                    stride if block == 1 else 1,
                    site=site,
                    norm=norm,
                    channel_axis=channel_axis,
                    epsilon=epsilon,
                    data_format=data_format,
                    kernel_initializer=init,
                    name=f"group{group}_block{block}",
                )
        x = apply_norm(x, norm, channel_axis, epsilon, "final_norm")
        x = site("final_act")(x)
        x = keras.layers.GlobalAveragePooling2D(data_format=data_format, name="pool")(x)
        outputs = keras.layers.Dense(num_classes, name="logits")(x)
        super().__init__(inputs=inputs, outputs=outputs, name=name, **kwargs)

        self.depth = depth
        self.width = width
        self.num_classes = num_classes
        self.data_input_shape = input_shape
        self.norm = norm
        self.activation = activation
        self.activation_params = activation_params
        self.topk = bool(topk)
        self.initial_keep_ratio = keep_ratio
        self.topk_mode = topk_mode
        self.epsilon = epsilon
        self.data_format = data_format
        self.kernel_initializer = kernel_initializer

    @staticmethod
    def count_parameters(**arguments):
        """The number of trainable weights these arguments give, without building the model
        (the closed form in :mod:`kerasparse.presets`, used by ``kerasparse models``; tested
        against the built model). Not counted: BatchNorm's moving statistics and the sites'
        keep-ratio scalars."""
        return presets.BUILDERS["WideResNet"].count(**arguments)

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "depth": self.depth,
            "width": self.width,
            "num_classes": self.num_classes,
            "input_shape": list(self.data_input_shape),
            "norm": self.norm,
            "activation": self.activation,
            "activation_params": dict(self.activation_params),
            "topk": self.topk,
            "keep_ratio": self.initial_keep_ratio,
            "topk_mode": self.topk_mode,
            "epsilon": self.epsilon,
            "data_format": self.data_format,
            "kernel_initializer": self.kernel_initializer
            if self.kernel_initializer is None
            else serialize_initializer(self.kernel_initializer),
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)
