"""Storage quotas: limits per user, enforced atomically, released by state changes."""

from __future__ import annotations

import concurrent.futures

import httpx

from tests.gateways import Target, new_user
from tests.tus.client import OCTETS, create, my_files, offset, patch

ADMIN = ("admin",)

# Usage of a user who has stored and downloaded nothing.
NO_DOWNLOADS = {
    "bytes": 0,
    "stored_bytes": 0,
    "reserved_bytes": 0,
    "uploads": 0,
    "downloads": 0,
    "downloads_in_progress": 0,
    "downloaded_bytes_in_window": 0,
}


def _set(http: httpx.Client, target: Target, user: str, **limits: int | None) -> None:
    admin = target.headers(new_user())
    admin["Authorization"] = f"Bearer {target.token('root', ADMIN)}"
    response = http.put(f"{target.url}/api/quotas/{user}", headers=admin, json=limits)
    assert response.status_code == 200, response.text


def _me(http: httpx.Client, target: Target, user: str) -> dict[str, object]:
    response = http.get(f"{target.url}/api/me", headers=target.headers(user))
    assert response.status_code == 200
    body: dict[str, object] = response.json()
    return body


def _post(target: Target, user: str, length: int) -> int:
    with httpx.Client(timeout=60, trust_env=False) as http:
        headers = target.headers(user, Upload_Length=str(length))
        return http.post(target.files_url, headers=headers).status_code


def test_parallel_creations_cannot_share_the_last_bytes(
    target: Target, user: str, http: httpx.Client
) -> None:
    _set(http, target, user, max_bytes=1000)
    with concurrent.futures.ThreadPoolExecutor(max_workers=16) as pool:
        statuses = list(pool.map(lambda _: _post(target, user, 100), range(24)))
    assert sorted(statuses) == [201] * 10 + [403] * 14
    usage = _me(http, target, user)["usage"]
    assert usage == {**NO_DOWNLOADS, "bytes": 1000, "reserved_bytes": 1000, "uploads": 10}


def test_the_refusal_names_the_limit_and_the_usage(
    target: Target, user: str, http: httpx.Client
) -> None:
    _set(http, target, user, max_bytes=150, max_file_size=120)
    create(http, target, user, 100)
    response = http.post(target.files_url, headers=target.headers(user, Upload_Length="60"))
    assert response.status_code == 403
    assert "storage quota: 100 bytes used + 60 > max_bytes 150" in response.text
    response = http.post(target.files_url, headers=target.headers(user, Upload_Length="121"))
    assert response.status_code == 403
    assert "max_file_size 120" in response.text


def test_uploads_in_progress_are_limited_and_termination_frees_a_slot(
    target: Target, user: str, http: httpx.Client
) -> None:
    _set(http, target, user, max_uploads=2)
    first = create(http, target, user, 10)
    create(http, target, user, 10)
    response = http.post(target.files_url, headers=target.headers(user, Upload_Length="10"))
    assert response.status_code == 403
    assert "max_uploads 2" in response.text
    assert http.delete(first, headers=target.headers(user)).status_code == 204
    create(http, target, user, 10)


def test_a_deferred_length_is_checked_as_its_bytes_arrive(
    target: Target, user: str, http: httpx.Client
) -> None:
    _set(http, target, user, max_bytes=1000)
    url = create(http, target, user, None)
    assert patch(http, target, user, url, 0, b"a" * 600).status_code == 204
    response = patch(http, target, user, url, 600, b"b" * 500)
    assert response.status_code == 403
    assert offset(http, target, user, url) == 600

    def chunked() -> object:
        yield b"c" * 300
        yield b"d" * 300

    headers = target.headers(user, Upload_Offset="600", Content_Type=OCTETS)
    response = http.patch(url, headers=headers, content=chunked())
    assert response.status_code == 403
    assert offset(http, target, user, url) == 600
    assert patch(http, target, user, url, 600, b"e" * 400, Upload_Length="1000").status_code == 204
    assert _me(http, target, user)["usage"] == {
        **NO_DOWNLOADS,
        "bytes": 1000,
        "stored_bytes": 1000,
    }


def test_a_shared_file_counts_once_per_owner_and_deletion_releases_it(
    target: Target, user: str, http: httpx.Client
) -> None:
    body = b"shared content " * 100
    headers = target.headers(user, Upload_Length=str(len(body)), Content_Type=OCTETS)
    urls = [http.post(target.files_url, headers=headers, content=body) for _ in range(2)]
    assert [response.status_code for response in urls] == [201, 201]
    assert len(my_files(http, target, user)) == 1
    assert _me(http, target, user)["usage"]["stored_bytes"] == len(body)  # type: ignore[index]
    assert http.delete(urls[1].headers["location"], headers=target.headers(user)).status_code == 204
    assert _me(http, target, user)["usage"]["stored_bytes"] == 0  # type: ignore[index]


def test_only_admins_read_and_set_other_users_quotas(
    target: Target, user: str, http: httpx.Client
) -> None:
    url = f"{target.url}/api/quotas/{new_user()}"
    assert http.get(url, headers=target.headers(user)).status_code == 403
    assert http.put(url, headers=target.headers(user), json={"max_bytes": 1}).status_code == 403
    admin = {**target.headers(user), "Authorization": f"Bearer {target.token(user, ADMIN)}"}
    shown = http.get(url, headers=admin)
    assert shown.status_code == 200
    assert shown.json()["limits"]["max_bytes"] == 50 * 1024**3
    for bad in ({}, {"max_bytes": -1}, {"max_bytes": "9"}, {"speed": 3}, [1]):
        assert http.put(url, headers=admin, json=bad).status_code == 400
    changed = http.put(url, headers=admin, json={"max_bytes": 5, "max_uploads": None})
    assert changed.json()["limits"]["max_bytes"] == 5
    assert changed.json()["overrides"] == {
        "max_bytes": 5,
        "max_uploads": None,
        "max_file_size": None,
        "max_downloads": None,
        "max_concurrent_downloads": None,
        "max_download_bytes": None,
    }
    me = _me(http, target, user)
    assert me["id"] == user
    assert me["roles"] == []
