"""A minimal HTTP/1.1 keep-alive client on asyncio streams, for load generation.

A load generator on the same cores as the server must cost little CPU per request: httpx
spends about 1.5 ms on each, this client a small fraction of that. One ``Connection`` sends one
request at a time on a persistent socket: it writes the request in one buffer and reads the
reply by its ``Content-Length`` (the only framing the server under test uses; anything else,
a malformed status line or a closed socket, is a ``ProtocolError``). The socket is reopened when
the server asked to close it, after an error, or when it has been idle for ``idle_seconds``
(below the server's keep-alive timeout, so no request races the server closing it).
A timed-out or failed request closes the socket.
"""

from __future__ import annotations

import asyncio
import json
import time


class ProtocolError(Exception):
    """The server's reply was not a well-formed HTTP/1.1 response with a Content-Length."""


class Connection:
    """One persistent HTTP/1.1 connection to `host`:`port`."""

    def __init__(self, host: str, port: int, *, idle_seconds: float = 2.0,
                 timeout: float = 10.0) -> None:  # fmt: skip
        self.host, self.port, self.idle_seconds, self.timeout = host, port, idle_seconds, timeout
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._last = 0.0
        self._host_line = f"Host: {host}:{port}\r\n"

    async def request(self, method: str, path: str, headers: dict[str, str],
                      body: object | None = None) -> tuple[int, bytes]:  # fmt: skip
        """Send one request (`body`, if given, as JSON) and return (status, body bytes);
        a reply not complete within ``timeout`` seconds is a ``ProtocolError``."""
        lines = [f"{method} {path} HTTP/1.1\r\n", self._host_line]
        lines += [f"{name}: {value}\r\n" for name, value in headers.items()]
        payload = b""
        if body is not None:
            payload = json.dumps(body).encode()
            lines.append("Content-Type: application/json\r\n")
        if body is not None or method in ("POST", "PUT", "PATCH"):
            lines.append(f"Content-Length: {len(payload)}\r\n")
        message = "".join(lines).encode("latin-1") + b"\r\n" + payload
        try:
            async with asyncio.timeout(self.timeout):
                if self._writer is None or time.monotonic() - self._last > self.idle_seconds:
                    await self._open()
                self._writer.write(message)
                status, reply, keep = await self._response()
        except (OSError, asyncio.IncompleteReadError, ProtocolError) as exc:
            self.close()
            if isinstance(exc, ProtocolError):
                raise
            raise ProtocolError(f"connection failed: {type(exc).__name__}: {exc}") from exc
        self._last = time.monotonic()
        if not keep:
            self.close()
        return status, reply

    async def _open(self) -> None:
        self.close()
        self._reader, self._writer = await asyncio.open_connection(self.host, self.port)

    async def _response(self) -> tuple[int, bytes, bool]:
        head = await self._reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        version, _, rest = lines[0].partition(" ")
        if not version.startswith("HTTP/1.") or not rest[:3].isdigit():
            raise ProtocolError(f"bad status line {lines[0]!r}")
        length, keep = None, version == "HTTP/1.1"
        for line in lines[1:]:
            name, _, value = line.partition(":")
            name = name.strip().lower()
            if name == "content-length":
                length = int(value)
            elif name == "connection":
                keep = value.strip().lower() == "keep-alive"
            elif name == "transfer-encoding":
                raise ProtocolError(f"unsupported Transfer-Encoding {value.strip()!r}")
        if length is None:
            raise ProtocolError("reply without Content-Length")
        return int(rest[:3]), await self._reader.readexactly(length), keep

    def close(self) -> None:
        """Close the socket (the next request opens a new one)."""
        if self._writer is not None:
            self._writer.close()
        self._reader = self._writer = None
