"""The ``kerasparse`` command line. Each command lives in its own module of this package."""

import sys

from kerasparse.cli._app import UsageError, app, fail

# Importing a command module registers its commands on ``app``.
from kerasparse.cli import info_cmd  # noqa: F401,E402
from kerasparse.cli import bench_cmd, compare_cmd  # noqa: F401,E402
from kerasparse.cli import eoc_cmd  # noqa: F401,E402
from kerasparse.cli import models_cmd  # noqa: F401,E402
from kerasparse.cli import train_cmd, report_cmd, sweep_cmd  # noqa: F401,E402
from kerasparse.cli import pack_cmd  # noqa: F401,E402


def main():
    """Console-script entry point: usage errors become one line and exit code 2."""
    try:
        app()
    except UsageError as exc:
        fail(str(exc))


__all__ = ["app", "main"]

if __name__ == "__main__":
    sys.exit(main())
