"""The command line's choice types, made from the one table of each (``kerasparse.config``,
``kerasparse.step_options``), so ``train`` and ``bench`` offer the same values as the config
schema accepts."""

import enum

from kerasparse import config, step_options


def _choices(name, values):
    return enum.Enum(name, {value: value for value in values}, type=str)


Controller = _choices("Controller", config.CONTROLLERS)
Precision = _choices("Precision", config.PRECISIONS)
Device = _choices("Device", config.DEVICES)
Split = _choices("Split", config.SPLITS)
DataFormat = _choices("DataFormat", step_options.DATA_FORMATS)
JitCompile = _choices("JitCompile", step_options.JIT_COMPILE)
