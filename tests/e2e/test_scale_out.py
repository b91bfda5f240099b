"""Two instances sharing PostgreSQL, Redis and S3: any request may land on either."""

from __future__ import annotations

import os

import httpx

from tests.gateways import StartTarget
from tests.tus.client import (
    create,
    my_files,
    offset,
    open_patch,
    patch,
    sha256,
    upload_info,
    wait_for,
    writing,
)

MiB = 1024 * 1024


def _on(url: str, base: str) -> str:
    """The same upload URL, addressed to another instance."""
    return base + url[url.index("/files/") :]


def test_patches_alternating_between_instances_complete_correctly(
    start: StartTarget, user: str, http: httpx.Client
) -> None:
    target = start("services", instances=2)
    a, b = (gateway.url for gateway in target.gateways)
    data = os.urandom(23 * MiB + 11)
    url = create(http, target, user, len(data))
    position, turn = 0, 0
    while position < len(data):
        chunk = data[position : position + 3 * MiB + 7]
        instance = (a, b)[turn % 2]
        response = patch(http, target, user, _on(url, instance), position, chunk)
        assert response.status_code == 204, response.text
        position += len(chunk)
        turn += 1
    assert upload_info(http, target, user, _on(url, b))["sha256"] == sha256(data)
    assert [f["sha256"] for f in my_files(http, target, user)] == [sha256(data)]


def test_a_patch_on_one_instance_releases_a_stuck_patch_on_the_other(
    start: StartTarget, user: str, http: httpx.Client
) -> None:
    target = start("services", instances=2)
    a, b = (gateway.url for gateway in target.gateways)
    data = os.urandom(MiB)
    url = create(http, target, user, len(data))
    stuck = open_patch(target, user, _on(url, a), 0, len(data), data[:5000], base=a)
    try:
        wait_for(lambda: writing(http, target, user, url), "the first PATCH to hold the upload")
        response = patch(http, target, user, _on(url, b), 0, data)
        if response.status_code == 409:  # the stuck request had read and saved some bytes
            saved = int(response.text.rsplit(" ", 1)[1])
            assert 0 < saved <= 5000
            assert offset(http, target, user, _on(url, b)) == saved
            assert patch(http, target, user, _on(url, b), saved, data[saved:]).status_code == 204
        else:
            assert response.status_code == 204, response.text
        assert upload_info(http, target, user, url)["sha256"] == sha256(data)
    finally:
        stuck.close()
