"""Smoke tests of the scale benchmark (bench/scale.py) at tiny sizes: it runs, and says what it must.

No timing is asserted (timings live in bench/RESULTS.md). What is checked is
the shape of the output, and that the data the scenarios measure is what they
claim: a directory of N tracts, and the same tract copied alone.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from tract import Tract

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "bench"

TARGETED = {
    "building: last / first": "<= 2x",
    "writer open + compile + close: among 4 / alone": "<= 2x",
    "read-only open + compile: among 4 / alone": "<= 2x",
    "RSS per commit after a writer open of a 400-commit tract": "<= 300 B",
    "peak RSS during close (above the baseline)": "<= open's peak",
    "read-only open of a 300-commit tract, fresh process": "<= 270 ms",
    "read-only open of a 200-commit tract, in-process": "<= 5 ms",
    "writer open of a 200-commit tract, in-process": "<= 5 ms",
    "query_by_config: read-only first / writer steady": "<= 2x",
    "snapshot or index / log, 4 tracts (bytes on disk)": "<= 10%",
    "snapshot or index / log, 400-commit tract (bytes on disk)": "<= 10%",
    "snapshot or index / log, 300-commit tract (bytes on disk)": "<= 10%",
}
"""Every target of the issue's table, as the tiny run names it."""


def run_scale(tmp_path: Path, *arguments: str) -> tuple[str, dict[str, Any]]:
    out = tmp_path / "scale.json"
    done = subprocess.run(
        [sys.executable, str(BENCH / "scale.py"), "--tiny", "--json", str(out), *arguments],
        capture_output=True, text=True, check=False, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout, json.loads(out.read_text())


def run_step(step: str, **arguments: Any) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, str(BENCH / "scale_child.py"), "--code", str(REPO), step, json.dumps(arguments)],
        capture_output=True, text=True, check=False, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_a_tiny_run_reports_every_target_with_a_value_and_a_verdict(tmp_path: Path) -> None:
    stdout, document = run_scale(tmp_path)
    rows = {row["label"]: row for row in document["rows"]}
    for label, target in TARGETED.items():
        assert label in rows, f"missing row {label!r}; rows: {sorted(rows)}"
        row = rows[label]
        assert row["target_text"] == target
        assert isinstance(row["values"]["after"], (int, float)) and row["values"]["after"] >= 0
        assert row["met"]["after"] in (True, False)
    for row in document["rows"]:
        assert set(row["values"]) == {"after"}
        assert all(value >= 0 for value in row["values"].values())
    assert stdout.startswith("## tract scale benchmark (tiny run)")
    assert "| figure | target | after |" in stdout
    assert document["sizes"]["tracts"] == 4 and document["codes"] == {"after": str(REPO)}


def test_the_raw_results_hold_every_sample_the_rows_come_from(tmp_path: Path) -> None:
    _, document = run_scale(tmp_path, "--only", "many", "--only", "grown")
    raw = document["raw"]["after"]
    assert set(raw) == {"many", "alone", "open_compile", "grown_build", "rss"}
    samples = raw["many"]["samples"]
    assert [sample["before"] for sample in samples] == [0, 1, 2, 3]  # groups of one tract: every tract timed
    for sample in samples:
        assert len(sample["open"]) == len(sample["close"]) == 1
    for where in ("many", "alone"):
        assert len(raw["open_compile"][where]["writer"]) == len(raw["open_compile"][where]["reader"]) == 1
    assert raw["rss"]["commits"] == 400 and raw["grown_build"]["events"] == 1 + 400 + 400 // 25
    labels = [row["label"] for row in document["rows"]]
    assert not any(label.startswith(("query_by_config", "snapshot or index")) for label in labels)


def test_two_checkouts_are_compared_side_by_side(tmp_path: Path) -> None:
    stdout, document = run_scale(tmp_path, "--code", f"one={REPO}", "--code", f"two={REPO}", "--only", "open")
    assert "| figure | target | one | two | two vs one |" in stdout
    for row in document["rows"]:
        assert set(row["values"]) == {"one", "two"}
    assert set(document["raw"]) == {"one", "two"}


def test_the_many_tracts_directory_holds_every_tract_and_the_copy_alone_is_the_same_tract(tmp_path: Path) -> None:
    many, alone = tmp_path / "many", tmp_path / "alone"
    built = run_step("build_many", directory=str(many), tracts=5, commits=30, group=2)
    assert [sample["before"] for sample in built["samples"]] == [0, 2]
    measured = built["measured"]
    run_step("copy_tract", source=str(many), tract_id=measured, destination=str(alone))
    for index in range(5):
        with Tract.open(many, tract_id=f"tract-{index:05d}", readonly=True) as t:
            assert len(t.log(limit=None)) > 0
    with Tract.open(many, tract_id=measured, readonly=True) as among, Tract.open(alone, readonly=True) as copy:
        assert copy.tract_id == measured
        assert copy.compile().messages == among.compile().messages
        assert copy.chain_head.hash == among.chain_head.hash
        assert copy.chain_head.position == among.chain_head.position
        assert copy.verify().ok


def test_the_event_factory_writes_what_tract_would(tmp_path: Path) -> None:
    """The scenarios write most data with the log directly: refuse to if the factory drifted from Tract."""
    code = f"import sys; sys.path.insert(0, {str(BENCH)!r}); import workload, pathlib; "
    code += f"workload.check_factory(pathlib.Path({str(tmp_path)!r}))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False, cwd=REPO)
    assert done.returncode == 0, done.stderr


def test_the_open_floor_bench_reports_every_part_for_the_records_of_the_log(tmp_path: Path) -> None:
    log_dir = tmp_path / "log"
    with Tract.open(log_dir, tract_id="only") as t:
        for i in range(30):
            t.user(f"question {i}")
    done = subprocess.run(
        [sys.executable, str(BENCH / "open_floor.py"), str(log_dir), "--runs", "1"],
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    lines = done.stdout.splitlines()
    assert lines[0].startswith(f"{log_dir}: 31 records")  # the tract created, then 30 commits
    parts = [line.split(" | ")[0].lstrip("| ") for line in lines[3:]]
    assert parts == [
        "floor: CRC-32 + SHA-256 + msgpack decode per record",
        "checked read of the tract (EventLog.read_hashed)",
        "fold into the commit view (CommitView.apply_hashed)",
        "Tract.open(readonly=True) + close",
    ]
