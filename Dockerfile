# One image for every Dagster service of docker-compose.yaml (user_code, webserver, daemon) and the
# exchange simulator: the locked dependencies (uv.lock, no dev group) + the project + the team instance.
FROM python:3.11-slim

# uv pinned to the version the lock was written with.
COPY --from=ghcr.io/astral-sh/uv:0.13.8 /uv /uvx /bin/

ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    PYTHONUNBUFFERED=1

WORKDIR /opt/dagster/app

# Dependencies first: this layer is rebuilt only when the lock changes, not when the code does.
COPY pyproject.toml uv.lock ./
RUN uv sync --frozen --no-dev --no-install-project --compile-bytecode

# The project itself. uv installs it editable, so the package stays at /opt/dagster/app/marketdata_assets
# and the settings find config/ next to it (MARKETDATA_ENV=<name> reads config/<name>.yaml).
COPY README.md ./
COPY marketdata_assets ./marketdata_assets
COPY config ./config
RUN uv sync --frozen --no-dev --compile-bytecode

# The team instance (Postgres storage, queued runs, venue pools) and the compose workspace.
ENV PATH="/opt/dagster/app/.venv/bin:$PATH" \
    DAGSTER_HOME=/opt/dagster/dagster_home
COPY dagster_home/team/dagster.yaml /opt/dagster/dagster_home/dagster.yaml
COPY workspace.docker.yaml ./

# Not root. $DAGSTER_HOME/storage (compute logs, shared by user_code and the webserver through a named
# volume) must be writable by that user; a fresh named volume takes this directory's owner.
RUN useradd --create-home --uid 1000 dagster \
    && mkdir -p /opt/dagster/dagster_home/storage \
    && chown -R dagster:dagster /opt/dagster/dagster_home
USER dagster

# 4000: the gRPC code server (default command); the compose file runs the other services from the same image.
EXPOSE 4000
CMD ["dagster", "api", "grpc", "-h", "0.0.0.0", "-p", "4000", "-m", "marketdata_assets.definitions"]
