"""``delfverify`` and ``python -m delfverify``: the command of ``delfverify.cli``, imported under a guard.

Python takes a fraction of a second to import the command (pandas, NumPy); a Ctrl-C meanwhile is one line and exit
status 130 as it is once the command runs, not a traceback. SIGTERM and SIGHUP then end the process as they do by
default, silently, with 128 + the signal's number: nothing has been read or written yet.
"""

from __future__ import annotations

import sys
from typing import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    """Import the command and run it (``delfverify.cli.main``); its exit status."""
    try:
        from .cli import main as command
    except KeyboardInterrupt:
        print("delfverify: interrupted", file=sys.stderr)
        return 130
    return command(argv)


if __name__ == "__main__":
    sys.exit(main())
