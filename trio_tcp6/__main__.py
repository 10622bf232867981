"""``python -m trio_tcp6``: the command line (:mod:`trio_tcp6.cli`)."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
