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

    rows = [line for line in results.read_text().splitlines() if line.startswith("| (")]
    names = [row.split("|")[1].strip() for row in rows]
    assert [name[:3] for name in names] == ["(a)", "(b)", "(c)", "(d)", "(e)", "(e)", "(f)"]
    measured = [row for row in rows if "not installed" not in row]
    for row in measured:
        rows_per_second = float(row.split("|")[2].replace(",", ""))
        assert rows_per_second > 0, row
    assert "start latency" in results.read_text()
