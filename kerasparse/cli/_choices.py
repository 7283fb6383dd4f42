"""The command line's choice types, made from the choice fields of ``kerasparse.config.FIELDS``
(whose values come from the one table of each: ``config``, ``step_options``), so ``train`` and
``bench`` offer the same values as the config schema accepts."""

import enum
import functools
from typing import Annotated, Optional

import typer

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
Split = for_field("split")


def option(key, default=None):
    """``Annotated[type, typer.Option(...)]`` of the ``--key`` option of config key ``key``,
    made from its ``config.FIELDS`` entry: the type (a bool is ``--key/--no-key``, a choice
    field its choice type), the help, and the default shown (``default``: the command's own
    default, else the field's). Every command that takes config keys uses it (train, compare),
    so a key is offered, checked and described the same way everywhere."""
    field = config.FIELDS[key]
    flag = "--" + key.replace("_", "-")
    if field.type is bool:
        names, kind = (f"{flag}/--no-{flag[2:]}",), bool
    else:
        names, kind = (flag,), for_field(key) if field.choices else field.type
    text = field.help[:1].upper() + field.help[1:]
    shown = field.default if default is None else default
    if shown is not None and "default" not in field.help:
        text += f" (default {str(shown).lower() if isinstance(shown, bool) else shown})"
    return Annotated[Optional[kind], typer.Option(*names, help=text + ".", show_default=False)]
