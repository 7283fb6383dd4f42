"""What :class:`~kerasparse.models.PackedDeepMLP` and :class:`~kerasparse.models.PackedDeepCNN`
share: N members of an ordinary :class:`~kerasparse.models.DeepMLP` / ``DeepCNN`` in one model."""

import keras
import numpy as np

from kerasparse import eoc_keras
from kerasparse.layers._elementwise import ElementwiseActivation
from kerasparse.models._common import (
    check_input_shape,
    check_positive_int,
    eoc_setup,
    first_layer_initializers,
)
from kerasparse.models.packed_layers import FromMembers, MemberActivation, PackedDense

# What may differ between the members of one packed model; everything else is shared.
MEMBER_KEYS = ("sparsity", "q_star", "v_prime", "activation_params")


def _member_activation(setup):
    """(function name, parameters) of the layer ``eoc_keras.activation_layer(setup)`` builds:
    the member's own activation, exactly as its ordinary model gets it."""
    layer = eoc_keras.activation_layer(setup)
    if isinstance(layer, ElementwiseActivation):
        return layer.function_name, dict(layer.params)
    if isinstance(layer, keras.layers.ReLU):
        return "relu", {}
    raise ValueError(  # a future activation layer this module does not know how to stack
        f"packed models cannot stack the activation layer {type(layer).__name__}. "
        f"Received: activation={setup.activation!r}"
    )


class PackedEoCNet(keras.Model):
    """N independent members of ``member_class`` (a :class:`~kerasparse.models._common.PlainEoCNet`)
    in one functional model.

    Inputs ``(batch, N, *input_shape)``: member i's examples at ``[:, i]``; outputs
    ``(batch, N, num_classes)``: member i's logits at ``[:, i]``. Each member has its own EoC
    setting (``members[i]``: sparsity, q_star, v_prime, activation_params, so its own tau, m,
    sigma_w^2, sigma_b^2 from :func:`kerasparse.eoc.setup`) and its own weights; the
    architecture (depth, width, activation, classes, input shape) is shared. Layer names and
    the order of the variables are those of the member model, each variable with a member
    axis in front, so member i's weights are ``[v[i] for v in model.weights]``.

    Subclasses set ``member_class``, ``width_arg``, ``input_name``, ``layout`` (of
    :class:`MemberActivation`) and define ``_stem``, ``_hidden`` and ``_head``.
    """

    member_class = None
    width_arg = "width"
    input_rank = None
    input_name = "inputs"
    layout = "members_first"

    def __init__(self, members, depth, width, activation, num_classes, input_shape, name,
                 **kwargs):
        owner = type(self).__name__
        members = self._check_members(owner, members)
        n = len(members)
        depth = check_positive_int(owner, "depth", depth)
        width = check_positive_int(owner, self.width_arg, width)
        num_classes = check_positive_int(owner, "num_classes", num_classes)
        input_shape = check_input_shape(owner, input_shape, rank=self.input_rank)
        setups = [
            eoc_setup(f"{owner} member {i}", activation, m["sparsity"], m["q_star"],
                      m["v_prime"], m["activation_params"])
            for i, m in enumerate(members)
        ]
        acts = [_member_activation(s) for s in setups]
        act_name = acts[0][0]
        act_params = {k: [p[k] for _, p in acts] for k in acts[0][1]}
        first = [first_layer_initializers() for _ in range(n)]

        inputs = keras.Input(shape=(n, *input_shape), name=self.input_name)
        x = self._stem(inputs)
        for i in range(1, depth + 1):
            if i == 1:
                kernels, biases = [f[0] for f in first], [f[1] for f in first]
            else:
                kernels = [eoc_keras.kernel_initializer(s) for s in setups]
                biases = [eoc_keras.bias_initializer(s) for s in setups]
            x = self._hidden(width, n, kernels, biases, i)(x)
            x = MemberActivation(act_name, act_params, layout=self.layout, name=f"act{i}")(x)
        x = self._head(x, n)
        x = PackedDense(
            num_classes, n,
            kernel_initializer=[eoc_keras.kernel_initializer(s) for s in setups],
            bias_initializer=[eoc_keras.bias_initializer(s) for s in setups],
            name="logits",
        )(x)
        outputs = FromMembers(n, name="from_members")(x)
        super().__init__(inputs=inputs, outputs=outputs, name=name, **kwargs)

        self.members = members
        self.depth = depth
        setattr(self, self.width_arg, width)
        self.activation = activation
        self.num_classes = num_classes
        self.data_input_shape = input_shape
        self.eoc = setups

    @staticmethod
    def _check_members(owner, members):
        if not isinstance(members, (list, tuple)) or not members:
            raise ValueError(
                f"{owner}: members must be a non-empty list of dicts with keys "
                f"{', '.join(MEMBER_KEYS)}. Received: members={members!r}"
            )
        out = []
        for i, m in enumerate(members):
            if not isinstance(m, dict) or set(m) - set(MEMBER_KEYS):
                raise ValueError(
                    f"{owner}: member {i} must be a dict with keys among "
                    f"{', '.join(MEMBER_KEYS)}. Received: members[{i}]={m!r}"
                )
            if "q_star" not in m:
                raise ValueError(f"{owner}: member {i} needs a q_star. Received: {m!r}")
            out.append({
                "sparsity": m.get("sparsity"),
                "q_star": float(m["q_star"]),
                "v_prime": m.get("v_prime"),
                "activation_params": dict(m.get("activation_params") or {}),
            })
        return out

    @property
    def size(self):
        """The number of members N."""
        return len(self.members)

    # -- members as ordinary models

    def member_config(self, i):
        """The constructor arguments of member ``i`` as an ordinary ``member_class``."""
        i = self._index(i)
        return {
            "depth": self.depth,
            self.width_arg: getattr(self, self.width_arg),
            "activation": self.activation,
            **{k: self.members[i][k] for k in MEMBER_KEYS},
            "num_classes": self.num_classes,
            "input_shape": tuple(self.data_input_shape),
        }

    def member_weights(self, i):
        """Member ``i``'s weights as NumPy arrays, in the order of its ordinary model."""
        i = self._index(i)
        return [keras.ops.convert_to_numpy(w)[i] for w in self.weights]

    def member(self, i, name=None):
        """Member ``i`` as an ordinary ``DeepMLP`` / ``DeepCNN`` with the same weights (a new
        model; training it does not change the pack)."""
        kwargs = self.member_config(i)
        if name is not None:
            kwargs["name"] = name
        model = self.member_class(**kwargs)
        model.set_weights(self.member_weights(i))
        return model

    def set_member_weights(self, i, weights):
        """Overwrite member ``i``'s weights with ``weights`` (a list in the order of its
        ordinary model, or such a model)."""
        i = self._index(i)
        if isinstance(weights, keras.Model):
            weights = weights.get_weights()
        if len(weights) != len(self.weights):
            raise ValueError(
                f"member weights: expected {len(self.weights)} arrays. Received: {len(weights)}"
            )
        for variable, value in zip(self.weights, weights):
            stacked = keras.ops.convert_to_numpy(variable)
            if stacked.shape[1:] != np.shape(value):
                raise ValueError(
                    f"member weights: {variable.path} takes {stacked.shape[1:]}. "
                    f"Received: shape {np.shape(value)}"
                )
            stacked[i] = value
            variable.assign(stacked)

    @classmethod
    def from_members(cls, models, name=None):
        """Pack ordinary models (same architecture, any EoC setting) with their weights."""
        if not models:
            raise ValueError(f"{cls.__name__}.from_members: no models given. Received: {models!r}")
        bad = [type(m).__name__ for m in models if not isinstance(m, cls.member_class)]
        if bad:
            raise ValueError(
                f"{cls.__name__} packs {cls.member_class.__name__} models. Received: {bad[0]}"
            )
        first = models[0]
        shared = ("depth", cls.width_arg, "activation", "num_classes", "data_input_shape")
        for key in shared:
            values = [getattr(m, key) for m in models]
            if any(v != values[0] for v in values):
                raise ValueError(
                    f"{cls.__name__}.from_members: the models differ in {key} "
                    f"({', '.join(map(str, values))}); members share their architecture"
                )
        members = [{k: getattr(m, k) for k in MEMBER_KEYS} for m in models]
        kwargs = {} if name is None else {"name": name}
        packed = cls(
            members=members,
            depth=first.depth,
            activation=first.activation,
            num_classes=first.num_classes,
            input_shape=first.data_input_shape,
            **{cls.width_arg: getattr(first, cls.width_arg)},
            **kwargs,
        )
        weights = [m.get_weights() for m in models]
        packed.set_weights([np.stack(ws) for ws in zip(*weights)])
        return packed

    def _index(self, i):
        if isinstance(i, bool) or not isinstance(i, (int, np.integer)) or not (
            -self.size <= i < self.size
        ):
            raise ValueError(
                f"member index must be an integer in [0, {self.size}). Received: i={i!r}"
            )
        return int(i) % self.size

    # -- config

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "members": [dict(m) for m in self.members],
            "depth": self.depth,
            self.width_arg: getattr(self, self.width_arg),
            "activation": self.activation,
            "num_classes": self.num_classes,
            "input_shape": list(self.data_input_shape),
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    @classmethod
    def count_parameters(cls, members=1, **kwargs):
        """Weights of the whole pack (``members`` times the member's closed form)."""
        n = len(members) if isinstance(members, (list, tuple)) else int(members)
        return n * cls.member_class.count_parameters(**kwargs)
