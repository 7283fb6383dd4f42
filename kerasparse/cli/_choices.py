"""The command line's choice types, made from the choice fields of ``kerasparse.config.FIELDS``
(whose values come from the one table of each: ``config``, ``step_options``), so ``train`` and
``bench`` offer the same values as the config schema accepts."""

import enum
import functools

from kerasparse import config


def _choices(name, values):
    return enum.Enum(name, {value: value for value in values}, type=str)


@functools.cache
def for_field(key):
    """The choice type of config key ``key`` (a choice field of ``config.FIELDS``)."""
    name = "".join(part.title() for part in key.split("_"))
    return _choices(name, config.FIELDS[key].choices)


Controller = for_field("controller")
Precision = for_field("precision")
Device = for_field("device")
DataFormat = for_field("data_format")
JitCompile = for_field("jit_compile")
