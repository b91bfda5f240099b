"""Plain ASGI middleware that is not specific to one room (tus, auth)."""
