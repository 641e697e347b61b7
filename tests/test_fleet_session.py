"""One replay session: lazy start, forward seek, keyframe rewind, the mock clock."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_replay.fleet import (
    FleetLogReader,
    FleetLogWriter,
    FleetSession,
    Keyframe,
    MockClock,
    ReplaySessionError,
    Step,
)
from pytest_replay.fleet.testing import (
    AppCall,
    CallLogApp,
    app_types,
    stack_for,
    write_identity_log,
)


def session_for(
    tmp_path: Path,
    keyframes: list[Keyframe],
    steps: int = 10,
    output: Path | None = None,
) -> tuple[FleetSession, list[AppCall]]:
    base = write_identity_log(
        tmp_path / "ping.flog",
        stack_for("ping", 0, 1),
        "m",
        steps=[Step(i * 10, 100 + i) for i in range(steps)],
        keyframes=keyframes,
        effective_config="cfg",
    )
    calls: list[AppCall] = []
    app = app_types([("ping", 0)], CallLogApp, calls)["ping"]
    session = FleetSession(
        instance_id=1,
        subsystem_id="ping",
        subsystem_code=0,
        reader=FleetLogReader(base),
        app_factory=lambda clock, out: app(1, "cfg", clock, out),
        output_log_path=output,
    )
    return session, calls


def names(calls: list[AppCall]) -> list[tuple[str, object]]:
    return [(c[2], c[3]) for c in calls]


def test_first_seek_starts_the_app_from_the_nearest_keyframe(tmp_path: Path) -> None:
    keyframes = [Keyframe(0, 1, b"a"), Keyframe(40, 50, b"b")]
    session, calls = session_for(tmp_path, keyframes)
    assert session.app is None and calls == []
    session.goto_step(60)
    assert names(calls) == [
        ("build", "cfg"),
        ("start", None),
        ("restore_keyframe", (40, 0)),
        ("replay_step", (40, 104, True)),
        ("replay_step", (50, 105, False)),
        ("replay_step", (60, 106, False)),
    ]
    assert session.current_index == 6 and session.last_keyframe == 40
    assert session.clock.now_ns() == 106


def test_forward_seek_replays_the_steps_between(tmp_path: Path) -> None:
    session, calls = session_for(tmp_path, [Keyframe(0, 1, b"a")])
    session.goto_step(10)
    del calls[:]
    session.goto_step(30)
    assert names(calls) == [("replay_step", (20, 102, False)), ("replay_step", (30, 103, False))]
    session.goto_step(30)  # already there: nothing happens
    session.goto_index(4)  # the engine's one-step move
    assert names(calls)[-1] == ("replay_step", (40, 104, False))


def test_rewind_restores_the_nearest_keyframe_at_or_before(tmp_path: Path) -> None:
    keyframes = [Keyframe(0, 1, b"a"), Keyframe(30, 7, b"b")]
    session, calls = session_for(tmp_path, keyframes)
    session.goto_step(80)
    del calls[:]
    session.goto_step(50)
    assert names(calls) == [
        ("restore_keyframe", (30, 108)),
        ("replay_step", (30, 103, True)),
        ("replay_step", (40, 104, False)),
        ("replay_step", (50, 105, False)),
    ]
    assert session.last_keyframe == 30
    del calls[:]
    session.goto_step(20)
    assert names(calls)[0] == ("restore_keyframe", (0, 105))


def test_the_clock_is_set_from_the_keyframe_before_the_first_step(tmp_path: Path) -> None:
    seen: list[int] = []

    class Watch(CallLogApp):
        def replay_step(self, clock: MockClock, step: Step, keyframe: Keyframe | None) -> None:
            seen.append(clock.now_ns())

        def restore_keyframe(self, keyframe: Keyframe) -> None:
            seen.append(-1)

    base = write_identity_log(
        tmp_path / "w.flog",
        stack_for("ping", 0, 1),
        None,
        steps=[Step(0, 5), Step(1, 9)],
        keyframes=[Keyframe(0, 3)],
    )
    clock_after_restore: list[int] = []
    session = FleetSession(
        instance_id=1,
        subsystem_id="ping",
        subsystem_code=0,
        reader=FleetLogReader(base),
        app_factory=lambda clock, out: Watch(1, "", clock, out),
    )
    original = session._restore

    def spy(app: object, target: int, why: str) -> int:
        index = original(app, target, why)  # type: ignore[arg-type]
        clock_after_restore.append(session.clock.now_ns())
        return index

    session._restore = spy  # type: ignore[method-assign]
    session.goto_step(1)
    assert clock_after_restore == [3]
    assert seen == [-1, 5, 9]


def test_no_keyframe_to_start_from(tmp_path: Path) -> None:
    session, _ = session_for(tmp_path, [Keyframe(50, 0)])
    with pytest.raises(
        ReplaySessionError, match="no keyframe is available to start replay"
    ) as info:
        session.goto_step(20)
    assert "instance 1 subsystem 'ping' at step 20" in str(info.value)
    assert "Fix:" in str(info.value)


def test_no_keyframe_to_rewind_to(tmp_path: Path) -> None:
    session, _ = session_for(tmp_path, [Keyframe(50, 0)])
    session.goto_step(70)
    with pytest.raises(ReplaySessionError, match="no keyframe is available to rewind replay"):
        session.goto_step(20)


def test_unknown_step_and_index(tmp_path: Path) -> None:
    session, _ = session_for(tmp_path, [Keyframe(0, 0)])
    with pytest.raises(
        ReplaySessionError, match="step 15 of instance 1 subsystem 'ping' is not in log"
    ):
        session.goto_step(15)
    with pytest.raises(ReplaySessionError, match="step index 10 is outside the 10 steps"):
        session.goto_index(10)


def test_reset_stops_the_app_and_removes_its_output_log(tmp_path: Path) -> None:
    out = tmp_path / "out/ping.flog"
    session, calls = session_for(tmp_path, [Keyframe(0, 0)], output=out)
    session.goto_step(20)
    session.reset()
    assert session.app is None and session.current_index is None
    assert names(calls)[-1] == ("stop", None)
    assert list(out.parent.glob("*")) == []
    session.goto_step(0)
    assert names(calls)[-4:] == [
        ("build", "cfg"),
        ("start", None),
        ("restore_keyframe", (0, 0)),
        ("replay_step", (0, 100, True)),
    ]
    session.close()
    session.close()  # idempotent
    assert [s.step_id for s in FleetLogReader(out).iter_steps()] == [0]
    session.reset()
    session.reset()  # idempotent
    assert list(out.parent.glob("*")) == []


def test_rewind_with_an_output_log_writes_what_a_fresh_session_writes(tmp_path: Path) -> None:
    keyframes = [Keyframe(0, 1, b"a"), Keyframe(30, 7, b"b")]
    fresh, _ = session_for(tmp_path / "a", keyframes, output=tmp_path / "a_out/ping.flog")
    fresh.goto_step(50)
    fresh.close()
    rewound, calls = session_for(tmp_path / "b", keyframes, output=tmp_path / "b_out/ping.flog")
    rewound.goto_step(80)
    del calls[:]
    rewound.goto_step(50)
    rewound.close()
    assert names(calls)[:3] == [("stop", None), ("build", "cfg"), ("start", None)]
    assert (tmp_path / "b_out/ping_0.flog").read_bytes() == (
        tmp_path / "a_out/ping_0.flog"
    ).read_bytes()
    assert [s.step_id for s in FleetLogReader(tmp_path / "b_out/ping.flog").iter_steps()] == [
        30,
        40,
        50,
    ]


def test_steps_across_many_sections_through_the_cache(tmp_path: Path) -> None:
    base = tmp_path / "many.flog"
    with FleetLogWriter(base, section_steps=2) as writer:
        writer.log_instantiated(stack_for("ping", 0, 1))
        writer.log_keyframe(Keyframe(0, 0))
        for i in range(40):
            writer.log(i, i)
    calls: list[AppCall] = []
    app = app_types([("ping", 0)], CallLogApp, calls)["ping"]
    reader = FleetLogReader(base)
    session = FleetSession(
        instance_id=1,
        subsystem_id="ping",
        subsystem_code=0,
        reader=reader,
        app_factory=lambda clock, out: app(1, "", clock, out),
    )
    for index in range(40):
        session.goto_index(index)
    assert [c[3][0] for c in calls if c[2] == "replay_step"] == list(range(40))  # type: ignore[index]
    assert len(reader.cached_sections) <= 8


def test_the_old_name_replay_session_still_works_with_a_deprecation_warning() -> None:
    import pytest_replay.fleet as fleet

    with pytest.warns(DeprecationWarning, match="FleetSession"):
        old = fleet.ReplaySession  # type: ignore[attr-defined]
    assert old is fleet.FleetSession
