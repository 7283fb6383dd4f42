"""Gradients in tests through the active backend's own autodiff (jax.grad, torch.autograd,
tf.GradientTape): Keras has no backend-agnostic ``grad``, and the layers must be checked
against the analytic derivatives on every backend."""

import keras
import numpy as np


def grad_of_weighted_sum(fn, x, w):
    """(y, dL/dx) for L = sum(w * fn(x)), both as NumPy arrays; x and w are NumPy arrays."""
    backend = keras.backend.backend()
    w_t = keras.ops.convert_to_tensor(w)
    if backend == "jax":
        import jax

        def loss(x_):
            y = fn(x_)
            return keras.ops.sum(w_t * keras.ops.cast(y, w_t.dtype)), y

        (_, y), g = jax.value_and_grad(loss, has_aux=True)(keras.ops.convert_to_tensor(x))
        return np.asarray(y), np.asarray(g)
    if backend == "torch":
        import torch

        x_t = torch.tensor(np.asarray(x), requires_grad=True)
        y = fn(x_t)
        loss = (w_t.to(y.device) * y.to(w_t.dtype)).sum()
        (g,) = torch.autograd.grad(loss, x_t)
        return y.detach().cpu().numpy(), g.detach().cpu().numpy()
    if backend == "tensorflow":
        import tensorflow as tf

        x_t = tf.convert_to_tensor(x)
        with tf.GradientTape() as tape:
            tape.watch(x_t)
            y = fn(x_t)
            loss = tf.reduce_sum(w_t * tf.cast(y, w_t.dtype))
        g = tape.gradient(loss, x_t)
        return y.numpy(), g.numpy()
    raise RuntimeError(f"no autodiff helper for backend {backend!r}")
