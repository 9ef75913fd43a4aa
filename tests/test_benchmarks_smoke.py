"""The benchmark harness in its tiny mode, so that it does not rot (no timing is asserted)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_smoke_run_writes_every_scenario(tmp_path: Path) -> None:
    results = tmp_path / "RESULTS.md"
    command = [sys.executable, "-m", "benchmarks", "--smoke", "--out", str(results)]
    command += ["--work", str(tmp_path / "work")]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]

    scenarios = results.read_text().split("| target |")[0]
    rows = [line for line in scenarios.splitlines() if line.startswith("| (")]
    names = [row.split("|")[1].strip() for row in rows]
    expected = ["(a)", "(b)", "(b0)", "(b/10)", "(b1)", "(c)", "(d)", "(e)", "(e)", "(e)", "(e)"]
    expected += ["(f)", "(g)", "(j)", "(k0)", "(k)"]
    assert [name.split()[0] for name in names] == expected
    measured = [row for row in rows if "not installed" not in row]
    for row in measured:
        rows_per_second = float(row.split("|")[2].replace(",", ""))
        assert rows_per_second > 0, row
    text = results.read_text()
    assert "start latency" in text
    assert "| (b) / (a) | ≥ 0.9 |" in text, "the targets are judged in the same run"
