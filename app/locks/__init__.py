"""Per-upload locks: one PATCH at a time per upload, across every gateway instance.

`base` holds the contract; `memory` serves a single process, `redis` any number of instances.
A request that finds its upload locked asks the holder to save what it has and let go, so a PATCH
stuck on a dead connection costs seconds, not minutes; a holder that died loses its lock when its
lease expires.
"""
