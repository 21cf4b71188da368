"""Headless Chromium driven over the Chrome DevTools Protocol (no Playwright, no browser download).

Uses Debian's ``/usr/bin/chromium`` (``KAIROS_CHROMIUM`` overrides the path)
and the ``websockets`` client: start the browser with a remote-debugging port,
attach to its page, navigate, evaluate JavaScript, take screenshots.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

from websockets.sync.client import ClientConnection, connect

from streams.tools.devstack import free_port

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--remote-allow-origins=*", "--window-size=1440,1100"]


def chromium_binary() -> str:
    """The Chromium executable; a clear error when there is none."""
    for candidate in (os.environ.get("KAIROS_CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium"),
                      shutil.which("chromium-browser")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise FileNotFoundError("Chromium not found: install Debian's chromium (apt-get install -y chromium)")


class HeadlessChromium:
    """One headless Chromium with one page, controlled over CDP; use as a context manager."""

    def __init__(self, workdir: Path, start_timeout: float = 30.0) -> None:
        port = free_port()
        self.log_path = workdir / "chromium.log"
        self.process = subprocess.Popen(
            [chromium_binary(), *FLAGS, f"--user-data-dir={workdir / 'profile'}", f"--remote-debugging-port={port}",
             "about:blank"],
            stdout=self.log_path.open("wb"), stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        self.exceptions: list[str] = []
        self._next_id = 0
        self._open = contextlib.ExitStack()
        self.page = self._attach(port, start_timeout)
        self.command("Runtime.enable")
        self.command("Page.enable")

    def _attach(self, port: int, timeout: float) -> ClientConnection:
        """Connect to the first page target once the debugging endpoint answers."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"Chromium exited with {self.process.returncode}: {self.log_path.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=1) as answer:
                    targets = json.load(answer)
            except OSError:
                time.sleep(0.1)
                continue
            pages = [t for t in targets if t.get("type") == "page"]
            if pages:
                return self._open.enter_context(
                    connect(pages[0]["webSocketDebuggerUrl"], max_size=64 * 1024 * 1024, open_timeout=10))
            time.sleep(0.1)
        self.close()
        raise TimeoutError(f"Chromium's debugging port {port} did not answer within {timeout:.0f} s")

    def command(self, method: str, **params: Any) -> dict[str, Any]:
        """Send one CDP command and return its result (events seen meanwhile are recorded)."""
        self._next_id += 1
        self.page.send(json.dumps({"id": self._next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.page.recv(timeout=30))
            if message.get("method") == "Runtime.exceptionThrown":
                details = message["params"]["exceptionDetails"]
                self.exceptions.append(details.get("exception", {}).get("description") or details.get("text", ""))
            if message.get("id") == self._next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message["result"]

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (promises awaited)."""
        result = self.command("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression!r} threw: {result['exceptionDetails']}")
        return result["result"].get("value")

    def navigate(self, url: str, timeout: float = 15.0) -> None:
        """Open ``url`` and wait until the document has loaded."""
        self.command("Page.navigate", url=url)
        self.wait_for("document.readyState === 'complete' && location.href !== 'about:blank'", timeout)

    def wait_for(self, expression: str, timeout: float, what: str = "") -> Any:
        """Poll ``expression`` until it is truthy; fail with ``what`` (or the expression) after ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            value = self.evaluate(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what or expression}")
            time.sleep(0.1)

    def screenshot(self, path: Path) -> Path:
        """A PNG of the whole page."""
        metrics = self.command("Page.getLayoutMetrics")["cssContentSize"]
        shot = self.command("Page.captureScreenshot", format="png", captureBeyondViewport=True,
                            clip={"x": 0, "y": 0, "width": metrics["width"], "height": metrics["height"], "scale": 1})
        path.write_bytes(base64.b64decode(shot["data"]))
        return path

    def close(self) -> None:
        """Close the connection and stop the browser."""
        self._open.close()
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def __enter__(self) -> HeadlessChromium:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

