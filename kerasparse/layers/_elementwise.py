"""Private base of the elementwise activation layers (CReLU, CST, HardShrink, ...)."""

import keras

from kerasparse import activations


class ElementwiseActivation(keras.layers.Layer):
    """Applies ``activations.<function_name>(x, **params)``; subclasses validate params.

    Subclasses set ``function_name`` (a key of ``kerasparse.activations.ACTIVATIONS``) and
    ``param_names`` (the constructor arguments, stored as attributes of the same name).
    """

    function_name = None
    param_names = ()

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True

    @property
    def params(self):
        return {name: getattr(self, name) for name in self.param_names}

    def call(self, inputs):
        return activations.ACTIVATIONS[self.function_name](inputs, **self.params)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(self.params)
        return config
