"""Headless Chromium driven over the DevTools protocol on a pipe (`--remote-debugging-pipe`: JSON
messages, NUL-terminated, on file descriptors 3 and 4), no extra packages.

A live page (Server-Sent Events) never finishes loading, so `--dump-dom` alone reads it too
early and `--virtual-time-budget` waits forever; this waits for a condition in the page instead.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


class Browser:
    def __init__(self, profile: Path, width: int = 1400, height: int = 900, extra_args: tuple[str, ...] = ()) -> None:
        if CHROMIUM is None:
            pytest.fail("chromium is not installed: `apt-get install -y chromium` (see scripts/test.sh)")
        to_child, self._out = os.pipe()
        self._in, from_child = os.pipe()

        def pipes() -> None:  # in the child: the protocol's fixed descriptors
            os.dup2(to_child, 3)
            os.dup2(from_child, 4)

        self.process = subprocess.Popen(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
             "--hide-scrollbars", f"--window-size={width},{height}", f"--user-data-dir={profile}",
             "--remote-debugging-pipe", *extra_args, "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            preexec_fn=pipes, pass_fds=(3, 4))
        os.close(to_child)
        os.close(from_child)
        self._buffer = b""
        self._next = 0
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        self.call("Emulation.setDeviceMetricsOverride", session=True, width=width, height=height,
                  deviceScaleFactor=1, mobile=False)

    def call(self, method: str, *, session: bool = False, timeout: float = 30.0, **params: Any) -> dict[str, Any]:
        self._next += 1
        message: dict[str, Any] = {"id": self._next, "method": method, "params": params}
        if session:
            message["sessionId"] = self.session
        os.write(self._out, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            while b"\0" in self._buffer:
                raw, self._buffer = self._buffer.split(b"\0", 1)
                reply = json.loads(raw)
                if reply.get("id") == self._next:
                    if "error" in reply:
                        raise RuntimeError(f"{method}: {reply['error']}")
                    return reply["result"]
            self._buffer += os.read(self._in, 1 << 20)
        raise TimeoutError(f"{method}: no answer in {timeout} s")

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", session=True, expression=expression, returnByValue=True)
        return result["result"].get("value")

    def open(self, url: str, ready: str, timeout: float = 30.0) -> str:
        """Navigate, wait until the JavaScript expression `ready` is true, return the DOM as HTML."""
        self.call("Page.navigate", session=True, url=url)
        deadline = time.monotonic() + timeout
        while not self.evaluate(f"Boolean({ready})"):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{url}: {ready} not true after {timeout} s; page: "
                                   f"{(self.evaluate('document.documentElement.outerHTML') or '')[:1500]}")
            time.sleep(0.1)
        return self.evaluate("document.documentElement.outerHTML")

    def wait(self, ready: str, timeout: float = 30.0) -> str:
        """After a click that navigates: wait until `ready` holds in the new page, return its HTML."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                if self.evaluate(f"Boolean({ready})"):
                    return self.evaluate("document.documentElement.outerHTML")
            except RuntimeError:  # the page was between documents
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"{ready} not true after {timeout} s; page: "
                                   f"{(self.evaluate('document.documentElement.outerHTML') or '')[:1500]}")
            time.sleep(0.1)

    def screenshot(self) -> bytes:
        return base64.b64decode(self.call("Page.captureScreenshot", session=True, format="png")["data"])

    def close(self) -> None:
        os.close(self._out)
        os.close(self._in)
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
