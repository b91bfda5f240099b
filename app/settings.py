"""Every setting of the gateway, in one place.

Values come from three layers, later ones winning: the defaults below, an optional TOML file
named by ``TUSGATE_CONFIG``, and ``TUSGATE_*`` environment variables. Settings are read once,
validated once (``load_settings`` raises ``ValueError`` with the offending name), and then
passed around as a frozen object: nothing reads the environment after start-up.
"""

from __future__ import annotations

import ipaddress
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, TypeVar

MiB = 1024 * 1024
GiB = 1024 * MiB

T = TypeVar("T")
SERVERS = ("uvicorn", "hypercorn")
MAX_RETENTION_DAYS = 30


@dataclass(frozen=True)
class S3Settings:
    """Connection to one S3-compatible service (MinIO, AWS, moto in the tests)."""

    bucket: str = "tusgate"
    endpoint_url: str | None = None
    region: str = "us-east-1"
    access_key: str | None = None
    secret_key: str | None = None
    prefix: str = ""
    # Size of every multipart part but the last. Raised automatically for an upload whose
    # length would otherwise need more than S3's 10,000 parts.
    part_size: int = 5 * MiB
    # Parts of one upload sent to S3 while the next part is still being received.
    parts_in_flight: int = 2
    # Storage class of the objects written; empty: STANDARD in hot locations, GLACIER in cold
    # ones. MinIO knows no archive class: its cold tier is a lifecycle transition, so leave
    # objects STANDARD there (storage_class = "STANDARD").
    storage_class: str = ""
    restore_tier: str = "Standard"  # RestoreObject's GlacierJobParameters.Tier
    # Server-side encryption of every object written: "" (the bucket's default), "AES256"
    # (SSE-S3) or "aws:kms" (SSE-KMS, with sse_kms_key_id; MinIO needs its KMS configured).
    sse: str = ""
    sse_kms_key_id: str = ""


CACHE = "cache"  # the name of the restore cache's store; no location may take it
HOT = "hot"  # online: readable at once
COLD = "cold"  # nearline: may need a restore before it can be read
KINDS = (HOT, COLD)


@dataclass(frozen=True)
class LocationSettings:
    """A named place where file bytes live. Downloads read hot before cold, then by ``priority``
    (0 first, as in REGARDS); without ``allow_physical_deletion`` the bytes of files that leave
    the catalogue stay in the store (REGARDS "allow physical deletion")."""

    name: str = "local"
    backend: str = "filesystem"  # "filesystem" or "s3"
    kind: str = HOT
    priority: int = 0
    allow_physical_deletion: bool = True
    path: Path | None = None  # filesystem: defaults to DATA_DIR/files/NAME
    s3: S3Settings = field(default_factory=S3Settings)
    # Tiering (cold locations): copy each file here this many days after it was stored (0: at
    # once, as a backup); None: the tiering job leaves this location alone.
    copy_after_days: float | None = None
    # Tiering (hot locations): drop the copy here this many days after it was stored, once a
    # cold location holds one; None: keep it for the file's whole retention.
    drop_after_days: float | None = None
    # Cold locations: how long a restored object stays readable in the location itself (S3
    # RestoreObject Days; the filesystem's restore area).
    restore_days: int = 1

    @property
    def storage_class(self) -> str:
        return self.s3.storage_class or ("GLACIER" if self.kind == COLD else "STANDARD")


@dataclass(frozen=True)
class Settings:
    data_dir: Path = Path("data")
    database_url: str = ""  # empty: SQLite under data_dir
    redis_url: str | None = None
    host: str = "127.0.0.1"
    port: int = 8080
    # The ASGI server: "uvicorn" (HTTP/1.1, httptools) or "hypercorn" (HTTP/1.1 and HTTP/2);
    # bench/RESULTS.md compares them on the upload path.
    server: str = "uvicorn"

    # tus
    max_size: int = 1 * GiB
    min_size: int = 0
    upload_expiry_seconds: int = 24 * 3600
    lock_wait_seconds: float = 10.0
    # Shorter than lock_wait_seconds: a request waiting for the lock of a crashed holder gets it
    # when the lock expires, instead of answering 423.
    lock_ttl_seconds: float = 8.0
    patch_idle_timeout_seconds: float = 60.0
    # PATCHes (and POSTs with bytes) one user may have sending at once, on all instances
    # together: a tus client sends one per upload, the page three at once, and a script may run
    # dozens in parallel; None: no limit.
    max_concurrent_patches: int | None = 64
    # An idle connection, or one that does not finish sending a request head (slowloris), is
    # closed after this long; longer than nginx's keep-alive.
    keep_alive_timeout_seconds: float = 75.0
    # Bytes gathered from the request body before hashing and writing them (in a worker thread
    # while more than a few PATCHes receive: app/tus/receive.py, INLINE_PATCHES).
    write_batch_size: int = 256 * 1024
    # Past this resident size, memory freed is given back to the system (app/jobs/memory.py).
    memory_trim_above_bytes: int | None = 192 * MiB
    fsync: bool = True
    cors_origins: tuple[str, ...] = ("*",)

    # storage quotas per user (defaults; an admin overrides them per user)
    quota_max_bytes: int = 50 * GiB  # files owned + uploads in progress
    quota_max_uploads: int = 100  # uploads in progress at once
    quota_max_file_size: int = 1 * GiB

    # files
    retention_days: int = 30  # at most 30: the retention promised to users
    sweep_interval_seconds: float = 300.0

    # roles
    admin_role: str = "admin"  # may read and set anyone's quotas, hold files, read the audit
    # Needed to use the gateway at all (admin_role holders pass too); empty: any valid token.
    user_role: str = ""

    # identity (local mode)
    local_issuer_key_file: Path | None = None  # defaults to DATA_DIR/local-issuer.jwk
    token_ttl_seconds: int = 12 * 3600

    # downloads: how long a signed link (POST /api/files/{sha256}/link) stays valid
    link_ttl_seconds: int = 3600

    # download quotas per user (defaults; an admin overrides them per user; None: unlimited)
    quota_max_downloads: int | None = None  # downloads in all (a download starts at byte 0)
    quota_max_concurrent_downloads: int | None = 10
    quota_max_download_bytes: int | None = None  # bytes sent per rolling window
    download_window_seconds: int = 24 * 3600

    # the restore cache: where bytes restored from cold locations are served from
    cache: LocationSettings = field(default_factory=lambda: LocationSettings(name=CACHE, kind=HOT))
    cache_max_bytes: int = 20 * GiB
    cache_ttl_hours: float = 24.0
    # How often a restore in progress asks the cold location whether it is done.
    restore_poll_seconds: float = 30.0
    tiering_interval_seconds: float = 3600.0

    # operations
    log_format: str = "json"  # "json" (one object per line) or "text"
    # Proxies (addresses or networks, e.g. "10.0.0.0/8") whose X-Forwarded-* headers are
    # believed; empty: nobody's.
    trusted_proxies: tuple[str, ...] = ()
    # SIGTERM: how long the PATCHes in flight get to save what they received and answer.
    shutdown_timeout_seconds: float = 30.0
    events_stream: str = "tusgate:events"  # the Redis stream events are appended to
    events_max_length: int = 1_000_000  # the stream is trimmed to about this many entries
    events_interval_seconds: float = 1.0

    # the web page (served at /)
    web_dir: Path | None = None  # the built page; defaults to web/dist beside the app
    # OIDC mode: the page's public client (authorization code + PKCE), e.g. Keycloak's
    # "tusgate-web", whose tokens must carry oidc_audience.
    web_client_id: str = "tusgate-web"
    # Chunk size of the page's uploads: under nginx's and most proxies' body limits, and large
    # enough that a 1 GB file takes a few hundred requests.
    web_chunk_size: int = 8 * MiB
    web_parallel_uploads: int = 3  # files uploaded at once by the page

    # identity (OIDC mode, e.g. a Keycloak realm URL; empty: local mode)
    oidc_issuer: str = ""
    # Accepted when the token's `aud` contains it or its `azp` equals it.
    oidc_audience: str = "tusgate"
    oidc_client_id: str = ""  # whose resource_access roles count; defaults to oidc_audience
    token_leeway_seconds: int = 30
    # Tokens naming an unknown key refetch the JWKS at most this often, so made-up key ids
    # cannot hammer the identity provider.
    jwks_min_refresh_seconds: float = 30.0

    # storage
    locations: tuple[LocationSettings, ...] = (LocationSettings(),)
    upload_location: str = "local"
    spool_dir: Path | None = None  # defaults to DATA_DIR/spool

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'tusgate.sqlite3').resolve()}"

    @property
    def effective_oidc_client_id(self) -> str:
        return self.oidc_client_id or self.oidc_audience

    @property
    def effective_spool_dir(self) -> Path:
        return self.spool_dir or self.data_dir / "spool"

    @property
    def effective_web_dir(self) -> Path:
        return self.web_dir or Path(__file__).resolve().parent.parent / "web" / "dist"

    @property
    def effective_issuer_key_file(self) -> Path:
        return self.local_issuer_key_file or self.data_dir / "local-issuer.jwk"

    def location(self, name: str) -> LocationSettings:
        for location in self.locations:
            if location.name == name:
                return location
        raise ValueError(f"no location named {name!r}")


# Environment variable → (section path, field). Sections: "" is Settings itself, "s3" is the S3
# connection of every s3 location that does not set its own value in the TOML file.
_ENV: dict[str, tuple[str, str]] = {
    "TUSGATE_DATA_DIR": ("", "data_dir"),
    "TUSGATE_DATABASE_URL": ("", "database_url"),
    "TUSGATE_REDIS_URL": ("", "redis_url"),
    "TUSGATE_HOST": ("", "host"),
    "TUSGATE_PORT": ("", "port"),
    "TUSGATE_SERVER": ("", "server"),
    "TUSGATE_MAX_SIZE": ("", "max_size"),
    "TUSGATE_MIN_SIZE": ("", "min_size"),
    "TUSGATE_UPLOAD_EXPIRY_SECONDS": ("", "upload_expiry_seconds"),
    "TUSGATE_LOCK_WAIT_SECONDS": ("", "lock_wait_seconds"),
    "TUSGATE_PATCH_IDLE_TIMEOUT_SECONDS": ("", "patch_idle_timeout_seconds"),
    "TUSGATE_MAX_CONCURRENT_PATCHES": ("", "max_concurrent_patches"),
    "TUSGATE_KEEP_ALIVE_TIMEOUT_SECONDS": ("", "keep_alive_timeout_seconds"),
    "TUSGATE_FSYNC": ("", "fsync"),
    "TUSGATE_MEMORY_TRIM_ABOVE_BYTES": ("", "memory_trim_above_bytes"),
    "TUSGATE_CORS_ORIGINS": ("", "cors_origins"),
    "TUSGATE_RETENTION_DAYS": ("", "retention_days"),
    "TUSGATE_ADMIN_ROLE": ("", "admin_role"),
    "TUSGATE_USER_ROLE": ("", "user_role"),
    "TUSGATE_QUOTA_MAX_BYTES": ("", "quota_max_bytes"),
    "TUSGATE_QUOTA_MAX_UPLOADS": ("", "quota_max_uploads"),
    "TUSGATE_QUOTA_MAX_FILE_SIZE": ("", "quota_max_file_size"),
    "TUSGATE_SWEEP_INTERVAL_SECONDS": ("", "sweep_interval_seconds"),
    "TUSGATE_LOCAL_ISSUER_KEY_FILE": ("", "local_issuer_key_file"),
    "TUSGATE_TOKEN_TTL_SECONDS": ("", "token_ttl_seconds"),
    "TUSGATE_LINK_TTL_SECONDS": ("", "link_ttl_seconds"),
    "TUSGATE_QUOTA_MAX_DOWNLOADS": ("", "quota_max_downloads"),
    "TUSGATE_QUOTA_MAX_CONCURRENT_DOWNLOADS": ("", "quota_max_concurrent_downloads"),
    "TUSGATE_QUOTA_MAX_DOWNLOAD_BYTES": ("", "quota_max_download_bytes"),
    "TUSGATE_DOWNLOAD_WINDOW_SECONDS": ("", "download_window_seconds"),
    "TUSGATE_CACHE_MAX_BYTES": ("", "cache_max_bytes"),
    "TUSGATE_CACHE_TTL_HOURS": ("", "cache_ttl_hours"),
    "TUSGATE_RESTORE_POLL_SECONDS": ("", "restore_poll_seconds"),
    "TUSGATE_TIERING_INTERVAL_SECONDS": ("", "tiering_interval_seconds"),
    "TUSGATE_OIDC_ISSUER": ("", "oidc_issuer"),
    "TUSGATE_OIDC_AUDIENCE": ("", "oidc_audience"),
    "TUSGATE_OIDC_CLIENT_ID": ("", "oidc_client_id"),
    "TUSGATE_TOKEN_LEEWAY_SECONDS": ("", "token_leeway_seconds"),
    "TUSGATE_JWKS_MIN_REFRESH_SECONDS": ("", "jwks_min_refresh_seconds"),
    "TUSGATE_SPOOL_DIR": ("", "spool_dir"),
    "TUSGATE_LOG_FORMAT": ("", "log_format"),
    "TUSGATE_TRUSTED_PROXIES": ("", "trusted_proxies"),
    "TUSGATE_SHUTDOWN_TIMEOUT_SECONDS": ("", "shutdown_timeout_seconds"),
    "TUSGATE_EVENTS_STREAM": ("", "events_stream"),
    "TUSGATE_EVENTS_INTERVAL_SECONDS": ("", "events_interval_seconds"),
    "TUSGATE_S3_SSE": ("s3", "sse"),
    "TUSGATE_S3_SSE_KMS_KEY_ID": ("s3", "sse_kms_key_id"),
    "TUSGATE_WEB_DIR": ("", "web_dir"),
    "TUSGATE_WEB_CLIENT_ID": ("", "web_client_id"),
    "TUSGATE_WEB_CHUNK_SIZE": ("", "web_chunk_size"),
    "TUSGATE_WEB_PARALLEL_UPLOADS": ("", "web_parallel_uploads"),
    "TUSGATE_STORE": ("location", "backend"),
    "TUSGATE_S3_BUCKET": ("s3", "bucket"),
    "TUSGATE_S3_ENDPOINT_URL": ("s3", "endpoint_url"),
    "TUSGATE_S3_REGION": ("s3", "region"),
    "TUSGATE_S3_ACCESS_KEY": ("s3", "access_key"),
    "TUSGATE_S3_SECRET_KEY": ("s3", "secret_key"),
    "TUSGATE_S3_PART_SIZE": ("s3", "part_size"),
    "TUSGATE_S3_PARTS_IN_FLIGHT": ("s3", "parts_in_flight"),
}


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Build the settings from the defaults, the TOML file and the environment."""
    env = os.environ if environ is None else environ
    top: dict[str, Any] = {}
    locations: list[dict[str, Any]] = []
    cache: dict[str, Any] = {}
    if path := env.get("TUSGATE_CONFIG"):
        with open(path, "rb") as file:
            document = tomllib.load(file)
        locations = list(document.pop("locations", []))
        cache = dict(document.pop("cache", {}))
        top.update(document)

    s3_env: dict[str, Any] = {}
    backend_env: str | None = None
    for name, (section, key) in _ENV.items():
        if name not in env:
            continue
        if section == "":
            top[key] = env[name]
        elif section == "s3":
            s3_env[key] = env[name]
        else:
            backend_env = env[name]

    if not locations:
        locations = _default_locations(backend_env or "filesystem")
    built = tuple(_location(raw, s3_env) for raw in locations)
    settings = _coerce(Settings, top)
    cache_location = _location({**cache, "name": CACHE, "kind": HOT}, s3_env)
    settings = replace(settings, locations=built, cache=cache_location)
    if "upload_location" not in top:
        settings = replace(settings, upload_location=built[0].name)
    _validate(settings)
    return settings


def _default_locations(backend: str) -> list[dict[str, Any]]:
    """One hot location; beside a filesystem one, a cold one that keeps a copy of every file,
    so that a single machine has the cold path too. (Beside S3 there is none: a directory is
    not shared by several instances.)"""
    hot: dict[str, Any] = {"name": "local", "backend": backend}
    if backend != "filesystem":
        return [hot]
    return [hot, {"name": "archive", "kind": COLD, "priority": 0, "copy_after_days": 0}]


def _location(raw: Mapping[str, Any], s3_env: Mapping[str, Any]) -> LocationSettings:
    raw = dict(raw)
    s3_raw = {**s3_env, **raw.pop("s3", {})}
    location = _coerce(LocationSettings, raw)
    return replace(location, s3=_coerce(S3Settings, s3_raw))


def _coerce(cls: type[T], raw: Mapping[str, Any]) -> T:
    """Instantiate a settings dataclass from strings or TOML values, checking names and types."""
    known = {f.name: f for f in fields(cls)}  # type: ignore[arg-type]
    values: dict[str, Any] = {}
    for name, value in raw.items():
        if name not in known:
            raise ValueError(f"unknown setting {name!r} for {cls.__name__}")
        values[name] = _convert(name, str(known[name].type), value)
    return cls(**values)


def _convert(name: str, kind: str, value: Any) -> Any:
    if kind.endswith("| None") and (value is None or str(value).strip().lower() in ("", "none")):
        return None
    try:
        if kind.startswith("Path"):
            return Path(value) if value not in (None, "") else None
        if kind.startswith("int"):
            return int(value)
        if kind.startswith("float"):
            return float(value)
        if kind == "bool":
            if isinstance(value, bool):
                return value
            return str(value).strip().lower() in ("1", "true", "yes", "on")
        if kind.startswith("tuple[str"):
            if isinstance(value, str):
                return tuple(part.strip() for part in value.split(",") if part.strip())
            return tuple(str(item) for item in value)
        if kind.startswith("str | None"):
            return None if value in (None, "") else str(value)
        return str(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"setting {name!r}: cannot read {value!r} as {kind}") from exc


def _validate(settings: Settings) -> None:
    names = [location.name for location in settings.locations]
    if len(set(names)) != len(names):
        raise ValueError("location names must be unique")
    for location in settings.locations:
        if location.backend not in ("filesystem", "s3"):
            raise ValueError(f"location {location.name!r}: unknown backend {location.backend!r}")
        if location.kind not in KINDS:
            raise ValueError(f"location {location.name!r}: kind must be one of {KINDS}")
        if location.priority < 0:
            raise ValueError(f"location {location.name!r}: priority must not be negative")
        if location.s3.part_size < 5 * MiB:
            raise ValueError("s3 part_size must be at least 5 MiB (S3's minimum part size)")
        if location.s3.parts_in_flight < 1:
            raise ValueError("s3 parts_in_flight must be at least 1")
        if location.s3.sse not in ("", "AES256", "aws:kms"):
            raise ValueError(f"location {location.name!r}: sse must be '', 'AES256' or 'aws:kms'")
        if location.name == CACHE:
            raise ValueError(f"no location may be named {CACHE!r}: the restore cache is")
        if location.copy_after_days is not None and location.kind != COLD:
            raise ValueError(f"location {location.name!r}: copy_after_days is for cold ones")
        if location.drop_after_days is not None and location.kind != HOT:
            raise ValueError(f"location {location.name!r}: drop_after_days is for hot ones")
        if location.restore_days < 1:
            raise ValueError(f"location {location.name!r}: restore_days must be at least 1")
    if settings.location(settings.upload_location).kind != HOT:
        raise ValueError(f"upload_location {settings.upload_location!r} must be a hot location")
    if not 0 <= settings.min_size <= settings.max_size:
        raise ValueError("min_size must lie between 0 and max_size")
    if settings.lock_ttl_seconds >= settings.lock_wait_seconds:
        raise ValueError("lock_ttl_seconds must be shorter than lock_wait_seconds")
    if not 1 <= settings.retention_days <= MAX_RETENTION_DAYS:
        raise ValueError(f"retention_days must lie between 1 and {MAX_RETENTION_DAYS}")
    if settings.max_concurrent_patches is not None and settings.max_concurrent_patches < 1:
        raise ValueError("max_concurrent_patches must be at least 1 (or none: no limit)")
    if settings.keep_alive_timeout_seconds <= 0 or settings.patch_idle_timeout_seconds <= 0:
        raise ValueError(
            "keep_alive_timeout_seconds and patch_idle_timeout_seconds must be positive"
        )
    if settings.memory_trim_above_bytes is not None and settings.memory_trim_above_bytes < 0:
        raise ValueError("memory_trim_above_bytes must not be negative (or none: never)")
    if settings.write_batch_size < 4096:
        raise ValueError("write_batch_size must be at least 4096 bytes")
    if settings.link_ttl_seconds < 1:
        raise ValueError("link_ttl_seconds must be at least 1")
    for name in (
        "quota_max_downloads",
        "quota_max_concurrent_downloads",
        "quota_max_download_bytes",
    ):
        if (getattr(settings, name) or 0) < 0:
            raise ValueError(f"{name} must not be negative")
    if settings.download_window_seconds < 1:
        raise ValueError("download_window_seconds must be at least 1")
    if settings.cache_max_bytes < 0 or settings.cache_ttl_hours <= 0:
        raise ValueError("cache_max_bytes must not be negative, cache_ttl_hours must be positive")
    if settings.server not in SERVERS:
        raise ValueError(f"server must be one of {SERVERS}")
    if settings.log_format not in ("json", "text"):
        raise ValueError("log_format must be 'json' or 'text'")
    for proxy in settings.trusted_proxies:
        try:
            ipaddress.ip_network(proxy, strict=False)
        except ValueError:
            raise ValueError(f"trusted_proxies: {proxy!r} is not an address or network") from None
    if settings.web_chunk_size < 1 or settings.web_parallel_uploads < 1:
        raise ValueError("web_chunk_size and web_parallel_uploads must be positive")
    if settings.restore_poll_seconds <= 0:
        raise ValueError("restore_poll_seconds must be positive")
    _validate_identity(settings)


def _validate_identity(settings: Settings) -> None:
    if settings.oidc_issuer:
        if not settings.oidc_issuer.startswith(("https://", "http://")):
            raise ValueError("oidc_issuer must be an http(s) URL")
        if not settings.oidc_audience:
            raise ValueError("oidc_audience is required with oidc_issuer")
    if settings.token_leeway_seconds < 0:
        raise ValueError("token_leeway_seconds must not be negative")
    if settings.jwks_min_refresh_seconds < 0:
        raise ValueError("jwks_min_refresh_seconds must not be negative")
