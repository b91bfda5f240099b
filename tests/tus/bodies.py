"""Request bodies for calling the receiving code (app/tus/receive.py) without a server."""

from __future__ import annotations

from app.tus.body import BodyReader

MESSAGE = 1024 * 1024


def body(data: bytes) -> BodyReader:
    """``data`` as an ASGI server hands it over: 1 MiB per message."""
    messages = [
        {
            "type": "http.request",
            "body": data[at : at + MESSAGE],
            "more_body": at + MESSAGE < len(data),
        }
        for at in range(0, len(data), MESSAGE)
    ]

    async def next_message() -> dict[str, object]:
        return messages.pop(0)

    return BodyReader(next_message, idle_timeout=30)
