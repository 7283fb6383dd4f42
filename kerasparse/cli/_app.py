"""The Typer application and helpers shared by every ``kerasparse`` command.

Commands that run Keras take ``--backend``; :func:`use_backend` sets ``KERAS_BACKEND`` before
Keras is imported (heavy imports live inside the command bodies for that reason).
"""

import enum
import importlib.util
import os
import sys
from typing import Annotated, Optional

import typer
from rich.console import Console

import kerasparse
from kerasparse.config import suggest  # noqa: F401  (re-exported for the commands)

app = typer.Typer(
    name="kerasparse",
    help="Train deep networks with sparse activations on JAX, PyTorch or TensorFlow.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
console = Console()
err_console = Console(stderr=True)

USAGE_ERROR = 2


class Backend(str, enum.Enum):
    jax = "jax"
    torch = "torch"
    tensorflow = "tensorflow"


BACKEND_MODULES = {"jax": "jax", "torch": "torch", "tensorflow": "tensorflow"}

BackendOption = Annotated[
    Optional[Backend],
    typer.Option(
        "--backend",
        help="Keras backend. Default: $KERAS_BACKEND, else jax.",
        case_sensitive=False,
    ),
]


class UsageError(Exception):
    """A user error: reported as one line on stderr, exit code 2, no traceback."""


def fail(message, code=USAGE_ERROR):
    """Print ``Error: message`` on stderr and exit with ``code`` (2: usage error)."""
    from rich.markup import escape  # "kerasparse[tfds]" is text, not a rich style tag

    err_console.print(f"[bold red]Error:[/] {escape(str(message))}", highlight=False,
                      soft_wrap=True)
    raise typer.Exit(code)


def resolve_backend(backend=None):
    """The backend name: the option, else $KERAS_BACKEND, else jax; checked and installed."""
    name = backend.value if isinstance(backend, Backend) else backend
    name = name or os.environ.get("KERAS_BACKEND") or kerasparse.DEFAULT_BACKEND
    if name not in BACKEND_MODULES:
        raise UsageError(
            f"unknown backend {name!r}; allowed: jax, torch, tensorflow.{suggest(name, BACKEND_MODULES)}"
        )
    if importlib.util.find_spec(BACKEND_MODULES[name]) is None:
        raise UsageError(
            f"backend {name!r} is not installed; install it with "
            f"pip install 'kerasparse[{name}]'"
        )
    return name


def use_backend(backend=None):
    """Select the Keras backend before Keras is imported; returns its name.

    Raises UsageError if it is unknown or not installed, or if Keras was already imported
    with another backend in this process.
    """
    name = resolve_backend(backend)
    if "keras" in sys.modules:
        import keras

        if keras.backend.backend() != name:
            raise UsageError(
                f"Keras is already loaded with backend {keras.backend.backend()!r} in this "
                f"process; cannot switch to {name!r}"
            )
        return name
    os.environ["KERAS_BACKEND"] = name
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's start-up chatter
    return name


def _version_callback(value: bool):
    if value:
        console.print(f"kerasparse {kerasparse.__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version_callback, is_eager=True, help="Print the version."
        ),
    ] = False,
):
    """kerasparse: sparse-activation training for Keras 3 (JAX, PyTorch, TensorFlow)."""
