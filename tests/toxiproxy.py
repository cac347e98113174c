"""Toxiproxy between the workers and each broker: network faults on loopback.

``python tests/toxiproxy.py`` (``make fault-tools``) builds Shopify's Toxiproxy server with
``go install`` from the Go module proxy, as ``make k8s-tools`` builds its tools, into the same cache
(``~/.cache/streamscore/k8s``). :class:`Toxiproxy` runs it on a free loopback port and drives its
HTTP API: one proxy per broker (a broker advertises its proxy's port to clients, see
:class:`stream.tools.cluster.KafkaCluster`), and toxics on a proxy: ``latency`` (milliseconds
added), ``timeout`` (data stops; the connection closes after ``timeout`` ms, never with 0) and
``reset_peer`` (connections reset).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Collection
from types import TracebackType
from typing import Any, Literal

import k8s_tools

from stream.processes import die_with_parent
from stream.tools.broker import free_port

TOXIPROXY = ("github.com/Shopify/toxiproxy/v2/cmd/server", "v2.5.0")
BINARY = k8s_tools.CACHE / f"toxiproxy-{TOXIPROXY[1]}" / "server"
Stream = Literal["upstream", "downstream"]


def ready() -> bool:
    return BINARY.exists()


class Toxiproxy:
    """A Toxiproxy server on 127.0.0.1 and the proxies it holds, stopped on exit."""

    def __init__(self) -> None:
        self.port = free_port()
        self._proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Toxiproxy:
        if not ready():
            raise RuntimeError(f"{BINARY} is missing: run `make fault-tools` once")
        self._proc = subprocess.Popen(
            [str(BINARY), "-host", "127.0.0.1", "-port", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=die_with_parent,  # a test run that is killed takes its proxies with it
        )
        deadline = time.monotonic() + 20
        while True:
            try:
                self._call("GET", "/version")
                return self
            except (urllib.error.URLError, ConnectionError):
                if time.monotonic() > deadline or self._proc.poll() is not None:
                    raise RuntimeError("Toxiproxy did not start") from None
                time.sleep(0.1)

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._proc is not None:
            self._proc.terminate()
            self._proc.wait(10)

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}{path}",
            data=None if body is None else json.dumps(body).encode(),
            method=method,
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            text, kind = response.read(), response.headers.get_content_type()
        return json.loads(text) if text and kind == "application/json" else text

    def proxy(self, name: str, upstream_port: int, avoid: Collection[int] = ()) -> int:
        """A proxy to ``upstream_port`` on a free port not in ``avoid`` (ports planned for other
        processes that are not listening yet); the port it listens on."""
        listen_port = free_port()
        while listen_port in avoid:
            listen_port = free_port()
        self._call(
            "POST",
            "/proxies",
            {"name": name, "listen": f"127.0.0.1:{listen_port}", "upstream": f"127.0.0.1:{upstream_port}"},
        )
        return listen_port

    def add(
        self,
        proxy: str,
        kind: Literal["latency", "timeout", "reset_peer"],
        stream: Stream = "downstream",
        **attributes: int,
    ) -> str:
        """Put a toxic on ``proxy`` (e.g. ``add("broker-1", "latency", latency=2000)``); its name."""
        name = f"{kind}-{stream}"
        self._call(
            "POST",
            f"/proxies/{proxy}/toxics",
            {"name": name, "type": kind, "stream": stream, "toxicity": 1.0, "attributes": attributes},
        )
        return name

    def remove(self, proxy: str, toxic: str) -> None:
        self._call("DELETE", f"/proxies/{proxy}/toxics/{toxic}")

    def enabled(self, proxy: str, enabled: bool) -> None:
        """Disable a proxy (its connections close, new ones are refused) or enable it again."""
        self._call("POST", f"/proxies/{proxy}", {"enabled": enabled})


def main() -> None:
    go = k8s_tools.go_tool() or k8s_tools.fetch_go()
    k8s_tools.CACHE.mkdir(parents=True, exist_ok=True)
    k8s_tools.go_install(go, TOXIPROXY, BINARY)
    print(BINARY)


if __name__ == "__main__":
    sys.exit(main())
