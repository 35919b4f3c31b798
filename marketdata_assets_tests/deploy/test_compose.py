"""docker-compose.yaml, the Dockerfile and the compose workspace refer only to things that exist.

Docker cannot run here, so these tests read the files the way compose and the image build would (with
``.env.example`` as the ``.env`` and the ``${VAR:-default}`` defaults) and check every reference: build
contexts, COPY sources, commands and their options, the environment the Dagster instance needs, volumes,
ports, the workspace's gRPC address, depends_on.
"""

from __future__ import annotations

import importlib.metadata
import os
import re
import subprocess
import sys
import tomllib
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import click
import pytest
import yaml

from marketdata_assets_tests.deploy.compose import (
    COMPOSE_FILE,
    REPO,
    TEAM_INSTANCE_YAML,
    MissingVariableError,
    command_list,
    dockerfile_copies,
    dockerfile_instructions,
    dockerignore_excludes,
    dotenv,
    env_references,
    environment,
    load_compose,
    option,
    port_mappings,
    published_ports,
    referenced_variables,
    variable_uses,
)

PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
# `make up` after `cp .env.example .env`: the secrets have no default, so compose needs the .env.
LOCAL_ENV = dotenv(REPO / ".env.example")
COMPOSE = load_compose(environ=LOCAL_ENV)
SECRETS = {"DAGSTER_PG_PASSWORD", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}
BIND_VARIABLES = {"DAGSTER_UI_BIND", "MINIO_BIND", "LIVE_BIND"}
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
APP_IMAGE = "Dockerfile"
# Where the Dockerfile puts things (checked below against its WORKDIR / ENV / COPY lines).
APP_DIR = "/opt/dagster/app"
IMAGE_DAGSTER_HOME = "/opt/dagster/dagster_home"
INSTANCE_COMMANDS = {"dagster", "dagster-webserver", "dagster-daemon"}


def app_services() -> dict[str, dict[str, Any]]:
    """Services built from our Dockerfile."""
    return {
        name: svc
        for name, svc in SERVICES.items()
        if isinstance(svc.get("build"), Mapping) and svc["build"].get("dockerfile", "Dockerfile") == APP_IMAGE
    }


def instance_services() -> dict[str, dict[str, Any]]:
    """App services whose command opens the Dagster instance ($DAGSTER_HOME/dagster.yaml)."""
    return {
        n: s
        for n, s in app_services().items()
        if command_list(s)[:1] and command_list(s)[0] in INSTANCE_COMMANDS
    }


def dockerfile_env() -> dict[str, str]:
    env = {}
    for ins in dockerfile_instructions(REPO / "Dockerfile"):
        if ins.keyword == "ENV":
            for key, value in re.findall(r'([A-Z_][A-Z0-9_]*)=("[^"]*"|\S+)', ins.args):
                env[key] = value.strip('"')
    return env


def test_the_expected_services_exist() -> None:
    assert {
        "postgres",
        "user_code",
        "webserver",
        "daemon",
        "minio",
        "createbucket",
        "simulator",
        "live",
        "redis",
    } <= set(SERVICES)
    assert {"user_code", "webserver", "daemon", "simulator", "live"} <= set(app_services())
    assert {"user_code", "webserver", "daemon"} == set(instance_services())


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_every_service_has_an_image_or_a_build_in_the_repo(name: str) -> None:
    svc = SERVICES[name]
    assert svc.get("image") or svc.get("build"), f"service {name} has neither image nor build"
    build = svc.get("build")
    if build:
        context = REPO / (build if isinstance(build, str) else build.get("context", "."))
        assert context.is_dir(), f"service {name}: build context {context} does not exist"
        dockerfile = context / (
            "Dockerfile" if isinstance(build, str) else build.get("dockerfile", "Dockerfile")
        )
        assert dockerfile.is_file(), f"service {name}: {dockerfile} does not exist"
    if svc.get("image") and not build:
        assert ":" in svc["image"] and not svc["image"].endswith(":latest"), (
            f"service {name}: pin the image tag ({svc['image']})"
        )


def test_the_dockerfile_copies_only_files_that_exist_and_are_in_the_build_context() -> None:
    copies = [c for c in dockerfile_copies(REPO / "Dockerfile") if c.from_stage is None]
    assert copies
    for copy in copies:
        for source in copy.sources:
            assert (REPO / source).exists(), f"Dockerfile: COPY source {source} does not exist"
            assert not dockerignore_excludes(REPO, source), (
                f"Dockerfile: COPY {source} is excluded by .dockerignore"
            )


def test_the_image_installs_exactly_the_locked_dependencies_without_dev_tools() -> None:
    runs = [i.args for i in dockerfile_instructions(REPO / "Dockerfile") if i.keyword == "RUN"]
    syncs = [r for r in runs if "uv sync" in r]
    assert syncs and all("--frozen" in r and "--no-dev" in r for r in syncs), syncs
    base = next(i.args for i in dockerfile_instructions(REPO / "Dockerfile") if i.keyword == "FROM")
    requires = PYPROJECT["project"]["requires-python"]  # ">=3.11,<3.12"
    minor = re.search(r">=\s*3\.(\d+)", requires).group(1)
    assert f"python:3.{minor}" in base, f"base image {base} does not match requires-python {requires}"


def test_the_image_carries_the_team_instance_and_the_compose_workspace() -> None:
    env = dockerfile_env()
    assert env["DAGSTER_HOME"] == IMAGE_DAGSTER_HOME
    workdir = [i.args for i in dockerfile_instructions(REPO / "Dockerfile") if i.keyword == "WORKDIR"][-1]
    assert workdir == APP_DIR
    copies = {s: c.destination for c in dockerfile_copies(REPO / "Dockerfile") for s in c.sources}
    assert copies["dagster_home/team/dagster.yaml"] == f"{IMAGE_DAGSTER_HOME}/dagster.yaml"
    assert copies["workspace.docker.yaml"] in ("./", f"{APP_DIR}/", APP_DIR)
    assert f"{APP_DIR}/.venv/bin" in env["PATH"]


def _console_scripts() -> dict[str, importlib.metadata.EntryPoint]:
    return {ep.name: ep for ep in importlib.metadata.entry_points(group="console_scripts")}


def _check_cli_arguments(program: str, args: list[str]) -> None:
    """Parse ``args`` with the real command-line parser of ``program`` (without running it)."""
    if program in PYPROJECT["project"]["scripts"]:
        module_name, _, func = PYPROJECT["project"]["scripts"][program].partition(":")
        module = __import__(module_name, fromlist=[func])
        assert callable(getattr(module, func)), f"{program}: {module_name}:{func} is not callable"
        if hasattr(module, "build_parser"):
            module.build_parser().parse_args(args)  # argparse: exits (SystemExit) on a bad option
            return
    scripts = _console_scripts()
    assert program in scripts, f"{program} is not a console script of any installed package"
    command = scripts[program].load()
    if not isinstance(command, click.Command):
        # dagster's console scripts are `main()` wrappers that call the module's click command `cli`
        command = getattr(sys.modules[command.__module__], "cli", None)
    assert isinstance(command, click.Command), f"{program}: no click command behind {scripts[program].value}"
    ctx = command.make_context(program, list(args))
    while isinstance(command, click.Group):
        with warnings.catch_warnings():  # click 8.2 deprecates protected_args; 9.0 keeps all in args
            warnings.simplefilter("ignore", DeprecationWarning)
            remaining = [*ctx.protected_args, *ctx.args]
        name, command, rest = command.resolve_command(ctx, remaining)
        ctx = command.make_context(name, rest, parent=ctx)


@pytest.mark.parametrize("name", sorted(app_services()))
def test_every_app_command_is_an_installed_program_with_valid_options(name: str) -> None:
    args = command_list(SERVICES[name])
    assert args, f"service {name}: no command"
    _check_cli_arguments(args[0], args[1:])
    module = option(args, "-m", "--module-name")
    if module:
        assert module == PYPROJECT["tool"]["dagster"]["module_name"], module
        assert (REPO / (module.replace(".", "/") + ".py")).is_file(), f"{module} is not a module of the repo"


def test_the_simulator_service_binds_all_interfaces_with_the_explicit_allow_flag() -> None:
    from marketdata_assets.simulator.cli import build_parser

    args = build_parser().parse_args(command_list(SERVICES["simulator"])[1:])
    assert args.host == "0.0.0.0" and args.allow_non_loopback


@pytest.mark.parametrize("name", sorted(instance_services()))
def test_services_that_open_the_instance_get_every_variable_the_team_dagster_yaml_reads(name: str) -> None:
    needed = env_references(yaml.safe_load(TEAM_INSTANCE_YAML.read_text()))
    assert set(needed) >= {
        "DAGSTER_PG_HOST",
        "DAGSTER_PG_PORT",
        "DAGSTER_PG_USER",
        "DAGSTER_PG_PASSWORD",
        "DAGSTER_PG_DB",
    }
    env = environment(SERVICES[name])
    missing = sorted(set(needed) - set(env))
    assert not missing, f"service {name} lacks {missing} (read by dagster_home/team/dagster.yaml at {needed})"
    assert all(env[v] for v in needed), (
        f"service {name}: empty defaults for {[v for v in needed if not env[v]]}"
    )


def test_the_instance_env_points_at_the_postgres_service_and_its_credentials() -> None:
    pg = environment(SERVICES["postgres"])
    for name in instance_services():
        env = environment(SERVICES[name])
        assert env["DAGSTER_PG_HOST"] == "postgres" and env["DAGSTER_PG_PORT"] == "5432"
        assert (env["DAGSTER_PG_USER"], env["DAGSTER_PG_PASSWORD"], env["DAGSTER_PG_DB"]) == (
            pg["POSTGRES_USER"],
            pg["POSTGRES_PASSWORD"],
            pg["POSTGRES_DB"],
        )
    assert "healthcheck" in SERVICES["postgres"]
    assert any(v.split(":")[1] == "/var/lib/postgresql/data" for v in SERVICES["postgres"]["volumes"])


def test_the_team_dagster_yaml_reads_credentials_from_the_environment_only() -> None:
    config = yaml.safe_load(TEAM_INSTANCE_YAML.read_text())
    db = config["storage"]["postgres"]["postgres_db"]
    for key in ("hostname", "port", "username", "password", "db_name"):
        assert isinstance(db[key], Mapping) and set(db[key]) == {"env"}, (
            f"postgres_db.{key} must come from env"
        )
    assert "postgres_url" not in config["storage"]["postgres"]
    assert config["run_coordinator"]["class"] == "QueuedRunCoordinator"
    assert config["concurrency"]["pools"]["default_limit"] >= 1


def test_the_code_servers_environment_matches_the_object_store_and_the_simulator() -> None:
    env = environment(SERVICES["user_code"])
    assert (REPO / "config" / f"{env['MARKETDATA_ENV']}.yaml").is_file(), env["MARKETDATA_ENV"]
    # the simulator URL names the simulator service and the port it listens on
    sim = urlparse(env["MARKETDATA_SIM_URL"])
    assert sim.hostname == "simulator"
    assert str(sim.port) == option(command_list(SERVICES["simulator"]), "--port")
    # the S3 endpoint is the minio service's API port; the keys are MinIO's root user
    endpoint = urlparse(env["AWS_ENDPOINT_URL"])
    assert endpoint.hostname == "minio" and endpoint.port in port_mappings(SERVICES["minio"])
    minio = environment(SERVICES["minio"])
    assert (env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"]) == (
        minio["MINIO_ROOT_USER"],
        minio["MINIO_ROOT_PASSWORD"],
    )
    assert len(minio["MINIO_ROOT_PASSWORD"]) >= 8  # MinIO refuses shorter root passwords
    # the bucket the one-shot service creates is the bucket of the storage root
    root = urlparse(env["MARKETDATA_ROOT"])
    assert root.scheme == "s3"
    assert command_list(SERVICES["createbucket"])[-1] == f"store/{root.netloc}"
    assert environment(SERVICES["createbucket"])["MC_HOST_store"].endswith("@minio:9000")


def test_the_code_server_loads_the_definitions_with_its_compose_environment() -> None:
    env = {**os.environ, **environment(SERVICES["user_code"])}
    env.pop("MARKETDATA_CONFIG", None)
    code = (
        "import marketdata_assets.definitions as d\n"
        "from marketdata_assets.settings import load_settings\n"
        "s = load_settings()\n"
        "print(s.environment, s.storage_root, sorted(k.to_user_string() for k in d.defs.resolve_all_asset_keys()))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "demo s3://marketdata/demo" in out.stdout and "binance/ohlcv_1m_raw" in out.stdout, out.stdout


def test_the_workspace_points_at_the_grpc_code_server() -> None:
    workspace = yaml.safe_load((REPO / "workspace.docker.yaml").read_text())
    [entry] = workspace["load_from"]
    grpc = entry["grpc_server"]
    server = SERVICES[grpc["host"]]
    args = command_list(server)
    assert args[:3] == ["dagster", "api", "grpc"]
    assert option(args, "-h", "--host") == "0.0.0.0"
    assert str(grpc["port"]) == option(args, "-p", "--port")
    assert entry["grpc_server"]["location_name"] == PYPROJECT["tool"]["dagster"]["code_location_name"]
    health = server["healthcheck"]["test"]
    assert "grpc-health-check" in health and health[health.index("-p") + 1] == str(grpc["port"])
    for name in ("webserver", "daemon"):
        assert option(command_list(SERVICES[name]), "-w", "--workspace") == "workspace.docker.yaml"
        assert SERVICES[name]["depends_on"][grpc["host"]]["condition"] == "service_healthy"


def test_the_webserver_port_is_the_one_published() -> None:
    web = SERVICES["webserver"]
    port = int(option(command_list(web), "-p", "--port"))
    assert port_mappings(web) == {port: 3000}
    assert option(command_list(web), "-h", "--host") == "0.0.0.0"


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_volumes_are_declared_or_exist_in_the_repo(name: str) -> None:
    declared = set(COMPOSE.get("volumes") or {})
    for volume in SERVICES[name].get("volumes") or []:
        source = volume.split(":")[0] if isinstance(volume, str) else volume["source"]
        if source.startswith((".", "/")):
            path = (REPO / source).resolve() if source.startswith(".") else Path(source)
            assert path.exists(), f"service {name}: bind mount source {source} does not exist"
        else:
            assert source in declared, f"service {name}: named volume {source} is not declared"


def test_the_shared_dagster_storage_volume_is_the_images_dagster_home_storage() -> None:
    # compute logs are written by runs (user_code) and read by the webserver: one named volume
    mounts = {
        name: [v for v in SERVICES[name]["volumes"] if v.startswith("dagster_storage:")]
        for name in instance_services()
    }
    assert all(m == [f"dagster_storage:{IMAGE_DAGSTER_HOME}/storage"] for m in mounts.values()), mounts


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_depends_on_names_services_and_usable_conditions(name: str) -> None:
    for dep, spec in (SERVICES[name].get("depends_on") or {}).items():
        assert dep in SERVICES, f"service {name} depends on unknown service {dep}"
        condition = spec["condition"] if isinstance(spec, Mapping) else "service_started"
        if condition == "service_healthy":
            assert "healthcheck" in SERVICES[dep], (
                f"{name} waits for {dep} to be healthy; it has no healthcheck"
            )
        if condition == "service_completed_successfully":
            assert SERVICES[dep].get("restart") == "no", f"{dep} is a one-shot service: restart must be 'no'"


def test_every_compose_variable_is_documented_in_env_example() -> None:
    raw = yaml.safe_load(COMPOSE_FILE.read_text())
    used = referenced_variables(raw)
    documented = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]*)=", (REPO / ".env.example").read_text(), re.M))
    missing = sorted(used - documented)
    assert not missing, f".env.example does not mention {missing}"


def test_env_files_with_secrets_are_not_committed_or_built() -> None:
    ignored = subprocess.run(
        ["git", "check-ignore", "-q", ".env"], cwd=REPO, capture_output=True, text=True, check=False
    )
    assert ignored.returncode == 0, ".env must be gitignored"
    assert dockerignore_excludes(REPO, ".env")


def test_make_up_and_down_drive_docker_compose() -> None:
    makefile = (REPO / "Makefile").read_text()
    phony = re.search(r"^\.PHONY:(.*)$", makefile, re.M).group(1).split()
    assert {"up", "down"} <= set(phony)
    assert re.search(r"^up:.*\n(\t.*\n)*\tdocker compose up -d --build", makefile, re.M)
    assert re.search(r"^down:.*\n(\t.*\n)*\tdocker compose down", makefile, re.M)


def _secret_like(name: str) -> bool:
    return bool(re.search(r"PASSWORD|SECRET|TOKEN|ACCESS_KEY", name))


def test_the_secrets_are_the_secret_like_variables_compose_uses() -> None:
    used = referenced_variables(yaml.safe_load(COMPOSE_FILE.read_text()))
    assert {v for v in used if _secret_like(v)} == SECRETS


def test_no_secret_has_a_fallback_value() -> None:
    uses = variable_uses(yaml.safe_load(COMPOSE_FILE.read_text()))
    for name, op, text in uses:
        if _secret_like(name):
            assert op == ":?", f"${{{name}}} must be ${{{name}:?...}} (no default, not empty), got {op!r}"
            assert name in text and ".env" in text, f"${{{name}:?...}}: say where to set it, got {text!r}"
    # without a .env, compose refuses to start, naming the secret
    with pytest.raises(MissingVariableError, match="|".join(sorted(SECRETS))):
        load_compose(environ={})
    for secret in sorted(SECRETS):
        with pytest.raises(MissingVariableError, match=f"^{secret}: set {secret} in .env"):
            load_compose(environ={k: v for k, v in LOCAL_ENV.items() if k != secret})
        with pytest.raises(MissingVariableError, match=f"^{secret}"):
            load_compose(environ={**LOCAL_ENV, secret: ""})


def test_every_published_port_binds_loopback_unless_told_otherwise() -> None:
    only_secrets = {k: v for k, v in LOCAL_ENV.items() if k in SECRETS}
    for env in (only_secrets, LOCAL_ENV):  # no .env bind settings at all, and the example .env
        services = load_compose(environ=env)["services"]
        published = {name: published_ports(svc) for name, svc in services.items() if svc.get("ports")}
        assert {"webserver", "minio", "live"} <= set(published)
        for name, ports in published.items():
            for host_ip, host_port, _ in ports:
                assert host_ip == "127.0.0.1", (
                    f"service {name} publishes {host_port} on {host_ip or 'every interface'}"
                )
    opened = load_compose(environ={**only_secrets, "DAGSTER_UI_BIND": "0.0.0.0", "MINIO_BIND": "0.0.0.0"})
    for name in ("webserver", "minio"):
        assert {ip for ip, _, _ in published_ports(opened["services"][name])} == {"0.0.0.0"}
    # every published port goes through one of the documented bind variables
    raw = yaml.safe_load(COMPOSE_FILE.read_text())
    for name, svc in raw["services"].items():
        for entry in svc.get("ports") or []:
            bind = r"\$\{(" + "|".join(sorted(BIND_VARIABLES)) + r"):-127\.0\.0\.1\}:"
            assert re.match(bind, str(entry)), (
                f"service {name}: port {entry!r} must bind ${{..._BIND:-127.0.0.1}}"
            )


def test_the_live_service_serves_on_its_published_port_with_events_to_the_redis_service() -> None:
    from marketdata_assets.cli.main import build_parser

    live = SERVICES["live"]
    args = build_parser().parse_args(command_list(live)[1:])
    assert args.handler.__name__ == "serve_command" and args.host == "0.0.0.0" and args.port == 8800
    assert args.redis_url == "redis://redis:6379/0"
    assert live["ports"] == ["127.0.0.1:8800:8800"]  # loopback unless LIVE_BIND says otherwise
    assert live["depends_on"]["redis"]["condition"] == "service_healthy"
    raw = yaml.safe_load(COMPOSE_FILE.read_text())["services"]["live"]["environment"]
    for secret in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "DAGSTER_PG_PASSWORD"):
        assert raw[secret].startswith(f"${{{secret}:?"), f"live: {secret} must have no fallback"
    redis = SERVICES["redis"]
    assert "ports" not in redis  # only the compose network reaches it
    assert redis["command"][0] == "redis-server" and "redis" in redis["healthcheck"]["test"][1]
