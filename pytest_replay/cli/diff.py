"""``pytest-replay diff A B``: the first divergence between two recordings of one kind.

Exit status: 0 the two are the same, 1 they differ, 2 the comparison could not be
made (unreadable file, two different kinds, unknown field to ignore).

Ring logs are compared with :func:`pytest_replay.diff.first_divergence`, in blocks so
that a large log shows progress; stored recordings of the plugin's kinds (journal,
reducer result, fleet recording, ...) with their kind's own ``diff``; fleet logs step
by step; journal record files record by record; two stores recording by recording.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from pytest_replay.cli import detect as formats
from pytest_replay.cli.common import (
    EXIT_DIFFERENT,
    EXIT_OK,
    CliError,
    Run,
    jsonable,
    read_bounded,
)
from pytest_replay.divergence import Divergence, context_window

if TYPE_CHECKING:
    from pytest_replay.diff import DiffSummary

__all__ = ["Outcome", "run_diff"]

_BLOCK: Final = 1 << 16
_FLEET_LOG_FIELDS: Final = ("timestamp_ns", "keyframe", "payload", "origin")
#: Kinds whose diff compares VRRL records, so ``--ignore`` names record fields.
_RECORD_KINDS: Final = frozenset({"ring", "megakernel"})


@dataclass(frozen=True, slots=True)
class Outcome:
    """What ``diff`` found: ``found`` is None when the two are the same."""

    compared: int
    unit: str
    found: Divergence | None = None
    context: tuple[str, ...] = ()
    ignored: tuple[str, ...] = ()
    others: tuple[str, ...] = field(default=())
    #: Every difference, for the formats whose kind can list them (as ``--replay-diff=full``).
    summary: DiffSummary | None = None


def _found_json(found: Divergence) -> dict[str, Any]:
    # The shape `diff --json` has always had (scripts read it): "kind" and "where" always.
    shown = {"index": found.index, "field": found.field, "expected": found.expected}
    shown |= {"actual": found.actual, "kind": found.kind, "where": found.at}
    return dict(jsonable(shown))


def _counted(count: int, unit: str) -> str:
    """``1 recording``, ``2 recordings``: units are given in the plural."""
    return f"{count} {unit[:-1] if count == 1 and unit.endswith('s') else unit}"


def run_diff(
    run: Run, a: Path, b: Path, ignore: Sequence[str] | None, report: Path | None = None
) -> int:
    from pytest_replay.report import render_summary, summary_json, write_diff_report

    left, right = formats.detect(a), formats.detect(b)
    if left.format != right.format or left.kind != right.kind:
        raise CliError(
            f"'{a}' is a {left.label} but '{b}' is a {right.label}",
            "diff two recordings of the same kind",
        )
    outcome = diff_detected(run, left, right, ignore)
    same = outcome.found is None
    written = None
    if report is not None:
        if outcome.summary is None:
            raise CliError(
                f"--report: a {left.label} is compared up to its first difference only",
                "drop --report, or diff two ring logs or stored recordings",
            )
        header = {"a": str(left.path), "b": str(right.path), "kind": left.kind or left.format}
        written = write_diff_report(report, "diff", header, outcome.summary)
    if run.json:
        run.emit_json(
            {
                "same": same,
                "format": left.format,
                "kind": left.kind,
                "a": str(left.path),
                "b": str(right.path),
                "compared": outcome.compared,
                "unit": outcome.unit,
                "divergence": None if outcome.found is None else _found_json(outcome.found),
                "context": list(outcome.context),
                "ignored": list(outcome.ignored),
                "other_differences": list(outcome.others),
                "summary": None if outcome.summary is None else summary_json(outcome.summary),
                "report": None if written is None else str(written),
            }
        )
    elif outcome.found is None:
        run.print(
            f"same: {left.path} and {right.path} hold the same {left.label} "
            f"({_counted(outcome.compared, outcome.unit)})"
        )
        if outcome.ignored:
            run.print(f"  ignored fields: {', '.join(outcome.ignored)}")
    else:
        run.print(f"different: {left.path} and {right.path} ({left.label})")
        run.print(f"  first divergence: {outcome.found.between()}")
        if outcome.context:
            run.print("  context (what A holds just before it):")
            for line in outcome.context:
                run.print(f"    {line}")
        if outcome.ignored:
            run.print(f"  ignored fields: {', '.join(outcome.ignored)}")
        for line in render_summary(outcome.summary) if outcome.summary is not None else ():
            run.print(f"  {line}")
        if written is not None:
            run.print(f"  complete diff: {written} (and {written.with_suffix('.json')})")
        if outcome.others:
            run.print(f"  {len(outcome.others)} more differing recording(s):")
            for line in outcome.others:
                run.print(f"    {line}")
    return EXIT_OK if same else EXIT_DIFFERENT


def diff_detected(
    run: Run, left: formats.Detected, right: formats.Detected, ignore: Sequence[str] | None
) -> Outcome:
    fmt = left.format
    if fmt == formats.VRRL:
        return diff_rings(run, left.path, right.path, ignore)
    if fmt == formats.FLEET_LOG:
        return diff_fleet_logs(run, left.path, right.path, ignore)
    if fmt == formats.RECORDS:
        return diff_record_files(left.path, right.path, ignore)
    if fmt == formats.STORE:
        return diff_stores(run, left.path, right.path, ignore)
    if fmt == formats.MANIFEST:
        return diff_manifests(left.path, right.path, ignore)
    if fmt == formats.FLEET_FOLDER:
        raise CliError(
            f"'{left.path}' and '{right.path}' are folders of fleet logs",
            "diff two fleet logs (name.flog), or two fleet recordings (.fleet)",
        )
    kind_name = left.kind if fmt == formats.RECORDING else formats.STORE_KIND_OF[fmt]
    assert kind_name is not None
    if fmt == formats.REDUCE:
        from pytest_replay.cli.records import load_result
        from pytest_replay.journal import result_to_msgpack

        expected = result_to_msgpack(load_result(left.path))
        actual = result_to_msgpack(load_result(right.path))
    else:
        expected = read_bounded(left.path, left.label)
        actual = read_bounded(right.path, right.label)
    from pytest_replay.cli.records import count_checked

    kind = formats.kind_registry().get(kind_name)
    count_checked(left.path, kind, expected)
    count_checked(right.path, kind, actual)
    return diff_with_kind(kind_name, expected, actual, _meta_for(left.path, ignore), ignore)


def _meta_for(path: Path, ignore: Sequence[str] | None) -> dict[str, Any]:
    """The meta a kind's diff gets: ``--ignore`` wins, else the manifest's meta of ``path``."""
    if ignore is not None:
        return {"volatile": list(ignore)}
    from pytest_replay.cli.records import manifest_entry

    entry = manifest_entry(path)
    return {} if entry is None else dict(entry[1].meta)


def diff_with_kind(
    kind_name: str,
    expected: bytes,
    actual: bytes,
    meta: Mapping[str, Any],
    ignore: Sequence[str] | None,
) -> Outcome:
    kind = formats.kind_registry().get(kind_name)
    if ignore and kind_name == "fleet":
        raise CliError(
            "fleet recordings are compared step by step in causal order and take no --ignore",
            "drop --ignore, or diff the fleet logs themselves (name.flog) with --ignore",
        )
    if ignore and kind_name in _RECORD_KINDS:
        _check_record_fields(ignore)
    found = kind.diff(expected, actual, meta)
    ignored = tuple(kind.ignored(meta))
    summary = None if kind.summarize is None else kind.summarize(expected, actual, meta)
    try:
        compared = kind.count(expected)
    except Exception:
        compared = 0
    if found is None:
        return Outcome(compared, "records", ignored=ignored)
    divergence, context = found
    return Outcome(
        compared,
        "records",
        dataclasses.replace(divergence, at=""),
        tuple(context),
        ignored,
        summary=summary,
    )  # fmt: skip


# --------------------------------------------------------------------------- rings


def diff_rings(run: Run, a: Path, b: Path, ignore: Sequence[str] | None) -> Outcome:
    from pytest_replay.cli.records import record_line
    from pytest_replay.diff import first_divergence, ring_summary
    from pytest_replay.formats.vrrl import VRRL

    ignored = VRRL.volatile if ignore is None else tuple(ignore)
    left = VRRL.records(VRRL.read(a))
    right = VRRL.records(VRRL.read(b))
    common = min(len(left), len(right))
    _check_record_fields(ignored)
    blocks = range(0, common, _BLOCK)
    found = None
    with run.bar("comparing records", len(blocks)) as bar:
        for start in blocks:
            stop = min(common, start + _BLOCK)
            hit = first_divergence(left[start:stop], right[start:stop], ignore=ignored)
            bar.advance()
            if hit is not None:
                assert hit.index is not None
                found = Divergence(start + hit.index, hit.field, hit.expected, hit.actual)
                break
    if found is None and len(left) != len(right):
        found = Divergence(common, "length", len(left), len(right), "length")
    context: tuple[str, ...] = ()
    if found is not None and found.index is not None:
        positions = range(len(left))  # a record array, indexed like a sequence
        context = context_window(
            positions, found.index, lambda i, _: record_line(VRRL.item(i, left[i]))
        )
    summary = None if found is None else ring_summary(left, right, ignored)
    return Outcome(len(left), "records", found, context, ignored, summary=summary)


def _check_record_fields(ignore: Sequence[str]) -> None:
    """Refuse ``--ignore`` names that are not VRRL record fields.

    Checked up front rather than by catching the comparison's ValueError,
    which also stands for damaged input that must not read as a bad name.
    """
    from pytest_replay.diff import RECORD_FIELDS

    _check_ignored(ignore, sorted(RECORD_FIELDS), "record field")


def _check_ignored(ignore: Sequence[str], known: Sequence[str], what: str) -> None:
    """Refuse ``--ignore`` names that are not among ``known`` (``what`` names them)."""
    unknown = sorted(set(ignore) - set(known))
    if unknown:
        raise CliError(
            f"unknown {what}(s) {', '.join(map(repr, unknown))} in --ignore",
            f"use names from {', '.join(known)}",
        )


# --------------------------------------------------------------------------- fleet logs


def diff_fleet_logs(run: Run, a: Path, b: Path, ignore: Sequence[str] | None) -> Outcome:
    from pytest_replay.fleet import FleetLogReader

    ignored = tuple(ignore or ())
    _check_ignored(ignored, _FLEET_LOG_FIELDS, "fleet step field")
    left, right = FleetLogReader(a), FleetLogReader(b)
    common = min(left.total_steps, right.total_steps)
    found: Divergence | None = None
    with run.bar("comparing steps", common) as bar:
        for index in range(common):
            want, got = left.step_at(index), right.step_at(index)
            found = _step_difference(index, want, got, left, right, ignored)
            bar.advance()
            if found is not None:
                break
    if found is None and left.total_steps != right.total_steps:
        found = Divergence(common, "length", left.total_steps, right.total_steps, "length")
    context: tuple[str, ...] = ()
    if found is not None and found.index is not None:
        steps = range(left.total_steps)
        context = context_window(steps, found.index, lambda i, _: _step_line(i, left.step_at(i)))
    return Outcome(left.total_steps, "steps", found, context, ignored)


def _step_line(index: int, step: Any) -> str:
    return (
        f"#{index} step_id={step.step_id} timestamp_ns={step.timestamp_ns} "
        f"messages={len(step.messages)}"
    )


def _step_difference(
    index: int, want: Any, got: Any, left: Any, right: Any, ignored: tuple[str, ...]
) -> Divergence | None:
    def origin(message: Any) -> tuple[int, int, int] | None:
        o = message.origin
        return None if o is None else (o.instance_id, o.subsystem_code, o.step_id)

    pairs: list[tuple[str, Any, Any]] = [("step_id", want.step_id, got.step_id)]
    if "timestamp_ns" not in ignored:
        pairs.append(("timestamp_ns", want.timestamp_ns, got.timestamp_ns))
    if "keyframe" not in ignored:
        kw, kg = left.keyframe_for(want.step_id), right.keyframe_for(got.step_id)
        pairs.append(
            ("keyframe", None if kw is None else kw.state, None if kg is None else kg.state)
        )
    mine, theirs = list(want.messages), list(got.messages)
    pairs.append(("messages.length", len(mine), len(theirs)))
    for position, (m, t) in enumerate(zip(mine, theirs, strict=False)):
        if "payload" not in ignored:
            pairs.append((f"messages[{position}].payload", m.payload, t.payload))
        if "origin" not in ignored:
            pairs.append((f"messages[{position}].origin", origin(m), origin(t)))
    for name, x, y in pairs:
        if x != y:
            return Divergence(index, name, x, y, at=f"step {want.step_id}")
    return None


# --------------------------------------------------------------------------- record files


def diff_record_files(a: Path, b: Path, ignore: Sequence[str] | None) -> Outcome:
    import dataclasses

    from pytest_replay.cli.records import journal_records_file, record_line
    from pytest_replay.diff import first_value_difference
    from pytest_replay.journal import JournalRecord

    ignored = tuple(ignore or ())
    known = [f.name for f in dataclasses.fields(JournalRecord)]
    _check_ignored(ignored, known, "journal record field")
    left, right = journal_records_file(a), journal_records_file(b)

    def plain(record: Any) -> dict[str, Any]:
        value: dict[str, Any] = jsonable(record)
        value["payload"] = {"type": type(record.payload).__name__, **jsonable(record.payload)}
        for name in ignored:
            value.pop(name, None)
        return value

    found: Divergence | None = None
    for index, (want, got) in enumerate(zip(left, right, strict=False)):
        hit = first_value_difference(plain(want), plain(got))
        if hit is not None:
            path, x, y = hit
            found = Divergence(index, path, x, y, at=f"record {want.record_id!r}")
            break
    if found is None and len(left) != len(right):
        found = Divergence(min(len(left), len(right)), "length", len(left), len(right), "length")
    context: tuple[str, ...] = ()
    if found is not None and found.index is not None:
        context = context_window(
            left, found.index, lambda i, r: record_line({"index": i, **plain(r)})
        )
    return Outcome(len(left), "records", found, context, ignored)


# --------------------------------------------------------------------------- manifests


def diff_manifests(a: Path, b: Path, ignore: Sequence[str] | None) -> Outcome:
    """Two ``manifest.json`` files, entry by entry, aligned on the recording name."""
    from pytest_replay.formats.manifest import MANIFEST

    if ignore:
        raise CliError(
            "manifests are compared entry by entry and take no --ignore",
            "drop --ignore, or diff the recordings they list",
        )
    left, right = MANIFEST.read(a), MANIFEST.read(b)
    found: list[Divergence] = []
    if left.nodeid != right.nodeid:
        found.append(Divergence(None, "nodeid", left.nodeid, right.nodeid))
    records = MANIFEST.records(left)
    theirs = {MANIFEST.diff_key(i, r): r for i, r in enumerate(MANIFEST.records(right))}
    ours = {MANIFEST.diff_key(i, r): (i, r) for i, r in enumerate(records)}
    for key in sorted(ours.keys() | theirs.keys(), key=str):
        index, mine = ours.get(key, (None, None))
        other = theirs.get(key)
        if mine is None or other is None:
            state = ("missing", "present") if mine is None else ("present", "missing")
            found.append(Divergence(index, "recording", *state, at=str(key)))
            continue
        want, got = mine[1].to_json(), other[1].to_json()
        found += [
            Divergence(index, name, want[name], got[name], at=str(key))
            for name in want
            if want[name] != got[name]
        ]
    if not found:
        return Outcome(len(records), "recordings")
    first = found[0]
    context: tuple[str, ...] = ()
    if first.index is not None:
        context = context_window(records, first.index, MANIFEST.render)
    others = tuple(other.between() for other in found[1:])
    return Outcome(len(records), "recordings", first, context, others=others)


# --------------------------------------------------------------------------- stores


def diff_stores(run: Run, a: Path, b: Path, ignore: Sequence[str] | None) -> Outcome:
    """Every recording of store A against the same recording of store B."""
    from pytest_replay.store import ReplayStore

    def recordings(root: Path) -> dict[tuple[str, str], tuple[Path, Any, Any]]:
        store = ReplayStore(root)
        out: dict[tuple[str, str], tuple[Path, Any, Any]] = {}
        for folder, _quiet in store.iter_manifests():
            manifest = store.load_manifest(folder)
            if manifest is None:
                continue
            for name, entry in manifest.recordings.items():
                out[(manifest.nodeid, name)] = (folder, entry, store)
        return out

    left, right = recordings(a), recordings(b)
    keys = sorted(set(left) | set(right))
    differences: list[tuple[str, Outcome]] = []
    with run.bar("comparing recordings", len(keys)) as bar:
        for key in keys:
            bar.advance()
            label = f"{key[0]} :: {key[1]}"
            if key not in right or key not in left:
                side = "B" if key not in right else "A"
                missing = Divergence(None, "recording", "present", "missing", at=label)
                if side == "A":
                    missing = Divergence(None, "recording", "missing", "present", at=label)
                differences.append((label, Outcome(0, "records", missing)))
                continue
            (fa, ea, sa), (fb, eb, sb) = left[key], right[key]
            if ea.kind != eb.kind:
                found = Divergence(None, "kind", ea.kind, eb.kind, at=label)
                differences.append((label, Outcome(0, "records", found)))
                continue
            if ea.digest == eb.digest:
                continue
            meta = {"volatile": list(ignore)} if ignore is not None else dict(ea.meta)
            outcome = diff_with_kind(
                ea.kind, sa.read_checked(fa, ea), sb.read_checked(fb, eb), meta, ignore
            )
            if outcome.found is not None:
                found = outcome.found
                differences.append(
                    (
                        label,
                        Outcome(
                            outcome.compared,
                            outcome.unit,
                            dataclasses.replace(found, at=label),
                            outcome.context,
                            outcome.ignored,
                            summary=outcome.summary,
                        ),
                    )
                )  # fmt: skip
    if not differences:
        return Outcome(len(keys), "recordings")
    first = differences[0][1]
    others = tuple(outcome.found.between() for _label, outcome in differences[1:] if outcome.found)
    return Outcome(
        len(keys), "recordings", first.found, first.context, first.ignored, others, first.summary
    )
