import subprocess
import sys


def test_cli_help_runs():
    r = subprocess.run([sys.executable, "-m", "minidistil.cli", "--help"], capture_output=True, text=True)
    assert r.returncode == 0
    assert "minidistil" in r.stdout
