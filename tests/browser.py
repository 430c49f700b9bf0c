"""A real headless Chromium driven through the Chrome DevTools protocol, for the report's tests.

`Browser()` starts Debian's `chromium` (which `.ci/run` installs when it is missing)
with a throwaway profile and no network use of its own; `open(path)` loads a page
and records every console message, uncaught exception and browser log entry at
level error (a Content-Security-Policy violation is one), and `evaluate` runs an
expression in the page and returns its value.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Any

from websockets.sync.client import ClientConnection, connect

CHROMIUM = "chromium"
STARTUP_SECONDS = 30
FLAGS = (
    "--headless=new",
    "--no-sandbox",  # the tests may run as root, where Chromium's sandbox refuses to start
    "--disable-gpu",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-default-apps",
    "--mute-audio",
    "--remote-debugging-port=0",
)


class Browser:
    """One Chromium process; use as a context manager."""

    def __init__(self) -> None:
        executable = shutil.which(CHROMIUM)
        if executable is None:
            raise RuntimeError("chromium is not installed: `apt-get install -y chromium` (.ci/run does it)")
        self._profile = tempfile.mkdtemp(prefix="tract-chromium-")
        self._process = subprocess.Popen(
            [executable, *FLAGS, f"--user-data-dir={self._profile}", "about:blank"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self._port = self._devtools_port()

    def _devtools_port(self) -> int:
        """Chromium writes the port it chose to `DevToolsActivePort` in the profile."""
        marker = Path(self._profile) / "DevToolsActivePort"
        deadline = time.monotonic() + STARTUP_SECONDS
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(
                    f"chromium exited at start: {self._process.stderr.read() if self._process.stderr else ''}"
                )
            if marker.exists():
                first = marker.read_text().split("\n", 1)[0].strip()
                if first.isdigit():
                    return int(first)
            time.sleep(0.05)
        raise RuntimeError("chromium did not open its DevTools port in time")

    def open(self, page: Path) -> Page:
        with urllib.request.urlopen(f"http://127.0.0.1:{self._port}/json/list", timeout=10) as answer:
            targets = json.load(answer)
        target = next(target for target in targets if target["type"] == "page")
        return Page(target["webSocketDebuggerUrl"], page)

    def close(self) -> None:
        self._process.terminate()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        if self._process.stderr is not None:
            self._process.stderr.close()
        shutil.rmtree(self._profile, ignore_errors=True)

    def __enter__(self) -> Browser:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()


class Page:
    """A loaded page: `errors` lists what it reported at level error, `evaluate` asks it things."""

    def __init__(self, url: str, path: Path) -> None:
        self._socket: ClientConnection = connect(url, max_size=None, open_timeout=10).__enter__()
        self._next_id = 0
        self.errors: list[str] = []
        self.console: list[str] = []
        for domain in ("Runtime", "Log", "Page"):
            self._call(f"{domain}.enable")
        self._call("Page.navigate", url=path.resolve().as_uri())
        self._wait_for("Page.loadEventFired")

    def evaluate(self, expression: str) -> Any:
        """The value of `expression` in the page (awaited if it is a promise)."""
        answer = self._call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in answer:
            raise AssertionError(f"{expression!r} threw: {answer['exceptionDetails']}")
        return answer["result"].get("value")

    def close(self) -> None:
        self._socket.__exit__(None, None, None)

    def _call(self, method: str, **params: Any) -> dict[str, Any]:
        self._next_id += 1
        wanted = self._next_id
        self._socket.send(json.dumps({"id": wanted, "method": method, "params": params}))
        while True:
            message = self._receive()
            if message.get("id") == wanted:
                if "error" in message:
                    raise AssertionError(f"{method}: {message['error']}")
                return message.get("result", {})

    def _wait_for(self, event: str, seconds: float = 30) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self._receive(timeout=max(0.1, deadline - time.monotonic())).get("method") == event:
                return
        raise AssertionError(f"no {event} within {seconds} s")

    def _receive(self, timeout: float = 30) -> dict[str, Any]:
        message: dict[str, Any] = json.loads(self._socket.recv(timeout=timeout))
        method, params = message.get("method"), message.get("params", {})
        if method == "Runtime.consoleAPICalled":
            text = " ".join(str(arg.get("value", arg.get("description", ""))) for arg in params.get("args", []))
            self.console.append(f"{params.get('type')}: {text}")
            if params.get("type") in ("error", "assert"):
                self.errors.append(f"console.{params.get('type')}: {text}")
        elif method == "Runtime.exceptionThrown":
            self.errors.append(f"uncaught: {params['exceptionDetails'].get('exception', {}).get('description')}")
        elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
            self.errors.append(f"log: {params['entry']['text']}")
        return message


def without_security_policy(page: Path, copy: Path) -> Path:
    """A copy of `page` without its Content-Security-Policy: what its escaping alone must make safe."""
    html = page.read_text(encoding="utf-8")
    stripped, count = re.subn(r'<meta http-equiv="Content-Security-Policy" content="[^"]*">', "", html, count=1)
    assert count == 1, "the page has no Content-Security-Policy to take out"
    copy.write_text(stripped, encoding="utf-8")
    return copy
