"""The training step's speed options, shared by ``kerasparse train`` and ``kerasparse bench``:
the image layout inside the model, compilation, steps per execution (and the dtype policy,
``precision``, which lives with the other config keys).

None of these changes what a run computes beyond float rounding (tests/test_step_options.py):
they choose how the same step runs. ``auto`` picks what was measured fastest per backend
(docs/benchmarks.md). Keras is not imported here, so the CLI can validate before choosing the
backend.
"""

DATA_FORMATS = ("auto", "channels_last", "channels_first")
JIT_COMPILE = ("auto", "true", "false")


class CompileFailed(RuntimeError):
    """Compiling the training step failed (reported as one line naming the way out)."""


def data_format(value, backend):
    """The layout a WRN runs in: ``auto`` is channels_first on torch (its convolution kernels
    are NCHW-native) and channels_last elsewhere (TensorFlow's CPU convolutions are NHWC-only;
    XLA picks its own layout). The data itself is always channels-last."""
    if value == "auto":
        return "channels_first" if backend == "torch" else "channels_last"
    return value


def jit_compile(value):
    """The ``jit_compile`` argument of ``Model.compile``: ``"auto"`` (Keras' choice: XLA on
    jax, XLA on TensorFlow only with a GPU, eager on torch), True (XLA; ``torch.compile`` on
    torch) or False (TensorFlow graph without XLA, jax without jit, torch eager)."""
    return {"auto": "auto", "true": True, "false": False}[str(value).lower()]


def check(backend, steps_per_execution=1):
    """Raise a one-line ValueError for a combination Keras does not run on ``backend``."""
    if backend == "torch" and steps_per_execution != 1:
        raise ValueError(
            "steps_per_execution must be 1 on the torch backend (Keras runs torch steps one at "
            f"a time). Received: steps_per_execution={steps_per_execution}"
        )


def check_layout(backend, layout, jit="auto"):
    """Raise a one-line ValueError where ``layout`` cannot run: TensorFlow's CPU convolutions
    are NHWC only, so channels_first needs a GPU or XLA (``jit_compile`` true) there. Call
    once the backend is chosen (it looks for a GPU)."""
    if backend != "tensorflow" or layout != "channels_first" or jit_compile(jit) is True:
        return
    import tensorflow as tf

    if not tf.config.list_physical_devices("GPU"):
        raise ValueError(
            "data_format channels_first on tensorflow needs a GPU or jit_compile true "
            "(TensorFlow's CPU convolutions are NHWC only). Received: "
            f"data_format='channels_first', jit_compile={str(jit).lower()!r}"
        )


def compile_kwargs(backend, jit="auto", steps_per_execution=1):
    """Keyword arguments for ``Model.compile`` (checked with :func:`check`)."""
    check(backend, steps_per_execution)
    return {"jit_compile": jit_compile(jit), "steps_per_execution": steps_per_execution}


def compile_failure_message(exc, backend):
    """One line for a failed compilation of the training step: what failed and how to turn
    compilation off."""
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    what = "torch.compile" if backend == "torch" else "XLA compilation"
    return (
        f"{what} of the training step failed on {backend} ({type(exc).__name__}: "
        f"{first[:300]}). Run it uncompiled with --jit-compile false"
    )
