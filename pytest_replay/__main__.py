"""``python -m pytest_replay``: the ``pytest-replay`` command line."""

from __future__ import annotations

import sys

from pytest_replay.cli import main

if __name__ == "__main__":
    sys.exit(main())
