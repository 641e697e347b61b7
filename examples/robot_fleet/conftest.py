"""Keep this example's recordings in its own folder, whichever folder pytest starts from."""

from pathlib import Path

import pytest


# optionalhook: this conftest keeps working when the plugin is disabled (-p no:replay).
@pytest.hookimpl(optionalhook=True)
def pytest_replay_store_dir(item):
    return Path(__file__).parent / ".replay"
