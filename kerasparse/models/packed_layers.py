"""Layers of the packed models: N independent members' weights stacked on a leading axis.

A packed model (:class:`~kerasparse.models.PackedDeepMLP`, :class:`~kerasparse.models.PackedDeepCNN`)
trains N nets that share an architecture but not their weights, activation parameters or data
as one Keras model. Its layers hold each weight of the ordinary layer with a member axis in
front (a ``Dense`` kernel ``(fan_in, units)`` becomes ``(N, fan_in, units)``), so member i's
weights are ``variable[i]`` and nothing in the forward or backward pass mixes members.

- :class:`PackedDense`: ``(N, batch, fan_in) -> (N, batch, units)``, one batched matmul.
- :class:`PackedConv2D`: ``(batch, H, W, N * c_in) -> (batch, H, W, N * filters)``, one grouped
  convolution (``groups = N``; the member axis folded into the channels).
- :class:`MemberActivation`: an elementwise activation whose parameters (tau, m, ...) differ
  per member.
- :class:`StackedInitializer`: member i's slice drawn by member i's own initializer.
- :class:`ToMembers`, :class:`FromMembers`: the layout changes at the model's ends (the model
  takes and returns ``(batch, N, ...)``, Keras' batch-first convention).

Why a member-first ``(N, batch, features)`` layout inside the MLP: ``matmul`` with a leading
batch dimension is a single batched GEMM on every backend; ``einsum("bnf,nfo->bno")`` on the
batch-first layout measured 3x slower on JAX's CPU (it transposes around each dot).
"""

import keras
import numpy as np
from keras import ops

from kerasparse import activations as ksactivations
from kerasparse import layers as kslayers
from kerasparse.models._common import check_positive_int


@keras.saving.register_keras_serializable(package="kerasparse")
class StackedInitializer(keras.initializers.Initializer):
    """Initializes a stacked weight ``(N, *member_shape)``: slice i from ``initializers[i]``.

    Each member keeps its own initializer (e.g. its own ``EoCKernel`` with its own sigma_w^2
    and fan-in computed from the member's shape), so the stack has the distribution of N
    separately initialised layers.

    Args:
        initializers: a list of N initializers (objects, names or configs).
    """

    def __init__(self, initializers):
        if not isinstance(initializers, (list, tuple)) or not initializers:
            raise ValueError(
                "StackedInitializer: initializers must be a non-empty list. "
                f"Received: initializers={initializers!r}"
            )
        self.initializers = [keras.initializers.get(i) for i in initializers]

    def __call__(self, shape, dtype=None):
        if len(shape) < 1 or shape[0] != len(self.initializers):
            raise ValueError(
                f"StackedInitializer holds {len(self.initializers)} initializers; the shape's "
                f"first axis must be that many members. Received: shape={tuple(shape)}"
            )
        member_shape = tuple(shape[1:])
        return ops.stack([init(member_shape, dtype=dtype) for init in self.initializers])

    def get_config(self):
        return {"initializers": [keras.initializers.serialize(i) for i in self.initializers]}

    @classmethod
    def from_config(cls, config):
        return cls([keras.initializers.deserialize(i) for i in config["initializers"]])


def stacked_initializer(initializer, members):
    """A :class:`StackedInitializer` from a list of N initializers, or from one initializer
    (copied per member through its config, so copies without a fixed seed draw differently)."""
    if isinstance(initializer, StackedInitializer):
        if len(initializer.initializers) != members:
            raise ValueError(
                f"the StackedInitializer holds {len(initializer.initializers)} initializers for "
                f"{members} members. Received: initializer={initializer!r}"
            )
        return initializer
    if isinstance(initializer, (list, tuple)):
        if len(initializer) != members:
            raise ValueError(
                f"expected one initializer per member ({members}). "
                f"Received: {len(initializer)} initializers"
            )
        return StackedInitializer(list(initializer))
    config = keras.initializers.serialize(keras.initializers.get(initializer))
    return StackedInitializer([keras.initializers.deserialize(config) for _ in range(members)])


@keras.saving.register_keras_serializable(package="kerasparse")
class PackedDense(keras.layers.Layer):
    """N independent ``Dense(units)`` layers on member-first inputs ``(N, batch, fan_in)``.

    Weights: ``kernel (N, fan_in, units)``, ``bias (N, units)``; member i computes
    ``x[i] @ kernel[i] + bias[i]``, exactly what its own ``Dense`` would.

    Args:
        units: output features per member.
        members: N.
        kernel_initializer, bias_initializer: one initializer (copied per member) or a list
            of N (member i's own), e.g. the members' ``EoCKernel``.
    """

    def __init__(self, units, members, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", **kwargs):
        super().__init__(**kwargs)
        self.units = check_positive_int("PackedDense", "units", units)
        self.members = check_positive_int("PackedDense", "members", members)
        self.kernel_initializer = stacked_initializer(kernel_initializer, self.members)
        self.bias_initializer = stacked_initializer(bias_initializer, self.members)

    def build(self, input_shape):
        if len(input_shape) != 3 or input_shape[0] != self.members:
            raise ValueError(
                f"PackedDense expects inputs (members={self.members}, batch, features). "
                f"Received: input_shape={tuple(input_shape)}"
            )
        self.kernel = self.add_weight(
            name="kernel", shape=(self.members, input_shape[-1], self.units),
            initializer=self.kernel_initializer,
        )
        self.bias = self.add_weight(
            name="bias", shape=(self.members, self.units), initializer=self.bias_initializer
        )

    def call(self, inputs):
        return ops.matmul(inputs, self.kernel) + ops.expand_dims(self.bias, 1)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.units)

    def get_config(self):
        config = super().get_config()
        config.update(
            units=self.units,
            members=self.members,
            kernel_initializer=keras.initializers.serialize(self.kernel_initializer),
            bias_initializer=keras.initializers.serialize(self.bias_initializer),
        )
        return config


@keras.saving.register_keras_serializable(package="kerasparse")
class PackedConv2D(keras.layers.Layer):
    """N independent ``Conv2D(filters, kernel_size, padding)`` layers, channels-last, with
    the members folded into the channels: inputs ``(batch, H, W, N * c_in)`` whose channels
    ``[i * c_in, (i + 1) * c_in)`` are member i's, outputs likewise with ``filters`` each.

    Weights: ``kernel (N, kh, kw, c_in, filters)``, ``bias (N, filters)`` (member i's are
    ``kernel[i]``, ``bias[i]``, the shapes of its own ``Conv2D``). One grouped convolution
    (``groups = N``) computes all members: ``keras.ops.conv`` infers the groups from the
    kernel's input-channel axis; JAX, PyTorch and TensorFlow (on CPU through XLA) run it.

    Args:
        filters: output channels per member.
        members: N.
        kernel_size: int or (kh, kw).
        padding: ``"same"`` or ``"valid"``.
        kernel_initializer, bias_initializer: as :class:`PackedDense`.
    """

    def __init__(self, filters, members, kernel_size=3, padding="same",
                 kernel_initializer="glorot_uniform", bias_initializer="zeros", **kwargs):
        super().__init__(**kwargs)
        self.filters = check_positive_int("PackedConv2D", "filters", filters)
        self.members = check_positive_int("PackedConv2D", "members", members)
        if isinstance(kernel_size, (int, np.integer)):
            kernel_size = (kernel_size, kernel_size)
        self.kernel_size = tuple(int(k) for k in kernel_size)
        if padding not in ("same", "valid"):
            raise ValueError(
                f"PackedConv2D: padding must be 'same' or 'valid'. Received: padding={padding!r}"
            )
        self.padding = padding
        self.kernel_initializer = stacked_initializer(kernel_initializer, self.members)
        self.bias_initializer = stacked_initializer(bias_initializer, self.members)

    def build(self, input_shape):
        channels = input_shape[-1]
        if len(input_shape) != 4 or channels is None or channels % self.members:
            raise ValueError(
                f"PackedConv2D expects inputs (batch, H, W, members * channels) with "
                f"members={self.members}. Received: input_shape={tuple(input_shape)}"
            )
        self.kernel = self.add_weight(
            name="kernel",
            shape=(self.members, *self.kernel_size, channels // self.members, self.filters),
            initializer=self.kernel_initializer,
        )
        self.bias = self.add_weight(
            name="bias", shape=(self.members, self.filters), initializer=self.bias_initializer
        )

    def call(self, inputs):
        n, kh, kw, c_in, f = self.kernel.shape
        # (N, kh, kw, c_in, F) -> (kh, kw, c_in, N * F): output channel i * F + j is member
        # i's filter j, the grouped-convolution layout of every backend.
        kernel = ops.reshape(ops.transpose(self.kernel, (1, 2, 3, 0, 4)), (kh, kw, c_in, n * f))
        outputs = ops.conv(inputs, kernel, strides=1, padding=self.padding)
        return outputs + ops.reshape(self.bias, (n * f,))

    def compute_output_shape(self, input_shape):
        h, w = input_shape[1], input_shape[2]
        if self.padding == "valid":
            h = None if h is None else h - self.kernel_size[0] + 1
            w = None if w is None else w - self.kernel_size[1] + 1
        return (input_shape[0], h, w, self.members * self.filters)

    def get_config(self):
        config = super().get_config()
        config.update(
            filters=self.filters,
            members=self.members,
            kernel_size=list(self.kernel_size),
            padding=self.padding,
            kernel_initializer=keras.initializers.serialize(self.kernel_initializer),
            bias_initializer=keras.initializers.serialize(self.bias_initializer),
        )
        return config


@keras.saving.register_keras_serializable(package="kerasparse")
class MemberActivation(keras.layers.Layer):
    """An elementwise activation with per-member parameters.

    ``activation`` is a kerasparse activation (``"crelu"``, ``"cst"``, ...; its parameters in
    ``params`` as one list of N values per name, e.g. ``{"tau": [..], "m": [..]}``) or a
    parameter-free Keras activation (``"relu"``). ``layout`` says where the members are:
    ``"members_first"`` (inputs ``(N, ...)``, the MLP) or ``"channels"`` (the last axis holds
    N blocks of equal size, member i's block i: the CNN). Member i computes exactly what its
    own activation layer (``CReLU(tau[i], m[i])``) computes.
    """

    def __init__(self, activation, params=None, layout="members_first", **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True
        key = ksactivations.canonical_name(activation)
        params = {k: [float(v) for v in values] for k, values in (params or {}).items()}
        if key in kslayers.ACTIVATION_LAYERS:
            cls = kslayers.ACTIVATION_LAYERS[key]
            if sorted(params) != sorted(cls.param_names):
                raise ValueError(
                    f"MemberActivation: {key!r} takes params {', '.join(cls.param_names)} "
                    f"(one list of values per member each). Received: params={params!r}"
                )
            self._fn = ksactivations.ACTIVATIONS[cls.function_name]
        else:
            if params:
                raise ValueError(
                    f"MemberActivation: {activation!r} takes no params. Received: params={params!r}"
                )
            self._fn = ksactivations.get_activation(key)
        sizes = {len(v) for v in params.values()}
        if len(sizes) > 1:
            raise ValueError(
                "MemberActivation: every parameter needs one value per member. "
                f"Received: params={params!r}"
            )
        if layout not in ("members_first", "channels"):
            raise ValueError(
                "MemberActivation: layout must be 'members_first' or 'channels'. "
                f"Received: layout={layout!r}"
            )
        self.activation = key
        self.params = params
        self.layout = layout
        self.members = sizes.pop() if sizes else None

    def _broadcast(self, values, inputs):
        values = np.asarray(values, dtype="float32")
        if self.layout == "members_first":
            shape = (len(values),) + (1,) * (len(inputs.shape) - 1)
            return ops.cast(ops.reshape(values, shape), inputs.dtype)
        block = inputs.shape[-1] // len(values)
        return ops.cast(np.repeat(values, block), inputs.dtype)

    def call(self, inputs):
        kwargs = {k: self._broadcast(v, inputs) for k, v in self.params.items()}
        return self._fn(inputs, **kwargs)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(activation=self.activation, params=self.params, layout=self.layout)
        return config


@keras.saving.register_keras_serializable(package="kerasparse")
class ToMembers(keras.layers.Layer):
    """``(batch, N, *example_shape)`` -> the packed model's inner layout.

    ``layout="members_first"``: ``(N, batch, prod(example_shape))`` (each member's examples
    flattened, as ``Flatten`` does). ``layout="channels"``: ``(batch, H, W, N * C)`` (member
    i's channels in block i).
    """

    def __init__(self, layout="members_first", **kwargs):
        super().__init__(**kwargs)
        if layout not in ("members_first", "channels"):
            raise ValueError(
                f"ToMembers: layout must be 'members_first' or 'channels'. Received: {layout!r}"
            )
        self.layout = layout

    def call(self, inputs):
        shape = inputs.shape
        if self.layout == "members_first":
            features = int(np.prod(shape[2:]))
            x = ops.reshape(inputs, (-1, shape[1], features))
            return ops.transpose(x, (1, 0, 2))
        _, n, h, w, c = shape
        x = ops.transpose(inputs, (0, 2, 3, 1, 4))  # (batch, H, W, N, C)
        return ops.reshape(x, (-1, h, w, n * c))

    def compute_output_shape(self, input_shape):
        if self.layout == "members_first":
            return (input_shape[1], input_shape[0], int(np.prod(input_shape[2:])))
        b, n, h, w, c = input_shape
        return (b, h, w, n * c)

    def get_config(self):
        return {**super().get_config(), "layout": self.layout}


@keras.saving.register_keras_serializable(package="kerasparse")
class FromMembers(keras.layers.Layer):
    """The inverse direction for features: ``layout="members_first"``: ``(N, batch, F)`` ->
    ``(batch, N, F)``; ``layout="channels"``: ``(batch, N * F)`` -> ``(N, batch, F)`` (the
    pooled CNN features handed to a :class:`PackedDense` head)."""

    def __init__(self, members, layout="members_first", **kwargs):
        super().__init__(**kwargs)
        self.members = check_positive_int("FromMembers", "members", members)
        if layout not in ("members_first", "channels"):
            raise ValueError(
                f"FromMembers: layout must be 'members_first' or 'channels'. Received: {layout!r}"
            )
        self.layout = layout

    def call(self, inputs):
        if self.layout == "members_first":
            return ops.transpose(inputs, (1, 0, 2))
        features = inputs.shape[-1] // self.members
        return ops.transpose(ops.reshape(inputs, (-1, self.members, features)), (1, 0, 2))

    def compute_output_shape(self, input_shape):
        if self.layout == "members_first":
            return (input_shape[1], input_shape[0], input_shape[2])
        return (self.members, input_shape[0], input_shape[-1] // self.members)

    def get_config(self):
        return {**super().get_config(), "members": self.members, "layout": self.layout}
