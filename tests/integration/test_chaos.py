"""The chaos script in its CI form: faults on, 30 files (some rewritten in place once done, so
their new versions are swapped in), 10 SIGKILLs: nothing lost or doubled, one media per file
holding its last bytes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

CHAOS = Path(__file__).parents[2] / "benchmarks" / "chaos.py"


@pytest.mark.timeout(240)
def test_chaos_30_files_10_kills() -> None:
    result = subprocess.run(
        [
            sys.executable,
            str(CHAOS),
            "--files",
            "30",
            "--kills",
            "10",
            "--seed",
            "7",
            "--deadline",
            "150",
        ],
        capture_output=True,
        text=True,
        timeout=200,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "every file done, exactly one media each" in result.stdout
    assert "rewritten in place" in result.stdout and "(0 rewritten" not in result.stdout
    assert "kill 10/10" in result.stdout
