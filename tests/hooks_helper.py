"""A user's own callbacks for tests/test_run_hooks.py (`--callback hooks_helper:make`)."""

import json
import os

import keras


class LogLines(keras.callbacks.Callback):
    """Appends each epoch's logs as one JSON line to ``path``."""

    def __init__(self, path):
        super().__init__()
        self.path = path

    def on_epoch_end(self, epoch, logs=None):
        row = {"epoch": epoch + 1}
        row.update({k: float(v) for k, v in (logs or {}).items()})
        with open(self.path, "a") as f:
            f.write(json.dumps(row) + "\n")


def make(run_dir, config):
    """A factory that takes the run directory and the config (both optional)."""
    return LogLines(os.path.join(run_dir, f"user-logs-{config['seed']}.jsonl"))


def make_two():
    """A factory without arguments that returns a list."""
    return [keras.callbacks.Callback(), keras.callbacks.Callback()]
