"""Write a VRRL ring log past wrap-around, reopen it, replay it, and print what it saw.

    python examples/ringlog_demo.py [--capacity 8] [--appends 13] [--keep PATH]

Timestamps come from a counter, not the wall clock, so two runs print the
same thing and write byte-identical logs.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from pytest_replay.diff import first_divergence
from pytest_replay.ringlog import (
    BackendError,
    RecordedSlot,
    ReplayFailureEvidence,
    RingLog,
)


def publish(capacity: int, appends: int, path: Path) -> list[RecordedSlot]:
    """Append ``appends`` slots; every fifth one faults with failure evidence."""
    published = []
    with RingLog.open(path, capacity) as log:
        for i in range(appends):
            slot = RecordedSlot(
                timestamp_ns=1_000 * i,
                slot_idx=i % 4,
                tenant_id=i % 2,
                opcode=0x4000_0000 + i % 3,
                args=(i, 2 * i, 3 * i, 4 * i),
                epoch=100 + i,
            )
            if i % 5 == 4:
                error = BackendError("DeviceLost after queue submit", code=17)
                output = f"partial output of slot {i}".encode()
                failure = ReplayFailureEvidence.from_backend_error(3, error, output)
                log.append_with_failure(slot, failure)
            else:
                log.append(slot)
            published.append(slot)
        log.sync()
    return published


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--capacity", type=int, default=8)
    parser.add_argument("--appends", type=int, default=13)
    parser.add_argument("--keep", type=Path, help="write the log here instead of a temp folder")
    opts = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        path = opts.keep or Path(tmp) / "demo.vrrl"
        path.unlink(missing_ok=True)
        published = publish(opts.capacity, opts.appends, path)
        print(f"wrote {len(published)} slots into a ring of {opts.capacity}: {path.name}")

        with RingLog.open(path, read_only=True) as log:
            records = log.replay_records()
            print(f"reopened: capacity={log.capacity} cursor={log.cursor} live={len(records)}")
            for record in records:
                s = record.slot
                line = (
                    f"  slot={s.slot_idx} tenant={s.tenant_id} opcode={s.opcode:#010x} "
                    f"args={list(s.args)} epoch={s.epoch}"
                )
                if record.failure is not None:
                    f = record.failure
                    line += (
                        f"  FAILED class={f.failure_class.name} code={f.backend_error_code} "
                        f"digest={f.output_digest:#018x}"
                    )
                print(line)
            expected = published[-log.capacity :]
            found = first_divergence(expected, [r.slot for r in records])
            print("replay matches the newest publishes" if found is None else f"DIVERGED: {found}")


if __name__ == "__main__":
    main()
