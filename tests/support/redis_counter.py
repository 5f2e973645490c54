"""A TCP proxy in front of Redis that counts round trips at the socket.

A round trip starts when a connection sends a command while it has no reply outstanding:
whatever it sends until every command so far is answered belongs to the same exchange, however
many commands it pipelines (a MULTI/EXEC or a redis-py pipeline is one, even when Redis starts
answering before the client has finished writing). Commands and replies are counted with
hiredis' RESP reader. Each exchange keeps the names of its commands, so a test can tell the
exchanges a request causes from background traffic such as the live feed's channel layer.
"""

from __future__ import annotations

import selectors
import socket
import threading
import time
from dataclasses import dataclass, field

import hiredis

from tests.support.net import HOST


@dataclass
class Exchange:
    connection: int
    at: float
    commands: list[str] = field(default_factory=list)
    raw: bytearray = field(default_factory=bytearray)

    def mentions(self, text: bytes) -> bool:
        return text in self.raw


class RedisRoundTripCounter:
    """Listens on 127.0.0.1:<port>, forwards every connection to ``upstream`` (host, port)."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.exchanges: list[Exchange] = []
        self._lock = threading.Lock()
        self._listener = socket.create_server((HOST, 0))
        self.port = self._listener.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def url(self, db: int) -> str:
        return f"redis://{HOST}:{self.port}/{db}"

    def since(self, start: float) -> list[Exchange]:
        with self._lock:
            return [e for e in self.exchanges if e.at >= start]

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._listener.close()

    def _serve(self) -> None:
        selector = selectors.DefaultSelector()
        self._listener.setblocking(False)
        selector.register(self._listener, selectors.EVENT_READ, None)
        peers: dict[socket.socket, tuple[socket.socket, _Link, bool]] = {}
        links: list[_Link] = []
        numbers = 0
        while not self._stop.is_set():
            waiting = any(link.held for link in links)
            for key, _ in selector.select(timeout=HOLD_S / 2 if waiting else 0.1):
                sock = key.fileobj
                if sock is self._listener:
                    client, _ = self._listener.accept()
                    upstream = socket.create_connection(self.upstream)
                    numbers += 1
                    link = _Link(numbers, client, upstream)
                    links.append(link)
                    peers[client] = (upstream, link, True)
                    peers[upstream] = (client, link, False)
                    selector.register(client, selectors.EVENT_READ, None)
                    selector.register(upstream, selectors.EVENT_READ, None)
                    continue
                other, link, from_client = peers[sock]
                try:
                    data = sock.recv(65536)
                except OSError:
                    data = b""
                if not data:
                    for s in (sock, other):
                        selector.unregister(s)
                        s.close()
                        peers.pop(s, None)
                    links.remove(link)
                    continue
                if from_client:
                    link.held += data
                    link.last = time.monotonic()
                else:
                    link.replies.feed(data)
                    while link.replies.gets() is not False:
                        link.outstanding -= 1
                    other.sendall(data)
            now = time.monotonic()
            for link in links:
                if link.held and now - link.last >= HOLD_S:
                    self._forward(link)
        selector.close()
        for sock in peers:
            sock.close()

    def _forward(self, link: _Link) -> None:
        """Send what the client wrote (all of it: it went quiet); count a new exchange when
        no command of the connection was waiting for its reply."""
        if link.exchange is None or link.outstanding == 0:
            link.exchange = Exchange(link.number, time.monotonic())
            with self._lock:
                self.exchanges.append(link.exchange)
        data, link.held = bytes(link.held), bytearray()
        link.exchange.raw += data
        link.commands.feed(data)
        while (command := link.commands.gets()) is not False:
            link.outstanding += 1
            link.exchange.commands.append(bytes(command[0]).decode().upper())
        link.upstream.sendall(data)


# A client writes a pipeline in several chunks, back to back; Redis may answer the first before
# the rest arrives. What a client writes is held until it has been quiet this long, so a
# pipeline reaches Redis whole and is counted as the one round trip it is.
HOLD_S = 0.002


@dataclass
class _Link:
    number: int
    client: socket.socket
    upstream: socket.socket
    held: bytearray = field(default_factory=bytearray)
    last: float = 0.0
    outstanding: int = 0
    exchange: Exchange | None = None
    commands: hiredis.Reader = field(default_factory=hiredis.Reader)
    replies: hiredis.Reader = field(default_factory=hiredis.Reader)
