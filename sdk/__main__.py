"""``python -m alphazoo``: the ``alphazoo`` command line, for environments without its script."""

import sys

from alphazoo.cli import main

if __name__ == "__main__":
    sys.exit(main())
