"""Reading the deployment files the way Docker would, without Docker: compose interpolation, the
Dockerfile's instructions, .dockerignore matching, and the ``{env: VAR}`` references of a dagster.yaml.

``docker compose config`` is not available on our machines, so the compose tests parse the YAML and
resolve ``${VAR:-default}`` with the defaults (what ``make up`` does without a ``.env``).
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "docker-compose.yaml"
TEAM_INSTANCE_YAML = REPO / "dagster_home" / "team" / "dagster.yaml"

_VAR_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")


class MissingVariableError(ValueError):
    """A ``${VAR:?message}`` whose variable is not set: compose refuses to start with the message."""


def interpolate(value: str, environ: Mapping[str, str] | None = None) -> str:
    """Compose's interpolation: ``${VAR}``, ``${VAR:-default}``, ``${VAR-default}``, ``${VAR:?error}``,
    ``${VAR?error}``, ``$$`` -> ``$``."""
    env = environ or {}

    def sub(match: re.Match[str]) -> str:
        name, op, default = match.group(1), match.group(2), match.group(3) or ""
        if name in env and (env[name] != "" or op in ("-", "?")):
            return env[name]
        if op in (":?", "?"):
            raise MissingVariableError(f"{name}: {default or 'required variable is not set'}")
        return default if op else ""

    return _VAR_RE.sub(sub, value.replace("$$", "\0")).replace("\0", "$")


def referenced_variables(value: Any) -> set[str]:
    """Every ``${VAR...}`` name in a parsed YAML tree."""
    if isinstance(value, str):
        return {m.group(1) for m in _VAR_RE.finditer(value.replace("$$", ""))}
    if isinstance(value, Mapping):
        return set().union(*(referenced_variables(v) for v in value.values()), set())
    if isinstance(value, list):
        return set().union(*(referenced_variables(v) for v in value), set())
    return set()


def _resolve(value: Any, environ: Mapping[str, str] | None) -> Any:
    if isinstance(value, str):
        return interpolate(value, environ)
    if isinstance(value, Mapping):
        return {k: _resolve(v, environ) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve(v, environ) for v in value]
    return value


def load_compose(path: Path = COMPOSE_FILE, environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The compose file with YAML anchors/merge keys applied and variables resolved."""
    return _resolve(yaml.safe_load(path.read_text()), environ)


def variable_uses(value: Any) -> list[tuple[str, str | None, str]]:
    """Every ``${VAR...}`` of a parsed YAML tree as (name, operator or None, default/message)."""
    if isinstance(value, str):
        return [(m.group(1), m.group(2), m.group(3) or "") for m in _VAR_RE.finditer(value.replace("$$", ""))]
    if isinstance(value, Mapping):
        return [use for v in value.values() for use in variable_uses(v)]
    if isinstance(value, list):
        return [use for v in value for use in variable_uses(v)]
    return []


def dotenv(path: Path) -> dict[str, str]:
    """The ``KEY=value`` lines of an env file (comments and blank lines skipped), as compose reads .env."""
    out = {}
    for line in path.read_text().splitlines():
        match = re.match(r"^([A-Z][A-Z0-9_]*)=(.*)$", line.strip())
        if match:
            out[match.group(1)] = match.group(2).split(" #")[0].strip()
    return out


def published_ports(service: Mapping[str, Any]) -> list[tuple[str | None, int, int]]:
    """(host ip or None for every interface, published port, container port) of each ``ports`` entry."""
    out = []
    for entry in service.get("ports") or []:
        if isinstance(entry, Mapping):
            out.append(
                (entry.get("host_ip"), int(entry.get("published", entry["target"])), int(entry["target"]))
            )
            continue
        parts = str(entry).split(":")
        target = int(parts[-1].split("/")[0])
        if len(parts) == 1:
            out.append((None, target, target))
        else:
            out.append((parts[-3] if len(parts) > 2 else None, int(parts[-2]), target))
    return out


def command_list(service: Mapping[str, Any]) -> list[str]:
    command = service.get("command")
    if command is None:
        return []
    return shlex.split(command) if isinstance(command, str) else [str(c) for c in command]


def environment(service: Mapping[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        return dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {k: "" if v is None else str(v) for k, v in env.items()}


def option(args: list[str], *names: str) -> str | None:
    """The value of ``-p 4000`` / ``--port 4000`` / ``--port=4000`` in an argument list."""
    for i, arg in enumerate(args):
        for name in names:
            if arg == name and i + 1 < len(args):
                return args[i + 1]
            if name.startswith("--") and arg.startswith(name + "="):
                return arg.split("=", 1)[1]
    return None


def port_mappings(service: Mapping[str, Any]) -> dict[int, int]:
    """container port -> published host port, from the short ``"HOST:CONTAINER"`` syntax."""
    out = {}
    for entry in service.get("ports") or []:
        if isinstance(entry, Mapping):
            out[int(entry["target"])] = int(entry.get("published", entry["target"]))
            continue
        parts = str(entry).split(":")
        out[int(parts[-1].split("/")[0])] = int(parts[-2]) if len(parts) > 1 else int(parts[-1])
    return out


def env_references(config: Any, path: str = "") -> dict[str, str]:
    """``{env: VAR}`` references of a Dagster instance config: VAR -> where it is used."""
    found: dict[str, str] = {}
    if isinstance(config, Mapping):
        if set(config) == {"env"} and isinstance(config["env"], str):
            return {config["env"]: path}
        for key, value in config.items():
            found.update(env_references(value, f"{path}.{key}" if path else str(key)))
    elif isinstance(config, list):
        for i, value in enumerate(config):
            found.update(env_references(value, f"{path}[{i}]"))
    return found


@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str


def dockerfile_instructions(path: Path) -> list[Instruction]:
    """The instructions of a Dockerfile (comments dropped, ``\\`` continuations joined)."""
    out: list[Instruction] = []
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = pending + line
        pending = ""
        keyword, _, args = line.partition(" ")
        out.append(Instruction(keyword.upper(), args.strip()))
    return out


@dataclass(frozen=True)
class Copy:
    sources: list[str]
    destination: str
    from_stage: str | None


def dockerfile_copies(path: Path) -> Iterator[Copy]:
    for ins in dockerfile_instructions(path):
        if ins.keyword not in ("COPY", "ADD"):
            continue
        if ins.args.startswith("["):
            import json

            parts = json.loads(ins.args)
        else:
            parts = shlex.split(ins.args)
        flags = [p for p in parts if p.startswith("--")]
        paths = [p for p in parts if not p.startswith("--")]
        from_stage = next((f.split("=", 1)[1] for f in flags if f.startswith("--from=")), None)
        yield Copy(paths[:-1], paths[-1], from_stage)


def _glob_regex(pattern: str) -> re.Pattern[str]:
    out, i = [], 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out))


def dockerignore_excludes(context: Path, relative: str) -> bool:
    """Whether ``.dockerignore`` of ``context`` leaves ``relative`` out of the build context.

    Docker's rules: patterns in order, the last match wins, ``!`` re-includes, ``**`` any depth, and a
    pattern matching a directory matches everything below it.
    """
    ignore = context / ".dockerignore"
    if not ignore.exists():
        return False
    parts = Path(relative).parts
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    excluded = False
    for line in ignore.read_text().splitlines():
        pattern = line.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negate = pattern.startswith("!")
        regex = _glob_regex(pattern.lstrip("!").strip("/"))
        if any(regex.fullmatch(c) for c in candidates):
            excluded = not negate
    return excluded
