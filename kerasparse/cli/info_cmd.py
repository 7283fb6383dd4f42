"""``kerasparse info``: the backend, versions and devices Keras sees."""

from kerasparse.cli._app import BackendOption, UsageError, app, console, fail, use_backend


@app.command()
def info(backend: BackendOption = None):
    """Show the Keras backend, library versions and visible devices."""
    try:
        name = use_backend(backend)
    except UsageError as exc:
        fail(str(exc))
    import keras

    import kerasparse

    console.print(f"kerasparse {kerasparse.__version__}, keras {keras.__version__}, backend {name}")
    from keras import distribution

    try:
        devices = distribution.list_devices()
    except AttributeError:  # keras.distribution has no implementation for this backend
        devices = "not reported by keras.distribution on this backend"
    console.print(f"devices: {devices}")
