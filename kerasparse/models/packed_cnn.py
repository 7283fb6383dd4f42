import keras

from kerasparse.models.deep_cnn import DeepCNN
from kerasparse.models.packed_common import PackedEoCNet
from kerasparse.models.packed_layers import FromMembers, PackedConv2D, ToMembers


@keras.saving.register_keras_serializable(package="kerasparse")
class PackedDeepCNN(PackedEoCNet):
    """N independent :class:`~kerasparse.models.DeepCNN` members trained as one model.

    Inputs ``(batch, N, H, W, C)``, outputs ``(batch, N, num_classes)``. Inside, the members
    are folded into the channels, ``(batch, H, W, N * channels)`` with member i's channels in
    block i, and every convolution is one grouped convolution
    (:class:`~kerasparse.models.packed_layers.PackedConv2D`, kernel
    ``(N, 3, 3, c_in, channels)``); the pooled features go to a batched ``PackedDense``
    logits layer. See :class:`~kerasparse.models.PackedDeepMLP` for the members' arguments.
    """

    member_class = DeepCNN
    width_arg = "channels"
    input_rank = 3
    input_name = "images"
    layout = "channels"

    def __init__(self, members, depth=50, channels=300, activation="crelu", num_classes=10,
                 input_shape=(32, 32, 3), name="packed_deep_cnn", **kwargs):
        super().__init__(members, depth, channels, activation, num_classes, input_shape, name,
                         **kwargs)

    def _stem(self, inputs):
        return ToMembers("channels", name="to_members")(inputs)

    def _hidden(self, channels, members, kernel_initializer, bias_initializer, index):
        return PackedConv2D(
            channels, members, 3, padding="same",
            kernel_initializer=kernel_initializer,
            bias_initializer=bias_initializer,
            name=f"conv{index}",
        )

    def _head(self, x, members):
        x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
        return FromMembers(members, layout="channels", name="pool_members")(x)
