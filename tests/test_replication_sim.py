"""Simulator scenarios, the trace and its stored format."""

from __future__ import annotations

import struct

import pytest

from pytest_replay.replication import (
    Crash,
    Forgery,
    LinkSpec,
    NetworkSchedule,
    Partition,
    ReplicaRole,
    Simulation,
    TraceFormatError,
    WriteStream,
    convergence_problems,
    decode_trace,
    encode_trace,
    safety_problems,
    verify_trace,
)
from pytest_replay.replication.config import UnderCapacity
from pytest_replay.replication.messages import SyncEvent, SyncResponse, channel_id_for
from pytest_replay.replication.sim import first_trace_divergence, purpose_seed
from pytest_replay.replication.trace import TraceEvent, render_event

R = ReplicaRole


def kinds(sim: Simulation, kind: str) -> list[list[object]]:
    assert sim.trace is not None
    return [e for e in sim.trace.events if e[1] == kind]


def healthy(nodes=(1, 2, 3), end_ms=3_000, **extra: object) -> NetworkSchedule:
    return NetworkSchedule(seed=11, nodes=nodes, end_ms=end_ms, **extra)  # type: ignore[arg-type]


def test_cluster_elects_the_lowest_id_and_replicates_writes() -> None:
    schedule = healthy(writes=(WriteStream(1_000, 50, 10, 200),), quiet_after_ms=2_000)
    sim = Simulation(schedule).run()
    assert sim.leaders() == [1]
    assert convergence_problems(sim) == []
    assert [n.log.next_seq for n in sim.nodes.values()] == [200, 200, 200]
    assert safety_problems(sim.trace.events, schedule.nodes) == []  # type: ignore[union-attr]
    roles = [(e[2], e[4]["to"]) for e in kinds(sim, "role")]
    assert (1, "LEADER") in roles and sim.stats.writes_accepted == 200


def test_silent_leader_triggers_election_among_survivors() -> None:
    sim = Simulation(healthy(crashes=(Crash(1, 1_000),), end_ms=2_500)).run()
    assert sim.roles() == {1: None, 2: R.LEADER, 3: R.REPLICA}
    signals = [e[4]["signal"] for e in kinds(sim, "role") if e[0] > 1_000]
    assert "MissedHeartbeats" in signals and "ElectionWon" in signals
    assert any(e[4]["reason"] == "down" for e in kinds(sim, "drop"))


def test_partition_heal_converges_to_the_longer_log() -> None:
    schedule = healthy(
        end_ms=6_000,
        quiet_after_ms=3_000,
        partitions=(Partition(1_000, 2_500, (1,)),),
        writes=(WriteStream(1_200, 100, 5, 50),),
    )
    sim = Simulation(schedule)
    sim.run_until(2_400)
    # Node 1 kept leading its side and took every write; 2 and 3 settled on 2 meanwhile.
    assert sim.leaders() == [1, 2]
    assert sim.node(1).log.next_seq == 50 > sim.node(2).log.next_seq
    sim.run()
    concede = [e for e in kinds(sim, "concede") if e[0] >= 2_500]
    assert [(e[2], e[3]) for e in concede] == [(2, 1)]
    assert sim.leaders() == [1] and convergence_problems(sim) == []


def test_restarted_node_with_the_longest_log_takes_the_lead() -> None:
    schedule = healthy(
        end_ms=8_000,
        quiet_after_ms=4_000,
        link=LinkSpec(latency_ms=5),
        links=tuple((1, d, LinkSpec(latency_ms=5, drop=1.0)) for d in (2, 3)),
        writes=(WriteStream(1_000, 100, 5, 125),),
        crashes=(Crash(1, 2_000, 3_000),),
    )
    sim = Simulation(schedule).run()
    # Node 1 could never ship anything to 2 and 3 (2 led them meanwhile); while 1 was
    # down nobody held the longest log, so writes were refused until 1 came back as
    # a replica of 2, saw 2 advertise less than it held, and stood for election.
    assert sim.stats.writes_rejected > 0
    behind = [e for e in kinds(sim, "role") if e[4]["signal"] == "LeaderBehind"]
    assert [e[2] for e in behind] == [1]
    assert sim.leaders() == [1]
    assert sim.node(2).log.next_seq == sim.node(1).log.next_seq == sim.stats.writes_accepted


def test_crash_keeps_the_log_and_loses_the_runtime() -> None:
    schedule = healthy(writes=(WriteStream(500, 100, 2, 10),), crashes=(Crash(3, 1_500, 2_000),))
    sim = Simulation(schedule)
    sim.run_until(1_600)
    node = sim.node(3)
    assert not node.up and node.role is None and node.log.next_seq == 10
    sim.run()
    starts = [(e[0], e[4]) for e in kinds(sim, "start") if e[2] == 3]
    assert starts[-1] == (2_000, {"incarnation": 2, "tail": 10})
    assert node.up and node.role is R.REPLICA


def test_forged_messages_never_apply() -> None:
    schedule = healthy(
        forgeries=(
            Forgery(700, 99, 2, "response"),
            Forgery(710, 99, 2, "heartbeat"),
            Forgery(720, 99, 1, "request"),
            Forgery(730, 3, 2, "response"),
            Forgery(740, 1, 2, "nack"),
        ),
    )
    sim = Simulation(schedule).run()
    forged = {e[4]["wire"] for e in kinds(sim, "deliver") if "forged" in e[4]}
    assert len(forged) == 5
    rejects = {e[4]["wire"]: e[4]["reason"] for e in kinds(sim, "reject")}
    assert {rejects[w] for w in forged} <= {"not_in_replica_set", "unknown_token"}
    assert all(e[4]["wire"] not in forged for e in kinds(sim, "apply"))
    runtime = sim.node(2).runtime
    assert runtime is not None and runtime.state.tracker.believed_leader() == 1
    assert sim.node(2).log.next_seq == 0


def test_lossy_duplicating_reordering_network_still_converges() -> None:
    schedule = NetworkSchedule(
        seed=5,
        nodes=(1, 2, 3, 4, 5),
        end_ms=8_000,
        quiet_after_ms=4_000,
        link=LinkSpec(latency_ms=8, jitter_ms=6, drop=0.2, duplicate=0.2, reorder=0.3),
        writes=(WriteStream(600, 20, 3, 300),),
    )
    sim = Simulation(schedule).run()
    drops = {e[4]["reason"] for e in kinds(sim, "drop")}
    assert "loss" in drops
    assert any("duplicate" in e[4] for e in kinds(sim, "deliver"))
    assert convergence_problems(sim) == []
    assert safety_problems(sim.trace.events, schedule.nodes) == []  # type: ignore[union-attr]


def test_retention_on_the_leader_makes_late_replicas_skip_ahead() -> None:
    schedule = healthy(
        end_ms=6_000,
        quiet_after_ms=3_000,
        retention_max_events=20,
        writes=(WriteStream(500, 50, 2, 100),),
        crashes=(Crash(3, 400, 2_500),),
    )
    sim = Simulation(schedule).run()
    skips = kinds(sim, "skip_ahead")
    # Node 3 comes back below the leader's retained range: BadRange NACKs send it to the
    # leader's floor (again while the writes keep trimming it), never backwards.
    assert skips and {(e[2], e[4]["cause"]) for e in skips} == {(3, "bad_range")}
    targets = [e[4]["to_seq"] for e in skips]
    assert targets == sorted(set(targets))
    assert any(e[4]["code"] == "BAD_RANGE" for e in kinds(sim, "deliver") if "code" in e[4])
    assert convergence_problems(sim) == []
    metrics = sim.node(3).registry.for_channel(schedule.channel_name)
    assert metrics.skip_ahead_total == len(skips)
    assert sim.node(3).log.first_retained_seq <= sim.node(1).log.first_retained_seq


def test_disk_pressure_withdraws_a_replica() -> None:
    schedule = healthy(
        capacity_bytes=((3, 64),),
        on_under_capacity=UnderCapacity.WITHDRAW,
        writes=(WriteStream(500, 100, 4, 40),),
    )
    sim = Simulation(schedule).run()
    assert sim.node(3).role is R.IDLE
    [pressure] = kinds(sim, "disk_pressure")
    assert pressure[2] == 3 and pressure[4]["policy"] == "withdraw"
    assert sim.node(3).registry.for_channel(schedule.channel_name).under_capacity_total == 1


def test_inject_and_unknown_node() -> None:
    sim = Simulation(healthy(end_ms=1_000))
    sim.run_until(600)
    cid = channel_id_for("sim/replicated")
    wire = sim.inject(1, 2, SyncResponse(cid, 0, 0, (SyncEvent(0, b"x"),), 123))
    sim.run()
    [delivered] = [e for e in kinds(sim, "deliver") if e[4]["wire"] == wire]
    assert delivered[4]["forged"] == 1
    with pytest.raises(Exception, match="Fix:"):
        sim.node(42)


def test_run_until_converged_reports_the_time() -> None:
    sim = Simulation(healthy(end_ms=10_000))
    done = sim.run_until_converged(5_000)
    assert done is not None and 300 <= done <= 1_000
    assert Simulation(healthy(nodes=(1, 2), end_ms=0)).run_until_converged(0) is None


# ---------------------------------------------------------------- determinism and replay


def busy_schedule(seed: int) -> NetworkSchedule:
    return NetworkSchedule(
        seed=seed,
        nodes=(1, 2, 3, 4),
        end_ms=5_000,
        quiet_after_ms=2_500,
        link=LinkSpec(latency_ms=4, jitter_ms=4, drop=0.1, duplicate=0.1, reorder=0.2),
        partitions=(Partition(800, 1_600, (2, 4)),),
        crashes=(Crash(1, 1_000, 1_900),),
        writes=(WriteStream(400, 30, 2, 100),),
        forgeries=(Forgery(900, 1_003, 3, "response"),),
    )


def test_same_seed_same_trace_byte_for_byte() -> None:
    first = Simulation(busy_schedule(3)).run().encoded_trace()
    again = Simulation(busy_schedule(3)).run().encoded_trace()
    other = Simulation(busy_schedule(4)).run().encoded_trace()
    assert first == again and first != other


def test_verify_trace_replays_and_finds_tampering() -> None:
    data = Simulation(busy_schedule(3)).run().encoded_trace()
    assert verify_trace(data) is None
    stored = decode_trace(data)
    stored.events[7][4] = dict(stored.events[7][4], tail=999_999)
    found = first_trace_divergence(stored.events, Simulation(stored.schedule).run().trace.events)  # type: ignore[union-attr]
    assert found is not None and found.index == 7
    shorter = encode_trace(stored.schedule, decode_trace(data).events[:-3])
    found = verify_trace(shorter)
    assert found is not None and found.kind == "length"


def test_purpose_seed_is_stable() -> None:
    assert purpose_seed(1, "network") == purpose_seed(1, "network") != purpose_seed(2, "network")
    # Pinned: BLAKE2b of "0:start:3", so a seed never changes between releases or hosts.
    assert purpose_seed(0, "start", 3) == 0xB4B81BFC7F0E1D66


# ---------------------------------------------------------------- trace format


def test_trace_round_trip_and_rendering() -> None:
    sim = Simulation(healthy(end_ms=800)).run()
    data = sim.encoded_trace()
    decoded = decode_trace(data, "t.rpltrace")
    assert decoded.schedule == sim.schedule
    assert decoded.events == sim.trace.events  # type: ignore[union-attr]
    event = decoded.decoded()[0]
    assert isinstance(event, TraceEvent) and event.raw() == decoded.events[0]
    assert render_event(0, decoded.events[0]).startswith("#0 t=")


def corrupt(data: bytes, offset: int, value: bytes) -> bytes:
    return data[:offset] + value + data[offset + len(value) :]


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d[:10], "truncated: 10 bytes"),
        (lambda d: corrupt(d, 0, b"NOTTRACE"), "bad magic"),
        (lambda d: corrupt(d, 8, struct.pack("<H", 9)), "unknown trace format version 9"),
        (lambda d: corrupt(d, 12, struct.pack("<I", 1 << 30)), "runs past the end"),
        (lambda d: corrupt(d, 16, struct.pack("<I", 1 << 30)), "cannot fit"),
        (lambda d: d[:-1], "no end frame after the last announced event"),
        (lambda d: d[:-44], "truncated: the trace ends after its last event"),
        (lambda d: d + b"\x95\x01\xa1x\x01\x01\x80", "7 bytes follow the end frame"),
        (lambda d: corrupt(d, 16, struct.pack("<I", 1)), "no end frame after the last announced"),
        (lambda d: corrupt(d, 20, b"\xc1"), "header is not msgpack"),
    ],
)
def test_corrupt_traces_raise_with_offsets(mutate: object, message: str) -> None:
    data = Simulation(healthy(end_ms=500)).run().encoded_trace()
    bad = mutate(data)  # type: ignore[operator]
    with pytest.raises(TraceFormatError, match=message) as caught:
        decode_trace(bad, "x.rpltrace")
    text = str(caught.value)
    assert text.startswith("x.rpltrace: ") and "byte offset" in text and "Fix:" in text


def test_trace_with_a_malformed_event_is_rejected() -> None:
    sim = Simulation(healthy(end_ms=500)).run()
    assert sim.trace is not None
    events = [*sim.trace.events, [1, "x", 1, 1, {"k": 1.5}]]
    with pytest.raises(TraceFormatError, match=r"is not \[time_ms"):
        decode_trace(encode_trace(sim.schedule, events))
