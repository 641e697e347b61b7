"""Keep this example's recordings in its own folder, whichever folder pytest starts from."""

from pathlib import Path


def pytest_replay_store_dir(item):
    return Path(__file__).parent / ".replay"
