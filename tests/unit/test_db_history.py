"""The db drill's history analysis on histories built by hand (tasks.drill.db_history)."""

from __future__ import annotations

import pytest

from tasks.drill.db_history import Marks, Op, analyze, spread, write_outage


def ok(writer: int, seq: int, start: float, node: str = "db1", took: float = 0.01) -> Op:
    return Op(writer, f"w{writer}-{seq}", start, start + took, "ok", node)


def clean_failover() -> tuple[list[Op], Marks]:
    """Two writers on db1, db1 dies at t=10, db2 open at t=12.5, writes resume at 13."""
    ops = [ok(w, i, i * 1.0 + w * 0.5) for w in (0, 1) for i in range(10)]
    ops.append(Op(0, "w0-10", 10.0, 12.0, "info", "db1", "2013 lost connection"))
    ops.append(Op(1, "w1-10", 10.4, 11.4, "fail", "db1", "2003 cannot connect"))
    ops += [ok(w, 11 + i, 13.0 + i + w * 0.5, "db2") for w in (0, 1) for i in range(3)]
    marks = Marks(fault=10.0, suspected=11.0, confirmed=11.8, promoting=11.8, promoted=12.5)
    return ops, marks


def rows_of(ops: list[Op], *extra: str) -> set[str]:
    return {o.key for o in ops if o.outcome == "ok"} | set(extra)


def test_a_clean_history_gives_zeros_and_splits_the_outage() -> None:
    ops, marks = clean_failover()
    history = analyze(ops, rows_of(ops), old_primary="db1", old_rows=rows_of(ops[:20]),
                      marks=marks)
    assert history.clean and history.problems() == []
    assert (history.lost, history.phantom, history.split_brain) == ([], [], [])
    assert history.info_committed == []
    assert history.counts == {"ok": 26, "fail": 1, "info": 1}
    out = history.outage
    assert out is not None
    assert out.since == pytest.approx(9.51) and out.until == pytest.approx(13.01)
    assert out.seconds == pytest.approx(3.5)
    assert out.detection_s == pytest.approx(1.0)
    assert out.confirmation_s == pytest.approx(0.8)
    assert out.promotion_s == pytest.approx(0.7)
    assert out.discovery_s == pytest.approx(0.51)
    assert out.replica_wait_s is None  # no rejoin mark: writes went on at once


def test_the_wait_for_a_replica_is_its_own_part_of_the_outage() -> None:
    ops, marks = clean_failover()
    marks = Marks(**{**marks.__dict__, "rejoined": 12.9})
    out = write_outage(ops, marks)
    assert out is not None
    assert out.replica_wait_s == pytest.approx(0.4)
    assert out.discovery_s == pytest.approx(0.11)


def test_a_degraded_promotion_waits_for_no_replica_even_after_a_rejoin() -> None:
    ops, marks = clean_failover()
    marks = Marks(**{**marks.__dict__, "rejoined": 12.9, "degraded": True})
    out = write_outage(ops, marks)
    assert out is not None
    assert out.replica_wait_s is None
    assert out.discovery_s == pytest.approx(0.51)  # from the promotion, as without a rejoin


def test_an_info_write_that_committed_is_counted_not_blamed() -> None:
    ops, marks = clean_failover()
    history = analyze(ops, rows_of(ops, "w0-10"), marks=marks)
    assert history.info_committed == ["w0-10"] and history.clean


def test_a_lost_write_is_detected() -> None:
    ops, marks = clean_failover()
    rows = rows_of(ops) - {"w1-9"}  # acknowledged on db1, not on the promoted db2
    history = analyze(ops, rows, marks=marks)
    assert history.lost == ["w1-9"] and not history.clean
    assert "1 lost write(s): w1-9" in history.problems()


def test_a_phantom_row_is_detected() -> None:
    ops, marks = clean_failover()
    history = analyze(ops, rows_of(ops, "w1-10", "w7-1"), marks=marks)
    # w1-10 failed (certainly not applied) and w7-1 was never attempted.
    assert history.phantom == ["w1-10", "w7-1"] and not history.clean


def test_a_split_brain_write_is_detected() -> None:
    ops, marks = clean_failover()
    stray = ok(1, 99, 12.9, node="db1")  # the old primary acknowledged after the promotion
    history = analyze([*ops, stray], rows_of(ops), old_primary="db1",
                      old_rows=rows_of(ops[:20]) | {stray.key}, marks=marks)
    assert history.split_brain == ["w1-99"]
    assert history.old_primary_only == ["w1-99"]
    assert history.lost == ["w1-99"]  # and it is not on the primary either
    assert not history.clean


def test_a_write_acknowledged_by_the_old_primary_before_the_promotion_is_no_split_brain() -> None:
    ops, marks = clean_failover()
    late = ok(0, 50, 12.0, node="db1", took=0.6)  # started before the promotion
    history = analyze([*ops, late], rows_of(ops) | {late.key}, old_primary="db1", marks=marks)
    assert history.split_brain == [] and history.clean


def test_rows_only_on_the_old_primary_are_reported() -> None:
    ops, marks = clean_failover()
    history = analyze(ops, rows_of(ops), old_primary="db1",
                      old_rows=rows_of(ops) | {"w0-10"}, marks=marks)
    assert history.old_primary_only == ["w0-10"] and not history.clean


def test_outage_without_marks_has_no_split_and_needs_two_ok_writes() -> None:
    assert write_outage([ok(0, 1, 1.0)]) is None
    out = write_outage([ok(0, 1, 1.0), ok(0, 2, 5.0), ok(0, 3, 5.5)])
    assert out is not None and out.seconds == pytest.approx(4.0)
    assert (out.detection_s, out.confirmation_s, out.promotion_s, out.discovery_s) == (
        None, None, None, None)


def test_a_switchover_outage_is_promotion_then_discovery() -> None:
    ops = [ok(0, i, i * 0.1) for i in range(10)] + [ok(0, 10 + i, 1.5 + i * 0.1, "db2")
                                                    for i in range(5)]
    out = write_outage(ops, Marks(promoting=1.0, promoted=1.3))
    assert out is not None
    assert out.promotion_s == pytest.approx(0.3) and out.discovery_s == pytest.approx(0.21)
    assert out.detection_s is None


def test_an_unknown_outcome_is_refused() -> None:
    with pytest.raises(ValueError, match="maybe"):
        Op(0, "w0-1", 0.0, 1.0, "maybe")


def test_op_round_trips_through_a_dict() -> None:
    op = Op(2, "w2-5", 1.5, 2.0, "info", "db2", "2013")
    assert Op.from_dict(op.to_dict()) == op


def test_spread_gives_nearest_rank_p95() -> None:
    values = [float(v) for v in range(1, 21)]
    result = spread(values)
    assert result is not None
    assert (result["min"], result["median"], result["p95"], result["max"]) == (1, 10.5, 19, 20)
    assert spread([]) is None
