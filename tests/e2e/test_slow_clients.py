"""Slow, idle and greedy clients: the gateway keeps answering everyone else.

- a PATCH trickling one byte a second holds its upload only; other users upload, download and
  list meanwhile, and once it falls silent for ``patch_idle_timeout_seconds`` it is ended with
  its bytes kept;
- thousands of idle connections, and connections that never finish their request head
  (slowloris), cost the others nothing and are closed after ``keep_alive_timeout_seconds``;
- a user may have ``max_concurrent_patches`` PATCHes sending at once (429 past it, on every
  instance together) and ``quota_max_uploads`` unfinished uploads (403 past it); abandoned
  uploads expire and give their room back;
- a JSON body left unfinished is given up on; a download never read holds only its reader's
  download slot.

Everything waits on events (a socket closing, an upload's ``writing`` flag), never on sleeps;
the only clock is the trickle's own pace.
"""

from __future__ import annotations

import hashlib
import os
import selectors
import socket
import subprocess
import threading
import time
from urllib.parse import urlsplit

import httpx
import pytest

from tests.download.client import fetch, store
from tests.gateways import StartTarget, Target, new_user
from tests.tus.client import (
    create,
    head,
    my_files,
    offset,
    open_patch,
    patch,
    read_response,
    wait_for,
    writing,
)

MiB = 1024 * 1024
IDLE_CONNECTIONS = 2000
SLOW_HEADS = 100


def _others_are_served(http: httpx.Client, target: Target) -> None:
    """Another user's whole round: upload, list, HEAD, download — each must succeed."""
    other = new_user()
    body = os.urandom(MiB + 7)
    checksum = store(http, target, other, body, name="other.bin")
    assert [item["sha256"] for item in my_files(http, target, other)] == [checksum]
    downloaded = fetch(http, target, other, checksum)
    assert downloaded.status_code == 200
    assert hashlib.sha256(downloaded.content).hexdigest() == checksum


def _listen_backlog(port: int) -> int:
    """The accept backlog of the socket listening on ``port`` (``ss``: Send-Q)."""
    listing = subprocess.run(
        ["ss", "-ltnH", f"sport = :{port}"], capture_output=True, text=True, check=True
    )
    return int(listing.stdout.split()[2])


def _closed_by_server(sock: socket.socket, timeout: float) -> bool:
    """Whether the server closes ``sock`` within ``timeout`` (EOF or reset)."""
    sock.settimeout(timeout)
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def test_a_trickling_patch_does_not_hold_up_anyone_and_keeps_its_bytes(
    start: StartTarget, user: str, http: httpx.Client
) -> None:
    target = start("embedded", TUSGATE_PATCH_IDLE_TIMEOUT_SECONDS="3")
    url = create(http, target, user, 1000)
    sock = open_patch(target, user, url, 0, 1000, b"x")
    trickled = threading.Event()
    stop = threading.Event()

    def trickle() -> None:
        """One byte a second until told to stop: the slow client."""
        while not stop.wait(1.0):
            sock.sendall(b"x")
            trickled.set()

    sender = threading.Thread(target=trickle, daemon=True)
    sender.start()
    try:
        assert trickled.wait(10)
        wait_for(lambda: writing(http, target, user, url), "the trickling PATCH to hold its upload")
        _others_are_served(http, target)
        # Still receiving: the round above did not wait for the trickle to end.
        assert writing(http, target, user, url)
        assert head(http, target, user, url).status_code == 200  # HEAD never waits on a PATCH
    finally:
        stop.set()
        sender.join(10)
    # Silent now: ended after the idle timeout, and every byte that arrived is kept.
    status, headers = read_response(sock)
    sock.close()
    assert status == 204
    kept = int(headers["upload-offset"])
    assert kept >= 2
    assert offset(http, target, user, url) == kept


@pytest.mark.parametrize("server", ["hypercorn", "uvicorn"])
def test_thousands_of_idle_connections_and_slow_heads_cost_the_others_nothing(
    start: StartTarget, http: httpx.Client, server: str
) -> None:
    # uvicorn alone closed none of them: app/uvicorn_protocol.py gives it the deadline.
    target = start("embedded", TUSGATE_KEEP_ALIVE_TIMEOUT_SECONDS="5", TUSGATE_SERVER=server)
    parts = urlsplit(target.url)
    address = (parts.hostname or "127.0.0.1", parts.port or 80)
    # The kernel queues a burst of new connections for the gateway to accept: with hypercorn's
    # backlog of 100, 2000 of them took 9 s here (the dropped ones retried their SYN after a
    # second); with 2048, 0.1 s.
    assert _listen_backlog(address[1]) >= IDLE_CONNECTIONS
    idle = [socket.create_connection(address) for _ in range(IDLE_CONNECTIONS)]
    slow = [socket.create_connection(address) for _ in range(SLOW_HEADS)]
    try:
        for sock in slow:  # a request head begun, never finished
            sock.sendall(f"PATCH /files/x HTTP/1.1\r\nHost: {parts.netloc}\r\nX-Slow:".encode())
        opened = time.monotonic()
        _others_are_served(http, target)
        served_in = time.monotonic() - opened
        for sock in slow:  # still sending, a byte at a time: no help
            sock.sendall(b"a")
        # Every idle or slow connection is closed by the gateway after the keep-alive timeout.
        selector = selectors.DefaultSelector()
        for sock in idle + slow:
            selector.register(sock, selectors.EVENT_READ)
        waiting = len(idle) + len(slow)
        deadline = time.monotonic() + 60
        while waiting and time.monotonic() < deadline:
            for key, _ in selector.select(timeout=1):
                selector.unregister(key.fileobj)
                assert _closed_by_server(key.fileobj, timeout=1)  # type: ignore[arg-type]
                waiting -= 1
        assert waiting == 0, f"{waiting} connections still open after 60 s"
        closed_in = time.monotonic() - opened
        print(f"\nanother user's round: {served_in:.2f} s; all closed after {closed_in:.1f} s")
    finally:
        for sock in idle + slow:
            sock.close()
    _others_are_served(http, target)


@pytest.mark.parametrize("kind", ["embedded", "services"])
def test_concurrent_patches_per_user_are_capped_on_every_instance(
    start: StartTarget, user: str, http: httpx.Client, kind: str
) -> None:
    # Services: two instances sharing Redis, one PATCH open on each, the third asked of the
    # first: refused although that instance alone holds one. Embedded: one instance.
    instances = 2 if kind == "services" else 1
    target = start(kind, instances=instances, TUSGATE_MAX_CONCURRENT_PATCHES="2")
    urls = [create(http, target, user, 1000) for _ in range(3)]
    holders = [
        open_patch(target, user, urls[0], 0, 1000, b"a" * 10, base=target.gateways[0].url),
        open_patch(target, user, urls[1], 0, 1000, b"b" * 10, base=target.gateways[-1].url),
    ]
    try:
        for url in urls[:2]:
            wait_for(
                lambda url=url: writing(http, target, user, url), "the PATCH to hold its upload"
            )
        refused = patch(http, target, user, urls[2], 0, b"c" * 10)
        assert refused.status_code == 429, refused.text
        assert refused.headers["retry-after"] == "5"
        assert refused.text == "too many uploads sending at once: 2 of max_concurrent_patches 2\n"
        assert offset(http, target, user, urls[2]) == 0  # refused before a byte was read
        # Creation with its first bytes still creates the upload, at offset 0.
        headers = target.headers(
            user, Upload_Length="10", Content_Type="application/offset+octet-stream"
        )
        created = http.post(target.files_url, headers=headers, content=b"d" * 10)
        assert created.status_code == 201, created.text
        assert created.headers["upload-offset"] == "0"
        # Another user is not concerned.
        other = new_user()
        theirs = create(http, target, other, 10)
        assert patch(http, target, other, theirs, 0, b"e" * 10).status_code == 204
        # At the cap, a PATCH of an upload held by a stuck PATCH still takes it over: the stuck
        # one lets go of the upload, and of its slot, first.
        taken = patch(http, target, user, urls[1], 0, b"b" * 10)
        assert taken.status_code in (204, 409), taken.text
    finally:
        holders[0].close()  # the client goes away: its bytes are kept, its slot freed
        holders[1].close()
    wait_for(lambda: not writing(http, target, user, urls[0]), "the first PATCH to end")
    assert offset(http, target, user, urls[0]) == 10
    accepted = patch(http, target, user, urls[2], 0, b"c" * 10)
    assert accepted.status_code == 204, accepted.text


def test_abandoned_uploads_count_until_they_expire(
    start: StartTarget, user: str, http: httpx.Client
) -> None:
    target = start(
        "embedded",
        TUSGATE_QUOTA_MAX_UPLOADS="5",
        TUSGATE_UPLOAD_EXPIRY_SECONDS="2",
        TUSGATE_SWEEP_INTERVAL_SECONDS="0.2",
    )
    abandoned = [create(http, target, user, 100) for _ in range(5)]
    refused = http.post(target.files_url, headers=target.headers(user, Upload_Length="100"))
    assert refused.status_code == 403
    assert refused.text == "uploads in progress limit: 5 of max_uploads 5\n"
    assert create(http, target, new_user(), 100)  # others are not concerned
    for url in abandoned:
        wait_for(lambda url=url: head(http, target, user, url).status_code == 410, "expiry")
    wait_for(
        lambda: (
            http.post(
                target.files_url, headers=target.headers(user, Upload_Length="100")
            ).status_code
            == 201
        ),
        "the sweeper to give the room back",
    )


def test_a_silent_json_body_is_given_up_on(start: StartTarget, user: str) -> None:
    """A JSON body had no time limit at all: a client could hold its request open for ever."""
    target = start("embedded", TUSGATE_PATCH_IDLE_TIMEOUT_SECONDS="2")
    parts = urlsplit(target.url)
    headers = target.headers(user, Content_Type="application/json", Content_Length="100")
    lines = ["POST /api/files/availability HTTP/1.1", f"Host: {parts.netloc}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 80)) as sock:
        sock.sendall(("\r\n".join(lines) + '\r\n\r\n{"checksums": [').encode())
        status, answer = read_response(sock)
    assert status == 408
    assert answer["content-type"] == "application/json"


def test_downloads_never_read_hold_only_their_readers_slots(
    start: StartTarget, user: str, http: httpx.Client
) -> None:
    """A reader that stops reading blocks its own download (no time limit: a slow link may
    take hours), holding one of its ``quota_max_concurrent_downloads`` slots and nothing
    else; closing the connection frees it."""
    target = start("embedded", TUSGATE_QUOTA_MAX_CONCURRENT_DOWNLOADS="2")
    body = os.urandom(64 * MiB)  # more than the socket buffers hold
    checksum = store(http, target, user, body)
    parts = urlsplit(target.url)
    stalled = []
    for _ in range(2):
        sock = socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 80))
        request = f"GET /download/{checksum} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
        request += f"Authorization: Bearer {target.token(user)}\r\n\r\n"
        sock.sendall(request.encode())
        head = b""
        while b"\r\n\r\n" not in head:  # the answer has begun: the slot is taken
            head += sock.recv(1)
        assert head.startswith(b"HTTP/1.1 200"), head
        stalled.append(sock)
    try:
        refused = fetch(http, target, user, checksum)
        assert refused.status_code == 429, refused.text
        _others_are_served(http, target)
    finally:
        for sock in stalled:
            sock.close()
    wait_for(lambda: fetch(http, target, user, checksum).status_code == 200, "the slots")
