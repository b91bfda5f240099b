# syntax=docker/dockerfile:1
# Three stages: the page (built with Node), nginx with the page's assets (target "proxy"),
# and the gateway (the default target): slim Python, runtime dependencies only, non-root.

FROM node:20-bookworm-slim AS page
WORKDIR /build/web
COPY web/package.json web/package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY web/ ./
RUN npm run build

FROM nginx:1.27-bookworm AS proxy
# Rendered into /etc/nginx/conf.d/ with the TUSGATE_* environment at start (envsubst).
COPY nginx/tusgate.conf.template /etc/nginx/templates/tusgate.conf.template
COPY --from=page /build/web/dist /usr/share/tusgate/web

FROM python:3.11-slim-bookworm AS gateway
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
COPY pyproject.toml requirements.lock ./
COPY app/ app/
# The runtime dependencies at the versions the lock file pins (not the test tools).
RUN pip install --no-cache-dir --constraint requirements.lock . \
    && useradd --system --uid 10001 --home-dir /data tusgate \
    && mkdir -p /data && chown tusgate /data
COPY --from=page /build/web/dist /app/web/dist
ENV TUSGATE_DATA_DIR=/data TUSGATE_HOST=0.0.0.0 TUSGATE_PORT=8080 \
    TUSGATE_WEB_DIR=/app/web/dist TUSGATE_LOG_FORMAT=json
USER tusgate
EXPOSE 8080
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/readyz', timeout=2)"]
CMD ["python", "-m", "app", "serve"]
