"""docs/strategies.md: its worked example is real code, and it runs."""

from __future__ import annotations

import re
from pathlib import Path

DOC = Path(__file__).resolve().parents[1] / "docs" / "strategies.md"


def test_the_worked_example_runs() -> None:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), re.DOTALL)
    assert len(blocks) >= 3
    namespace: dict[str, object] = {"__name__": "strategies_doc"}
    for block in blocks:
        exec(compile(block, str(DOC), "exec"), namespace)
    assert callable(namespace["my_replay_order"])
