import keras

from kerasparse import activations
from kerasparse import ops as ksops
from kerasparse.layers.global_top_k import GlobalTopK


@keras.saving.register_keras_serializable(package="kerasparse")
class SparseActivation(GlobalTopK):
    """A sparse activation site: a nonlinearity followed by per-sample top-k.

    Wang 2026 (arXiv 2603.03131), section 2.4: "each sparse activation module first applies a
    nonlinear activation and then performs top-k selection" — ``y = TopK_r(phi(x))``.

    It *is* a :class:`GlobalTopK` (same ``keep_ratio`` variable, modes, tie policy), so the
    keep-ratio controllers find and drive it like any top-k layer.

    Args:
        activation: a Keras activation name (``"relu"``, the paper's choice), a callable, or a
            layer instance such as ``kerasparse.layers.CReLU(tau=1.0, m=2.0)``.
            kerasparse's parametric activations need their parameters, so pass them as layers.
            A layer follows this wrapper's dtype policy (it is set to the wrapper's), so
            under ``mixed_bfloat16`` it computes in bfloat16 like the rest of the site.
        keep_ratio, mode, axis: as in :class:`GlobalTopK`.
    """

    def __init__(self, activation="relu", keep_ratio=1.0, mode="global", axis=-1, **kwargs):
        super().__init__(keep_ratio=keep_ratio, mode=mode, axis=axis, **kwargs)
        if isinstance(activation, dict):
            activation = keras.saving.deserialize_keras_object(activation)
        if isinstance(activation, str):
            key = activations.canonical_name(activation)
            if key in activations.ACTIVATIONS:
                raise ValueError(
                    f"SparseActivation: activation {activation!r} needs parameters; pass a "
                    f"layer instance such as kerasparse.layers.get({key!r}, tau=..., m=...). "
                    f"Received: activation={activation!r}"
                )
            self._activation_fn = activations.get_activation(activation)
        elif isinstance(activation, keras.layers.Layer):
            # The wrapped layer computes in the wrapper's precision: created under another
            # policy (e.g. the global float32 one) it would return float32 under
            # mixed_bfloat16, losing mixed precision and disagreeing with
            # compute_output_spec.
            activation.dtype_policy = self.dtype_policy
            self._activation_fn = activation
        elif callable(activation):
            self._activation_fn = activation
        else:
            raise ValueError(
                "SparseActivation: activation must be a name, a callable or a layer. "
                f"Received: activation={activation!r}"
            )
        self.activation = activation

    def build(self, input_shape):
        super().build(input_shape)
        if isinstance(self.activation, keras.layers.Layer):
            self.activation.dtype_policy = self.dtype_policy
            if not self.activation.built:
                self.activation.build(input_shape)

    def call(self, inputs):
        if self._activation_fn is keras.activations.relu:
            # The paper's site: one op, fused where a backend path allows (ops.relu_topk).
            inputs = keras.ops.cast(inputs, self.compute_dtype)
            return ksops.relu_topk(inputs, self.keep_ratio, self.mode, self.axis)
        # Cast as Keras wrappers do: a callable may compute in another dtype.
        activated = keras.ops.cast(self._activation_fn(inputs), self.compute_dtype)
        return super().call(activated)

    def get_config(self):
        config = super().get_config()
        activation = self.activation
        if not isinstance(activation, str):
            activation = keras.saving.serialize_keras_object(activation)
        config["activation"] = activation
        return config
