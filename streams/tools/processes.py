"""Real ``kairos worker`` child processes, pointed at a settings object (used by the fault runs and the tests)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from streams.settings import KairosSettings
from streams.tools.devstack import terminate

#: What Faust logs once the worker runs every service (the ingest included), after its tables recovered.
READY_LINE = "[^Worker]: Ready"


def settings_env(settings: KairosSettings) -> dict[str, str]:
    """The same settings as KAIROS_* environment variables, for a worker process."""
    env = {}
    for name, value in settings.model_dump().items():
        if value is None:
            continue
        if hasattr(value, "get_secret_value"):
            value = value.get_secret_value()
        env[f"KAIROS_{name.upper()}"] = json.dumps(value) if isinstance(value, (dict, list, tuple, bool)) else str(value)
    return env


@dataclass
class WorkerProcess:
    """A real ``kairos worker`` child process; its output goes to ``log_path``."""

    settings: KairosSettings
    log_path: Path
    process: subprocess.Popen | None = None
    #: Stopped or killed on purpose (an exit otherwise is a crash).
    stopped: bool = False

    def start(self) -> WorkerProcess:
        env = dict(os.environ)
        env.update(settings_env(self.settings))
        self.process = subprocess.Popen(
            [sys.executable, "-m", "streams.cli", "worker"], env=env,
            stdout=self.log_path.open("ab"), stderr=subprocess.STDOUT, start_new_session=True,
            cwd=self.log_path.parent,
        )
        self.stopped = False  # after the new process is in place: a watcher never sees the old one as crashed
        return self

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL: no shutdown hooks, no commits, no flushes."""
        assert self.process is not None
        self.stopped = True
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM (a graceful stop), SIGKILL after ``timeout``; the exit code."""
        self.stopped = True
        return None if self.process is None else terminate(self.process, timeout)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def starts_ready(self) -> int:
        """How many times a process of this worker became ready (its log is kept across restarts)."""
        return self.log().count(READY_LINE)
