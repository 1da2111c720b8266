"""The db drill's pure parts: its options, the async-leak check, the report and the picture,
the benchmark's table (no lab: a lab check would exit 3)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tasks.core.settings import REPO_ROOT
from tasks.drill.db_experiment import async_leaks
from tasks.drill.db_faults import DB_FAULTS
from tasks.drill.db_history import Marks, Op, analyze
from tasks.drill.db_record import DbDrillRun, DbExperiment
from tasks.drill.db_report import experiment_lines, repeat_lines
from tasks.drill.db_timeline_png import render_db_timeline
from tp5lab.inventory_factory import write_inventory


def drill(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "runbooks/failover_drill.py", *args], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=60)


@pytest.fixture()
def no_lab_config(tmp_path: Path) -> Path:
    config = write_inventory(tmp_path / "inv", 3)
    raw = yaml.safe_load(config.read_text())
    raw["user_defined"]["lab"]["bridge"] = "tp5nobridge"
    config.write_text(yaml.safe_dump(raw))
    return config


@pytest.mark.parametrize(("args", "words"), [
    (["--group", "db", "--fault", "stop"], ["--fault stop: not a fault of group db",
                                            "crash, kill, hang, link, replica-crash"]),
    (["--group", "db", "--target", "db2"], ["--target", "faults the actual primary"]),
    (["--group", "db", "--capture"], ["--capture", "no VRRP to capture"]),
])
def test_db_drill_options_are_checked_before_any_work(no_lab_config: Path, args: list[str],
                                                      words: list[str]) -> None:
    proc = drill("--config", str(no_lab_config), *args)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    error = next(line for line in proc.stderr.splitlines() if "error:" in line)
    assert all(w in error for w in words), error


def test_a_db_drill_without_the_lab_bridge_exits_3(no_lab_config: Path) -> None:
    proc = drill("--config", str(no_lab_config), "--group", "db", "--fault", "crash")
    assert proc.returncode == 3 and "Traceback" not in proc.stderr, proc.stderr


def test_every_fault_has_a_story_and_only_replica_crash_faults_the_replica() -> None:
    assert set(DB_FAULTS) == {"crash", "kill", "hang", "link", "replica-crash", "switchover"}
    assert [f.name for f in DB_FAULTS.values() if f.on_replica] == ["replica-crash"]
    assert [f.name for f in DB_FAULTS.values() if f.planned] == ["switchover"]


def replica_down(ops: list[Op]) -> DbExperiment:
    exp = DbExperiment("replica-crash", target="db2", successor="db1", ops=ops)
    exp.marks = Marks(fault=10.0, restoring=20.0, rejoined=24.0)
    return exp


def test_a_write_acknowledged_while_the_replica_was_down_is_an_async_leak() -> None:
    ops = [Op(0, "w0-1", 9.9, 10.05, "ok", "db1"),  # began before the crash: may be acked
           Op(0, "w0-2", 10.1, 19.0, "info", "db1"),  # blocked until its read timeout
           Op(1, "w1-7", 12.0, 12.01, "ok", "db1"),  # acknowledged with no replica: async
           Op(1, "w1-8", 15.0, 20.5, "ok", "db1"),  # acknowledged once the replica was back
           Op(1, "w1-9", 18.5, 22.0, "ok", "db1")]  # acked while it rejoined
    assert async_leaks(replica_down(ops)) == ["w1-7"]
    assert async_leaks(replica_down(ops[:2] + ops[3:])) == []
    assert async_leaks(DbExperiment("replica-crash", ops=ops)) == []  # no fault: nothing


def sample_run(tmp_path: Path) -> DbDrillRun:
    ops = [Op(w, f"w{w}-{i}", i * 0.5, i * 0.5 + 0.01, "ok", "db1" if i < 10 else "db2")
           for w in (0, 1) for i in range(16) if i not in (10, 11)]
    ops.append(Op(0, "w0-10", 5.0, 7.0, "info", "db1", "2013"))
    marks = Marks(fault=5.0, suspected=6.0, confirmed=6.5, promoting=6.5, promoted=6.9,
                  rejoined=5.8)
    exp = DbExperiment("crash", "db1", "db2", marks=marks, ops=ops,
                       writable_after_fault=["db2"], writable_at_end=["db2"])
    exp.history = analyze(ops, {o.key for o in ops if o.outcome == "ok"}, old_primary="db1",
                          marks=marks)
    exp.png = render_db_timeline(tmp_path / "db.png", exp)
    run = DbDrillRun("crash", 1)
    run.experiments.append(exp)
    return run


def test_the_report_names_the_figures_and_the_verdict(tmp_path: Path) -> None:
    run = sample_run(tmp_path)
    lines = experiment_lines(run.experiments[0])
    text = "\n".join(lines)
    assert lines[-1] == "PASS"
    assert "lost 0  phantom 0  info-committed 0  split-brain 0" in text
    assert "write outage 1.50 s: detection 1.00 s, confirmation 0.50 s, promotion 0.40 s" \
        in text
    data = run.to_dict()
    assert (data["lost"], data["phantom"], data["split_brain"]) == (0, 0, 0)
    exp = data["experiments"][0]
    for key in ("lost", "phantom", "info_committed", "split_brain", "divergence",
                "write_outage"):
        assert key in exp
    assert "MaxScale" in "\n".join(repeat_lines(run))
    assert (tmp_path / "db.png").read_bytes()[:4] == b"\x89PNG"


def test_the_benchmark_table_combines_saved_chunks(tmp_path: Path) -> None:
    runs = [{"ok": True, "problems": [], "lost": 0, "phantom": 0, "split_brain": 0,
             "info_committed": 1, "target": "db1", "counts": {},
             "write_outage": {"seconds": s, "detection_s": 1.0}} for s in (2.0, 3.0, 4.0)]
    chunks = []
    for i, part in enumerate((runs[:2], runs[2:])):
        chunk = tmp_path / f"chunk{i}.json"
        chunk.write_text(json.dumps({"fault": "crash", "runs": part}))
        chunks.append(str(chunk))
    proc = subprocess.run([sys.executable, "benchmarks/db_failover_bench.py", "--combine",
                           *chunks], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "3 runs" in proc.stdout and "lost 0, phantom 0, split-brain 0" in proc.stdout
    assert "p50 3.00 s, p95 4.00 s, max 4.00 s" in proc.stdout
    assert "orchestrator" in proc.stdout
