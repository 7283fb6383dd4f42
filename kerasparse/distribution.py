"""Data-parallel training on several devices: ``--devices N`` of ``kerasparse train`` and
``kerasparse bench``.

- jax: Keras' own distribution API, ``keras.distribution.DataParallel`` over the first N
  devices (each global batch is split along its first axis).
- tensorflow: ``tf.distribute.MirroredStrategy`` over the first N GPUs (else logical CPUs).
- torch: not supported yet (a one-line ValueError).

On a machine without accelerators the N devices are made from the CPU (``prepare_devices``):
jax's ``--xla_force_host_platform_device_count`` and TensorFlow's logical CPU devices. That is
how the tests check that a 2-device run equals a 1-device run; on one CPU it is not faster.
"""

import contextlib
import os
import sys


def check_devices(devices, backend):
    """Validate ``devices`` for ``backend`` (a ValueError naming the value), return it."""
    if isinstance(devices, bool) or not isinstance(devices, int) or devices < 1:
        raise ValueError(f"devices must be a positive integer. Received: devices={devices!r}")
    if devices > 1 and backend == "torch":
        raise ValueError(
            "multi-device training is not supported on the torch backend yet (use jax or "
            f"tensorflow, or devices=1). Received: devices={devices}"
        )
    return devices


def prepare_devices(devices, backend):
    """Make ``devices`` devices visible where only a CPU is: call before the backend starts
    (for jax before it is imported; for tensorflow before its first op). No-op for 1.

    A CPU is split into at most as many devices as it has cores; beyond that (or when the
    backend has already started) nothing is changed and :func:`data_parallel` reports how
    many devices are visible.
    """
    check_devices(devices, backend)
    if devices == 1 or devices > (os.cpu_count() or 1):
        return
    if backend == "jax":
        if "jax" in sys.modules:
            return  # too late to change the host platform
        flag = f"--xla_force_host_platform_device_count={devices}"
        # Only the CPU ("host") platform is split; GPUs and TPUs are used as they are.
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + flag).strip()
    elif backend == "tensorflow":
        import tensorflow as tf

        if tf.config.list_physical_devices("GPU"):
            return
        cpu = tf.config.list_physical_devices("CPU")[0]
        try:
            tf.config.set_logical_device_configuration(
                cpu, [tf.config.LogicalDeviceConfiguration()] * devices
            )
        except RuntimeError:
            pass  # TensorFlow already started


@contextlib.contextmanager
def data_parallel(devices=1):
    """Build and compile the model (and train it) inside this context to use ``devices``
    devices; yields their names. ``devices=1`` changes nothing (and yields ``None``)."""
    import keras

    backend = keras.backend.backend()
    devices = check_devices(devices, backend)
    if devices == 1:
        yield None
        return
    if backend == "jax":
        available = keras.distribution.list_devices()
        _check_enough(devices, available)
        previous = keras.distribution.distribution()
        keras.distribution.set_distribution(
            keras.distribution.DataParallel(devices=available[:devices])
        )
        try:
            yield [str(d) for d in available[:devices]]
        finally:
            keras.distribution.set_distribution(previous)
        return
    import tensorflow as tf

    available = [d.name for d in tf.config.list_logical_devices("GPU")] or [
        d.name for d in tf.config.list_logical_devices("CPU")
    ]
    _check_enough(devices, available)
    with tf.distribute.MirroredStrategy(available[:devices]).scope():
        yield available[:devices]


def _check_enough(devices, available):
    if devices > len(available):
        raise ValueError(
            f"devices={devices} but only {len(available)} device(s) are visible "
            f"({', '.join(map(str, available))}). Received: devices={devices}"
        )
