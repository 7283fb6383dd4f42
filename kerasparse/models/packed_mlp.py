import keras

from kerasparse.models.deep_mlp import DeepMLP
from kerasparse.models.packed_common import PackedEoCNet
from kerasparse.models.packed_layers import PackedDense, ToMembers


@keras.saving.register_keras_serializable(package="kerasparse")
class PackedDeepMLP(PackedEoCNet):
    """N independent :class:`~kerasparse.models.DeepMLP` members trained as one model.

    Each member has its own EoC setting and weights; depth, width, activation, classes and
    input shape are shared. Inputs ``(batch, N, *input_shape)``, outputs
    ``(batch, N, num_classes)``. Inside, the members are the leading axis:
    ``(N, batch, features)``, and every hidden layer is one batched matmul
    (:class:`~kerasparse.models.packed_layers.PackedDense`, kernel ``(N, fan_in, width)``).

        packed = PackedDeepMLP(
            members=[{"sparsity": 0.85, "q_star": q, "v_prime": 0.7} for q in (1, 2, 3)],
            depth=100, width=300)
        packed.member(2)                          # an ordinary DeepMLP with member 2's weights
        PackedDeepMLP.from_members([m0, m1, m2])  # pack DeepMLPs with their weights

    Args:
        members: a list of N dicts with ``sparsity``, ``q_star``, ``v_prime`` and optionally
            ``activation_params`` (as :class:`~kerasparse.models.DeepMLP` takes them).
        depth, width, activation, num_classes, input_shape, name: as ``DeepMLP``, shared.
    """

    member_class = DeepMLP
    width_arg = "width"
    input_name = "inputs"
    layout = "members_first"

    def __init__(self, members, depth=100, width=300, activation="crelu", num_classes=10,
                 input_shape=(28, 28, 1), name="packed_deep_mlp", **kwargs):
        super().__init__(members, depth, width, activation, num_classes, input_shape, name,
                         **kwargs)

    def _stem(self, inputs):
        return ToMembers("members_first", name="to_members")(inputs)

    def _hidden(self, width, members, kernel_initializer, bias_initializer, index):
        return PackedDense(
            width, members,
            kernel_initializer=kernel_initializer,
            bias_initializer=bias_initializer,
            name=f"dense{index}",
        )

    def _head(self, x, members):
        return x
