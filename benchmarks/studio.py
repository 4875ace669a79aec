"""The studio as a subprocess in headless Chromium's reach: start, wait until healthy, stop.

Shared by the app benchmark and the real-browser test, so both drive the app the same way.
"""
from __future__ import annotations

import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import IO

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"  # Debian's build; Playwright's own browser download is not used
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


def start_studio(env: dict[str, str], port: int, log: IO[bytes]) -> subprocess.Popen:
    """`streamlit run app.py` headless on 127.0.0.1:`port` with exactly `env`, its output in `log`."""
    return subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
         "--server.address", "127.0.0.1", "--server.port", str(port)],
        cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)


def wait_healthy(url: str, proc: subprocess.Popen, timeout: float = 90.0, poll: float = 0.1) -> None:
    """Wait for the server's health endpoint; fail early if the process died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"streamlit exited with code {proc.returncode}; see its log")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(poll)
    raise TimeoutError(f"{url} did not answer within {timeout:.0f} s")


def stop_studio(proc: subprocess.Popen, grace: float = 15.0) -> None:
    """Terminate the server, killing it when it does not exit within `grace` seconds."""
    proc.terminate()
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
