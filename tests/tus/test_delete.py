"""DELETE: termination of unfinished uploads, and of finished ones."""

from __future__ import annotations

import httpx

from tests.gateways import Target, new_user
from tests.tus.client import create, head, my_files, patch


def test_terminated_upload_is_gone(target: Target, user: str, http: httpx.Client) -> None:
    url = create(http, target, user, 10)
    assert patch(http, target, user, url, 0, b"abc").status_code == 204
    response = http.delete(url, headers=target.headers(user))
    assert response.status_code == 204
    assert head(http, target, user, url).status_code == 410
    assert patch(http, target, user, url, 3, b"def").status_code == 410
    assert http.delete(url, headers=target.headers(user)).status_code == 410


def test_only_the_owner_may_terminate(target: Target, user: str, http: httpx.Client) -> None:
    url = create(http, target, user, 10)
    assert http.delete(url, headers=target.headers(new_user())).status_code == 404
    assert head(http, target, user, url).status_code == 200


def test_terminating_a_finished_upload_removes_the_file(
    target: Target, user: str, http: httpx.Client
) -> None:
    url = create(http, target, user, 3)
    assert patch(http, target, user, url, 0, b"abc").status_code == 204
    assert len(my_files(http, target, user)) == 1
    assert http.delete(url, headers=target.headers(user)).status_code == 204
    assert my_files(http, target, user) == []


def test_a_shared_file_survives_one_owner_leaving(
    target: Target, user: str, http: httpx.Client
) -> None:
    other = new_user()
    urls = []
    for who in (user, other):
        url = create(http, target, who, 6)
        assert patch(http, target, who, url, 0, b"shared").status_code == 204
        urls.append(url)
    assert http.delete(urls[0], headers=target.headers(user)).status_code == 204
    assert my_files(http, target, user) == []
    assert [f["size"] for f in my_files(http, target, other)] == [6]
