# syntax=docker/dockerfile:1
# DamageLens web UI: Vite build, served by unprivileged nginx which also proxies the API
# (same origin). Build from the repository root:
#   docker build -f infra/docker/frontend.Dockerfile -t damagelens/frontend:local .

# Bases are build arguments so that a machine without registry access can pass local ones
# (scripts/container-smoke.sh does); everyone else gets the pinned public images.
ARG NODE_IMAGE=node:22.17.1-bookworm-slim@sha256:2fa754a9ba4d7adbd2a51d182eaabbe355c82b673624035a38c0d42b08724854
ARG NGINX_IMAGE=nginxinc/nginx-unprivileged:1.27-alpine@sha256:65e3e85dbaed8ba248841d9d58a899b6197106c23cb0ff1a132b7bfe0547e4c0

FROM ${NODE_IMAGE} AS build

WORKDIR /src
ENV npm_config_audit=false \
    npm_config_fund=false \
    npm_config_update_notifier=false
COPY frontend/package.json frontend/package-lock.json ./
RUN npm ci
COPY frontend/ ./
RUN npm run build

FROM ${NGINX_IMAGE} AS runtime

LABEL org.opencontainers.image.title="damagelens-frontend" \
      org.opencontainers.image.licenses="AGPL-3.0-only"

COPY infra/nginx/default.conf /etc/nginx/conf.d/default.conf
COPY --from=build /src/dist /usr/share/nginx/html

# The base image's nginx user (uid 101); listens on 8080.
USER 101
EXPOSE 8080

HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8080/nginx-healthz"]
