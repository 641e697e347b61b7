"""``pytest-replay reduce JOURNAL --mode audit|resume|repair``: the ReplayResult as JSON.

JOURNAL is a journal record file (magic ``PRJRECS1``, written by
``write_journal_records``). The result is printed in its canonical JSON form
(keys in declaration order, empty fields left out); ``--pretty`` indents it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from pytest_replay.cli import detect as formats
from pytest_replay.cli.common import EXIT_DIFFERENT, EXIT_OK, CliError, Run

__all__ = ["MODES", "POLICIES", "run_reduce"]

MODES: Final = ("audit", "resume", "repair")
POLICIES: Final = ("fail", "recoverable_replay_gap", "omit_with_projection_audit",
                   "request_host_repair")  # fmt: skip


def run_reduce(
    run: Run,
    path: Path,
    mode: str,
    content_refs: Sequence[str] | None,
    policy: str,
    pretty: bool,
    fail_on_repair: bool,
) -> int:
    detected = formats.detect(path)
    if detected.format != formats.RECORDS:
        raise CliError(
            f"'{path}' is a {detected.label}, not a journal record file",
            "pass a record file written by write_journal_records (it starts with PRJRECS1)",
        )
    from pytest_replay.journal import (
        MissingContentPolicy,
        ReducerMode,
        ReplayStatus,
        load_journal_records,
        reduce_journal,
        result_to_json,
    )

    records = load_journal_records(path)
    result = reduce_journal(
        records,
        ReducerMode[mode.upper()],
        available_content_refs=content_refs,
        missing_content_policy=MissingContentPolicy(policy),
    )
    encoded = result_to_json(result)
    if pretty:
        text = json.dumps(json.loads(encoded), indent=2, ensure_ascii=False)
    else:
        text = encoded.decode("utf-8")
    run.print(text)
    if fail_on_repair and result.status is not ReplayStatus.COMPLETE:
        return EXIT_DIFFERENT
    return EXIT_OK
