"""Uploads that keep going while their gateway is killed under them, for the crash-point suite.

A ``Fleet`` runs many uploads at once, each in a thread with its own minimal tus client that
does what a resuming client does: an unanswered POST is sent again (the first may have left an
upload the client never hears of), and after any interruption it asks HEAD where to go on. A
client that loses its gateway waits for the test to start it again (``restarted``): it
synchronises on that event, never on time.
"""

from __future__ import annotations

import hashlib
import random
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TypeVar

import httpx

from tests.gateways import Target
from tests.tus.client import OCTETS

MiB = 1024 * 1024
T = TypeVar("T")
RESTART_TIMEOUT = 120.0  # the longest a client waits for the gateway to come back
BUSY = (423, 503)  # a killed request's lock, held until it expires: ask again
BUSY_ANSWERS = 50  # more in a row is a stuck upload, not a lock expiring


@dataclass
class Job:
    """One upload: ``data`` sent in PATCHes of ``chunk`` bytes, up to ``stop_at`` if set (an
    upload its client abandons there, for the sweeper to expire)."""

    owner: str
    data: bytes
    chunk: int
    partial: bool = False
    stop_at: int | None = None
    url: str | None = None
    unanswered_posts: int = 0
    acknowledged: int = 0

    @property
    def end(self) -> int:
        return len(self.data) if self.stop_at is None else self.stop_at

    @property
    def is_file(self) -> bool:
        """Whether the upload ends as a file of its owner's."""
        return not self.partial and self.stop_at is None

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


@dataclass
class Final:
    """A final upload (concatenation) of finished partial uploads."""

    owner: str
    parts: list[Job]
    url: str | None = None
    unanswered_posts: int = 0

    @property
    def data(self) -> bytes:
        return b"".join(part.data for part in self.parts)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


@dataclass
class Fleet:
    target: Target
    generation: int = 0  # how many times the gateway was started again
    acknowledged: int = 0  # bytes the gateway holds, per its answers: all uploads together
    kills: list[str] = field(default_factory=list)
    _changed: threading.Condition = field(default_factory=threading.Condition)

    # The test's side.

    def restarted(self, why: str) -> None:
        """The gateway died (``why``) and was started again: clients may go on."""
        with self._changed:
            self.generation += 1
            self.kills.append(why)
            self._changed.notify_all()

    def wait_for_bytes(self, count: int, until: Callable[[], bool]) -> bool:
        """Wait until ``count`` bytes were acknowledged (True) or ``until()`` holds (False)."""
        with self._changed:
            self._changed.wait_for(lambda: self.acknowledged >= count or until())
            return self.acknowledged >= count

    def run(
        self, pool: ThreadPoolExecutor, client: Callable[[T], None], uploads: Sequence[T]
    ) -> list[Future[None]]:
        """``client`` (``upload`` or ``concatenate``) on each of ``uploads``, in threads; the
        test's waits wake when one ends, even by failing."""
        futures = [pool.submit(client, upload) for upload in uploads]
        for future in futures:
            future.add_done_callback(lambda _: self._acknowledge(None, 0))
        return futures

    # The clients' side.

    def _client(self) -> httpx.Client:
        # No keep-alive: a connection to a killed gateway must never be reused after a restart.
        limits = httpx.Limits(max_keepalive_connections=0)
        return httpx.Client(timeout=60, trust_env=False, limits=limits)

    def _request(
        self, http: httpx.Client, method: str, url: str, **kwargs: object
    ) -> httpx.Response | None:
        """One request, asked again while the upload is busy; None when the gateway went away
        (after waiting for it to be back)."""
        for _ in range(BUSY_ANSWERS):
            seen = self.generation
            try:
                response = http.request(method, url, **kwargs)  # type: ignore[arg-type]
            except httpx.TransportError:
                assert self._wait_restart(seen), (
                    f"{method} {url} failed and the gateway was not restarted"
                )
                return None
            if response.status_code not in BUSY:
                assert response.status_code < 500, f"{method} {url}: {response.text}"
                return response
        raise AssertionError(f"{method} {url}: busy {BUSY_ANSWERS} times: {response.text}")

    def _wait_restart(self, seen: int) -> bool:
        with self._changed:
            return self._changed.wait_for(lambda: self.generation != seen, timeout=RESTART_TIMEOUT)

    def _acknowledge(self, job: Job | None, offset: int) -> None:
        """``job``'s bytes up to ``offset`` are in (a 204, or a HEAD after an answer was lost)."""
        with self._changed:
            if job is not None and offset > job.acknowledged:
                self.acknowledged += offset - job.acknowledged
                job.acknowledged = offset
            self._changed.notify_all()

    def upload(self, job: Job) -> None:
        with self._client() as http:
            while job.url is None:
                headers = self.target.headers(
                    job.owner,
                    Upload_Length=str(len(job.data)),
                    **({"Upload_Concat": "partial"} if job.partial else {}),
                )
                response = self._request(http, "POST", self.target.files_url, headers=headers)
                if response is None:
                    job.unanswered_posts += 1
                    continue
                assert response.status_code == 201, response.text
                job.url = response.headers["location"]
            while True:
                offset = self._offset(http, job.owner, job.url)
                self._acknowledge(job, offset)
                if offset >= job.end:
                    break
                end = min(offset + job.chunk, job.end)
                headers = self.target.headers(
                    job.owner, Upload_Offset=str(offset), Content_Type=OCTETS
                )
                response = self._request(
                    http, "PATCH", job.url, headers=headers, content=job.data[offset:end]
                )
                if response is None:
                    continue
                assert response.status_code in (204, 409), response.text  # 409: ask HEAD
                if response.status_code == 204:
                    self._acknowledge(job, end)
            if job.stop_at is None:
                self._until_done(http, job.owner, job.url)

    def concatenate(self, final: Final) -> None:
        urls = " ".join(str(part.url) for part in final.parts)
        with self._client() as http:
            while final.url is None:
                headers = self.target.headers(final.owner, Upload_Concat=f"final;{urls}")
                response = self._request(http, "POST", self.target.files_url, headers=headers)
                if response is None:
                    final.unanswered_posts += 1
                    continue
                assert response.status_code == 201, response.text
                final.url = response.headers["location"]
            self._until_done(http, final.owner, final.url)

    def _offset(self, http: httpx.Client, owner: str, url: str) -> int:
        while (
            response := self._request(http, "HEAD", url, headers=self.target.headers(owner))
        ) is None:
            pass
        assert response.status_code == 200, response.status_code
        return int(response.headers["upload-offset"])

    def _until_done(self, http: httpx.Client, owner: str, url: str) -> None:
        """Wait for the completion of an upload whose bytes are all in: each HEAD resumes a
        completion that a kill cut short."""
        info = f"{self.target.url}/api/uploads/{url.rsplit('/', 1)[1]}"
        while True:
            self._offset(http, owner, url)
            response = self._request(http, "GET", info, headers=self.target.headers(owner))
            if response is not None and response.json()["state"] == "done":
                return
            with self._changed:  # a completion in progress: look again soon
                self._changed.wait(0.05)


def jobs_for(rng: random.Random, owners: list[str], count: int, abandoned: int) -> list[Job]:
    """``count`` uploads of 0.1 to 12 MiB (two in five above the 5 MiB part size), in PATCHes
    of 1 to 3 MiB, spread over ``owners``; the last ``abandoned`` stop half-way."""
    jobs = []
    for index in range(count):
        size = (
            rng.randint(5 * MiB + 1, 12 * MiB) if index % 5 < 2 else rng.randint(MiB // 10, 4 * MiB)
        )
        job = Job(owners[index % len(owners)], rng.randbytes(size), rng.randint(1, 3) * MiB)
        if index >= count - abandoned:
            job.stop_at = size // 2
        jobs.append(job)
    return jobs


def finals_for(rng: random.Random, owner: str) -> tuple[list[Job], list[Final]]:
    """Two final uploads: one of partials S3 copies server-side (each over 5 MiB), one of
    small partials it must assemble into a part."""
    big = [
        Job(owner, rng.randbytes(rng.randint(5 * MiB + 1, 7 * MiB)), 2 * MiB, partial=True)
        for _ in range(2)
    ]
    small = [
        Job(owner, rng.randbytes(rng.randint(MiB // 2, MiB)), MiB, partial=True) for _ in range(3)
    ]
    return [*big, *small], [Final(owner, big), Final(owner, small)]
