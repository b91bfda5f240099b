"""A tus server that stores nothing: the ceiling row of the table (what the load generator and
the loopback reach when the server does no work). ``python -m bench.null_server PORT``."""

from __future__ import annotations

import asyncio
import itertools
import sys

READ = 1024 * 1024


async def serve_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    offsets: dict[str, int] = _OFFSETS
    try:
        while request_line := await reader.readline():
            method, path, _ = request_line.decode("latin-1").split(" ", 2)
            headers: dict[str, str] = {}
            while (line := await reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode("latin-1").partition(":")
                headers[name.strip().lower()] = value.strip()
            remaining = int(headers.get("content-length", "0"))
            while remaining:
                remaining -= len(await reader.read(min(READ, remaining)))
            if method == "POST":
                upload = f"/files/{next(_IDS)}"
                offsets[upload] = 0
                answer = f"HTTP/1.1 201 Created\r\nLocation: {upload}\r\n"
            elif method == "PATCH":
                offsets[path] = int(headers["upload-offset"]) + int(headers["content-length"])
                answer = f"HTTP/1.1 204 No Content\r\nUpload-Offset: {offsets[path]}\r\n"
            else:
                answer = f"HTTP/1.1 200 OK\r\nUpload-Offset: {offsets.get(path, 0)}\r\n"
            writer.write(f"{answer}Tus-Resumable: 1.0.0\r\nContent-Length: 0\r\n\r\n".encode())
            await writer.drain()
    except (ConnectionError, ValueError):
        pass
    finally:
        writer.close()


_OFFSETS: dict[str, int] = {}
_IDS = itertools.count()


async def main(port: int) -> None:
    server = await asyncio.start_server(serve_client, "127.0.0.1", port, limit=READ)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
