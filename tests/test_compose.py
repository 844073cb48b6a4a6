"""The production docker-compose.yml and Dockerfile agree with the code they deploy.

No Docker engine is needed: the compose file is parsed, and its `${...}` references are
resolved here the way compose resolves them.
"""

import re
import shlex
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from core.settings import Settings
from models.search_attributes import ALL, cli_type_name

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"

APP_SERVICES = ("worker", "webhooks", "migrate")
ONE_SHOT_JOBS = (
    "temporal-admin-tools",
    "temporal-create-namespace",
    "temporal-search-attributes",
    "migrate",
)
EXPECTED_SERVICES = {
    "postgresql",
    "temporal",
    "temporal-ui",
    "worker",
    "webhooks",
    *ONE_SHOT_JOBS,
}
SECRETS = ("SENDGRID_API_KEY", "WEBHOOK_SECRET", "UNSUBSCRIBE_SECRET")
COMPLETED = "service_completed_successfully"

# What an operator would put in the env file; every required variable has a value.
OPERATOR_ENV = {
    "POSTGRES_PASSWORD": "s3cret-pg-password",
    "SENDGRID_API_KEY": "SG.test-key",
    "WEBHOOK_SECRET": "a-real-webhook-secret",
    "UNSUBSCRIBE_SECRET": "a-real-unsubscribe-secret",
    "WEBHOOK_PUBLIC_URL": "https://hooks.example.com",
    "EMAIL_FROM": "hello@example.com",
    "SALES_QUEUE_EMAIL": "sales@example.com",
    "POSTAL_ADDRESS": "Example Ltd, 1 Example Street, Exampletown",
    "SENDGRID_WEBHOOK_PUBLIC_KEY": "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEexample",
}


class MissingVariable(Exception):
    """Compose would refuse to start: a `${NAME:?message}` variable is unset."""


_REFERENCE = re.compile(
    r"\$(?:(?P<escaped>\$)"
    r"|\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}"
    r"|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))"
)


def interpolate(text: str, env: Mapping[str, str]) -> str:
    """Resolve `$$`, `$NAME`, `${NAME}`, `${NAME:-default}` and `${NAME:?error}`."""

    def resolve(match: re.Match[str]) -> str:
        if match["escaped"]:
            return "$"
        name = match["braced"] or match["bare"]
        op, arg = match["op"], match["arg"]
        value = env.get(name)
        unset = value is None or (op is not None and op.startswith(":") and value == "")
        if op is not None and op.endswith("?") and unset:
            raise MissingVariable(f"{name}: {arg}")
        if op is not None and op.endswith("-") and unset:
            return arg
        return value or ""

    return _REFERENCE.sub(resolve, text)


def resolve_all(values: Mapping[str, str], env: Mapping[str, str]) -> dict[str, str]:
    return {name: interpolate(value, env) for name, value in values.items()}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    with COMPOSE_FILE.open() as stream:
        loaded: dict[str, Any] = yaml.safe_load(stream)
    assert isinstance(loaded, dict)
    return loaded


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, Any]:
    defined: dict[str, Any] = compose["services"]
    return defined


@pytest.fixture
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No setting of the machine running the tests leaks into `Settings()`."""
    for field in Settings.model_fields:
        monkeypatch.delenv(field.upper(), raising=False)
    return monkeypatch


def environment(service: Mapping[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {str(name): str(value) for name, value in env.items()}


def command(service: Mapping[str, Any]) -> list[str]:
    cmd = service.get("command")
    if isinstance(cmd, str):
        return shlex.split(cmd)
    return [str(part) for part in cmd or []]


def script(service: Mapping[str, Any]) -> str:
    return "\n".join(command(service))


def depends_on(service: Mapping[str, Any]) -> dict[str, str]:
    deps = service.get("depends_on") or {}
    if isinstance(deps, list):
        return dict.fromkeys(deps, "service_started")
    return {
        name: (spec or {}).get("condition", "service_started")
        for name, spec in deps.items()
    }


def published_ports(service: Mapping[str, Any]) -> list[tuple[str, int, int]]:
    """(host address, host port, container port) of every port a service publishes."""
    ports = []
    for entry in service.get("ports") or []:
        if isinstance(entry, dict):
            host_ip = str(entry.get("host_ip", ""))
            target = str(entry["target"])
            published = str(entry.get("published", target))
        else:
            *host, published, target = str(entry).split("/")[0].rsplit(":", 2)
            host_ip = host[0] if host else ""
        ports.append((host_ip, int(published), int(target)))
    return ports


def test_every_production_service_is_defined(services: dict[str, Any]) -> None:
    missing = EXPECTED_SERVICES - services.keys()
    assert not missing, f"docker-compose.yml lacks services: {sorted(missing)}"


def test_one_shot_jobs_are_not_restarted(services: dict[str, Any]) -> None:
    for name in ONE_SHOT_JOBS:
        assert services[name].get("restart", "no") == "no", name


def test_temporal_runs_on_postgresql_without_the_deprecated_auto_setup_image(
    services: dict[str, Any],
) -> None:
    for name, service in services.items():
        assert "auto-setup" not in str(service.get("image", "")), name
    assert services["postgresql"]["image"].startswith("postgres:")
    volumes = services["postgresql"]["volumes"]
    assert any(":/var/lib/postgresql" in str(volume) for volume in volumes)
    temporal = services["temporal"]
    assert temporal["image"].startswith("temporalio/server:")
    assert environment(temporal)["DB"] == "postgres12"
    assert environment(temporal)["POSTGRES_SEEDS"] == "postgresql"
    assert depends_on(temporal)["temporal-admin-tools"] == COMPLETED
    schema_job = script(services["temporal-admin-tools"])
    for database in ("temporal", "temporal_visibility"):
        assert f"--database {database} update-schema" in schema_job


def test_app_environment_names_are_settings_fields(services: dict[str, Any]) -> None:
    fields = {name.upper() for name in Settings.model_fields}
    for name in APP_SERVICES:
        env = environment(services[name])
        assert env, f"{name} has no environment"
        unknown = env.keys() - fields
        assert not unknown, f"{name} sets variables Settings lacks: {sorted(unknown)}"


def test_app_services_share_one_environment(services: dict[str, Any]) -> None:
    worker_env = environment(services["worker"])
    for name in APP_SERVICES:
        assert environment(services[name]) == worker_env, name


def test_app_runs_in_production_and_secrets_have_no_default(
    services: dict[str, Any],
) -> None:
    env = environment(services["worker"])
    assert env["ENVIRONMENT"] == "production"
    assert env["TEMPORAL_ADDRESS"] == "temporal:7233"
    assert env["EMAIL_BACKEND"] == "sendgrid"
    assert env["LOG_FORMAT"] == "json"
    for secret in SECRETS:
        assert re.fullmatch(rf"\$\{{{secret}:\?[^}}]+\}}", env[secret]), (
            f"{secret} must be `${{{secret}:?message}}`, not {env[secret]!r}"
        )
    assert env["DATABASE_URL"].startswith("postgresql+psycopg://")
    assert "${POSTGRES_PASSWORD:?" in env["DATABASE_URL"]


@pytest.mark.parametrize("variable", [*SECRETS, "POSTGRES_PASSWORD"])
def test_compose_refuses_to_start_without_a_secret(
    services: dict[str, Any], variable: str
) -> None:
    operator_env = {k: v for k, v in OPERATOR_ENV.items() if k != variable}
    app_env = environment(services["worker"])
    with pytest.raises(MissingVariable, match=variable):
        resolve_all(app_env, operator_env)


def test_postgres_password_is_required_wherever_it_is_used(
    services: dict[str, Any],
) -> None:
    uses = {
        "postgresql": "POSTGRES_PASSWORD",
        "temporal-admin-tools": "SQL_PASSWORD",
        "temporal": "POSTGRES_PWD",
    }
    for service, variable in uses.items():
        value = environment(services[service])[variable]
        with pytest.raises(MissingVariable, match="POSTGRES_PASSWORD"):
            interpolate(value, {})
        assert interpolate(value, OPERATOR_ENV) == OPERATOR_ENV["POSTGRES_PASSWORD"]


def test_app_environment_makes_valid_production_settings(
    services: dict[str, Any], clean_environment: pytest.MonkeyPatch
) -> None:
    for name, value in resolve_all(
        environment(services["worker"]), OPERATOR_ENV
    ).items():
        clean_environment.setenv(name, value)

    settings = Settings(_env_file=None)

    assert settings.environment == "production"
    assert settings.email_backend == "sendgrid"
    assert settings.log_format == "json"
    assert settings.temporal_address == "temporal:7233"
    assert settings.database_url is not None
    assert settings.database_url.startswith("postgresql+psycopg://")
    password = OPERATOR_ENV["POSTGRES_PASSWORD"]
    assert f":{password}@postgresql:5432/" in settings.database_url
    assert settings.webhook_secret.get_secret_value() == OPERATOR_ENV["WEBHOOK_SECRET"]
    assert settings.sendgrid_api_key is not None


def test_search_attribute_job_registers_exactly_the_search_attributes(
    services: dict[str, Any],
) -> None:
    job = script(services["temporal-search-attributes"])
    expected = sorted((key.name, cli_type_name(key)) for key in ALL)

    created = re.findall(
        r"temporal operator search-attribute create --name (\S+) --type (\S+)", job
    )
    assert sorted(created) == expected

    verified_list = re.search(r"for expected in ([^;\n]+)", job)
    assert verified_list, "the job does not check the registered types"
    verified = [tuple(pair.split("=")) for pair in verified_list.group(1).split()]
    assert sorted(verified) == expected


def test_search_attribute_job_targets_the_app_namespace_once_temporal_is_up(
    services: dict[str, Any],
) -> None:
    job = services["temporal-search-attributes"]
    env = environment(job)
    app_env = environment(services["worker"])
    assert env["TEMPORAL_ADDRESS"] == app_env["TEMPORAL_ADDRESS"]
    assert env["TEMPORAL_NAMESPACE"] == app_env["TEMPORAL_NAMESPACE"]
    assert depends_on(job)["temporal"] == "service_healthy"
    assert depends_on(job)["temporal-create-namespace"] == COMPLETED
    assert "temporal operator cluster health" in script(job)
    namespace_job = services["temporal-create-namespace"]
    namespace_env = environment(namespace_job)
    assert namespace_env["TEMPORAL_NAMESPACE"] == app_env["TEMPORAL_NAMESPACE"]
    assert "temporal operator namespace create" in script(namespace_job)


def test_published_ports_are_temporal_grpc_ui_and_webhooks(
    services: dict[str, Any],
) -> None:
    published = {
        (name, host_port, container_port)
        for name, service in services.items()
        for _, host_port, container_port in published_ports(service)
    }
    assert published == {
        ("temporal", 7233, 7233),
        ("temporal-ui", 8080, 8080),
        ("webhooks", 8000, 8000),
    }


def test_temporal_and_its_ui_are_published_on_loopback_only(
    services: dict[str, Any],
) -> None:
    for name in ("temporal", "temporal-ui"):
        for host_ip, _, _ in published_ports(services[name]):
            assert host_ip == "127.0.0.1", name


def test_webhooks_port_matches_settings(
    services: dict[str, Any], clean_environment: pytest.MonkeyPatch
) -> None:
    port = Settings(_env_file=None).webhook_port
    webhooks = services["webhooks"]
    assert [target for _, _, target in published_ports(webhooks)] == [port]
    cmd = command(webhooks)
    assert cmd[:2] == ["uvicorn", "webhooks.app:app"]
    assert cmd[cmd.index("--port") + 1] == str(port)
    assert cmd[cmd.index("--host") + 1] == "0.0.0.0"


def test_app_services_run_the_expected_commands(services: dict[str, Any]) -> None:
    assert command(services["worker"]) == ["python", "worker.py"]
    assert command(services["migrate"]) == ["python", "-m", "core.db", "upgrade"]
    replicas = services["worker"]["deploy"]["replicas"]
    assert isinstance(replicas, int)
    assert replicas >= 1


def test_worker_and_webhooks_wait_for_migrations_and_search_attributes(
    services: dict[str, Any],
) -> None:
    for name in ("worker", "webhooks"):
        deps = depends_on(services[name])
        assert deps.get("migrate") == COMPLETED, name
        assert deps.get("temporal-search-attributes") == COMPLETED, name
    assert depends_on(services["migrate"]).get("postgresql") == "service_healthy"


def test_app_services_are_built_from_the_dockerfile(services: dict[str, Any]) -> None:
    for name in APP_SERVICES:
        assert services[name].get("build") == ".", name
    assert DOCKERFILE.is_file()


def dockerfile_instructions() -> list[str]:
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    return [
        line.strip()
        for line in text.splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]


def copied_sources(instructions: list[str]) -> set[str]:
    sources: set[str] = set()
    for line in instructions:
        if line.startswith("COPY "):
            args = [arg for arg in line.split()[1:] if not arg.startswith("--")]
            sources.update(arg.rstrip("/") for arg in args[:-1])
    return sources


def test_dockerfile_copies_everything_the_package_needs() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    setuptools = pyproject["tool"]["setuptools"]
    needed = {
        "pyproject.toml",
        pyproject["project"]["readme"],
        # Settings.journeys_dir: read at run time, relative to the working directory.
        str(Settings.model_fields["journeys_dir"].default),
        *(package.split(".")[0] for package in setuptools["packages"]),
        *(f"{module}.py" for module in setuptools.get("py-modules", [])),
    }
    copied = copied_sources(dockerfile_instructions())
    assert not needed - copied, f"the Dockerfile lacks {sorted(needed - copied)}"
    missing = sorted(source for source in copied if not (ROOT / source).exists())
    assert not missing, f"the Dockerfile copies files that do not exist: {missing}"


def test_dockerfile_installs_the_project_as_a_non_root_user() -> None:
    instructions = dockerfile_instructions()
    assert instructions[0] == "FROM python:3.11-slim"
    assert any(
        line.startswith("RUN ") and "pip install --no-cache-dir ." in line
        for line in instructions
    )
    users = [line.split()[1] for line in instructions if line.startswith("USER ")]
    assert users, "the image runs as root"
    assert users[-1] not in {"root", "0"}
    assert instructions[-1] == 'CMD ["python", "worker.py"]'


def test_dockerignore_keeps_local_state_and_secrets_out_of_the_image() -> None:
    patterns = {
        line.strip()
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    for pattern in (".git", ".venv", "var", ".env", "tests"):
        assert pattern in patterns, pattern
