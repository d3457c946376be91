"""``python -m flowweaver``: the command line (see ``flowweaver --help``)."""

import sys

from ._cli import main

if __name__ == "__main__":
    sys.exit(main())
