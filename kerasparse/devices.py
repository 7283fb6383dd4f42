"""Which devices a backend sees and uses: ``kerasparse info``, ``summary.json``'s ``device``
and ``kerasparse train --device {auto,cpu,gpu}``.

Keras fixes one backend per process, so :func:`report` describes the backend of this process;
``kerasparse info`` runs it once per installed backend, each in its own subprocess.

The GPU builds (docs/data.md "Installs"): jax needs a CUDA plugin (``jax[cuda12]`` /
``jax[cuda13]``: the ``[jax-cuda12]`` / ``[jax-cuda13]`` extras); PyPI's Linux torch wheel
is a CUDA build (the CPU wheel comes from download.pytorch.org/whl/cpu); TensorFlow needs
``tensorflow[and-cuda]`` (the ``[tensorflow-cuda]`` extra; ``tensorflow-cpu`` has no GPU
support).
"""

import importlib.metadata
import importlib.util
import os

DEVICE_CHOICES = ("auto", "cpu", "gpu")

GPU_INSTALL = {
    "jax": "pip install 'kerasparse[jax-cuda13]' (CUDA 13 driver) or 'kerasparse[jax-cuda12]'",
    "torch": "pip install 'kerasparse[torch]' from PyPI (its Linux wheel is a CUDA build; "
             "the download.pytorch.org/whl/cpu wheel is not)",
    "tensorflow": "pip install 'kerasparse[tensorflow-cuda]' (tensorflow[and-cuda]; "
                  "tensorflow-cpu has no GPU support)",
}


def _jax_cuda_plugins():
    names = []
    for dist in importlib.metadata.distributions():
        name = (dist.metadata.get("Name") or "").lower().replace("_", "-")
        if name.startswith("jax-cuda") and name.endswith("-plugin"):
            names.append(f"{name} {dist.version}")
    return sorted(names)


def cuda_build(backend):
    """``(is_cuda_build, description)`` of the installed framework (imports it)."""
    if backend == "jax":
        plugins = _jax_cuda_plugins()
        return bool(plugins), ", ".join(plugins) if plugins else "CPU-only jaxlib"
    if backend == "torch":
        import torch

        cuda = torch.version.cuda
        return cuda is not None, f"CUDA {cuda}" if cuda else "CPU-only build"
    if backend == "tensorflow":
        import tensorflow as tf

        built = bool(tf.test.is_built_with_cuda())
        return built, "CUDA build" if built else "CPU-only build"
    raise ValueError(f"unknown backend {backend!r}")


def visible_devices(backend):
    """The devices the framework sees: a list of ``{"kind": "gpu"|"cpu", "name": ...}``."""
    if backend == "jax":
        import jax

        out = []
        for d in jax.devices():
            kind = "gpu" if d.platform in ("gpu", "cuda", "rocm") else d.platform
            out.append({"kind": kind, "name": d.device_kind if kind == "gpu" else "cpu",
                        "id": str(d)})
        return out
    if backend == "torch":
        import torch

        gpus = [{"kind": "gpu", "name": torch.cuda.get_device_name(i), "id": f"cuda:{i}"}
                for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []
        return gpus + [{"kind": "cpu", "name": "cpu", "id": "cpu"}]
    if backend == "tensorflow":
        import tensorflow as tf

        out = []
        for d in tf.config.list_physical_devices():
            kind = d.device_type.lower()
            name = "cpu"
            if kind == "gpu":
                details = tf.config.experimental.get_device_details(d)
                name = details.get("device_name", d.name)
            out.append({"kind": kind, "name": name, "id": d.name})
        return out
    raise ValueError(f"unknown backend {backend!r}")


def describe(backend, count=1):
    """The kind of device Keras computes on in this process: ``"cpu"`` or
    ``"gpu: NVIDIA H200"`` (``"gpu: 2 x NVIDIA H200"`` with ``count`` data-parallel
    devices)."""
    gpus = [d["name"] for d in visible_devices(backend) if d["kind"] == "gpu"]
    if backend == "torch":
        from keras.src.backend.torch.core import get_device

        if not str(get_device()).startswith("cuda"):
            gpus = []
    if not gpus:
        return "cpu"
    count = max(1, int(count or 1))
    return f"gpu: {count} x {gpus[0]}" if count > 1 else f"gpu: {gpus[0]}"


def report(backend):
    """``kerasparse info``'s facts about this process's backend (a JSON-able dict)."""
    distribution = {"jax": "jax", "torch": "torch", "tensorflow": _tf_distribution()}[backend]
    version = importlib.metadata.version(distribution)
    built, build = cuda_build(backend)
    return {
        "backend": backend,
        "distribution": distribution,
        "version": version,
        "build": build,
        "cuda_build": built,
        "devices": visible_devices(backend),
        "keras_device": describe(backend),
    }


def _tf_distribution():
    for name in ("tensorflow", "tensorflow-cpu", "tf-nightly"):
        try:
            importlib.metadata.version(name)
            return name
        except importlib.metadata.PackageNotFoundError:
            continue
    return "tensorflow"


def prepare(device, backend):
    """Apply ``--device`` before the backend starts: ``"cpu"`` hides the GPUs; ``"gpu"``
    checks that the backend is a CUDA build and sees a GPU (ValueError, one line naming what
    to install, otherwise); ``"auto"`` uses what the backend picks (a GPU if it sees one)."""
    if device not in DEVICE_CHOICES:
        raise ValueError(f"device must be one of {', '.join(DEVICE_CHOICES)}. "
                         f"Received: device={device!r}")
    if device == "cpu":
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
        if backend == "jax":
            os.environ["JAX_PLATFORMS"] = "cpu"
        return
    if device == "gpu":
        if importlib.util.find_spec(backend) is None:
            raise ValueError(f"backend {backend!r} is not installed; {GPU_INSTALL[backend]}")
        built, build = cuda_build(backend)
        if not built:
            raise ValueError(
                f"device=gpu: the installed {backend} is a {build} (no GPU support); "
                f"{GPU_INSTALL[backend]}. Received: device='gpu'"
            )
        if not any(d["kind"] == "gpu" for d in visible_devices(backend)):
            raise ValueError(
                f"device=gpu: {backend} ({build}) sees no GPU (check nvidia-smi, the driver "
                "version and CUDA_VISIBLE_DEVICES). Received: device='gpu'"
            )
