"""compose.yaml, compose.dev.yaml and .env.example: parsed with PyYAML for the project's rules,
and read by Docker Compose itself (the `docker-compose` binary from requirements-dev.txt;
`config` needs no Docker engine) exactly as an operator's first `docker compose up` would."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from deploy.nginx.render import TEMPLATE, placeholders
from tests.deploy.helpers import BIN, REPO, missing

COMPOSE = REPO / "compose.yaml"
ENV_EXAMPLE = REPO / ".env.example"
SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|ACCESS_KEY|PRIVATE_KEY", re.IGNORECASE)
ONE_SHOT = {"migrate", "train"}


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def env_example() -> dict[str, str | None]:
    """Every variable .env.example mentions: set ones with their value, commented ones as None."""
    variables: dict[str, str | None] = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        if match := re.fullmatch(r"([A-Z][A-Z0-9_]*)=(.*)", line):
            variables[match.group(1)] = match.group(2)
        elif match := re.fullmatch(r"# ([A-Z][A-Z0-9_]*)=.*", line):
            variables.setdefault(match.group(1), None)
    return variables


def test_every_service_is_healthchecked_or_waits_for_a_healthy_or_finished_one(compose):
    services = compose["services"]
    assert set(services) == {"db", "migrate", "web", "nginx", "cron", "train"}
    for name, service in services.items():
        healthcheck = service.get("healthcheck", {})
        has_healthcheck = bool(healthcheck.get("test")) and not healthcheck.get("disable")
        conditions = {dependency.get("condition") for dependency in service.get("depends_on", {}).values()}
        assert has_healthcheck or conditions & {"service_healthy", "service_completed_successfully"}, name
        # depends_on in the list form only waits for "started": every dependency names a condition.
        assert isinstance(service.get("depends_on", {}), dict), name
        assert None not in conditions, name
        if name not in ONE_SHOT:
            assert has_healthcheck, f"{name} runs for good and should say when it is unhealthy"
            assert service["restart"] == "unless-stopped", name


def test_the_start_order_is_db_then_migrate_then_web_cron_and_nginx(compose):
    services = compose["services"]
    assert services["migrate"]["depends_on"] == {"db": {"condition": "service_healthy"}}
    assert services["migrate"]["restart"] == "no"
    for name in ("web", "cron"):
        assert services[name]["depends_on"]["db"] == {"condition": "service_healthy"}
        assert services[name]["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}
    assert services["nginx"]["depends_on"] == {"web": {"condition": "service_healthy"}}
    assert services["migrate"]["command"] == ["sh", "/app/deploy/release.sh"]
    assert (REPO / "deploy" / "release.sh").exists()


def test_postgres_and_media_live_in_named_volumes(compose):
    assert set(compose["volumes"]) == {"pgdata", "media"}
    services = compose["services"]
    assert "pgdata:/var/lib/postgresql/data" in services["db"]["volumes"]
    assert "pg_isready" in " ".join(services["db"]["healthcheck"]["test"])
    assert "media:/srv/media" in services["web"]["volumes"]
    assert "media:/srv/media:ro" in services["nginx"]["volumes"]  # nginx only reads
    assert services["web"]["environment"]["MEDIA_ROOT"] == "/srv/media"
    assert services["nginx"]["environment"]["NGINX_MEDIA_ROOT"] == "/srv/media"


def test_only_nginx_publishes_ports(compose):
    published = {name for name, service in compose["services"].items() if service.get("ports")}
    assert published == {"nginx"}


def test_nginx_gets_every_placeholder_of_the_one_template(compose):
    nginx = compose["services"]["nginx"]
    assert "./deploy/nginx/templates:/etc/nginx/templates:ro" in nginx["volumes"]
    # Named default.conf.template so that it replaces the image's default.conf welcome page.
    assert TEMPLATE.name == "default.conf.template"
    assert TEMPLATE.parent == REPO / "deploy" / "nginx" / "templates"
    assert [path.name for path in TEMPLATE.parent.iterdir()] == ["default.conf.template"]
    environment = nginx["environment"]
    assert environment["NGINX_ENVSUBST_FILTER"] == "^NGINX_"
    assert placeholders(TEMPLATE.read_text()) <= set(environment)
    assert environment["NGINX_UPSTREAM"] == "web:8000"
    assert environment["NGINX_RESOLVER"] == "127.0.0.11"  # Docker's DNS


def test_app_containers_run_the_same_image_hardened(compose):
    services = compose["services"]
    images = {services[name]["image"] for name in ("migrate", "web", "cron")}
    assert len(images) == 1
    for name in ("migrate", "web", "cron"):
        service = services[name]
        assert service["build"]["target"] == "web"
        assert service["cap_drop"] == ["ALL"]
        assert "no-new-privileges:true" in service["security_opt"]
        assert service["init"] is True
        assert service["environment"]["DJANGO_DEBUG"] == "0"
        assert service["environment"]["PRIVATE_MEDIA_SERVING"] == "${PRIVATE_MEDIA_SERVING:-x-accel}"
    assert services["train"]["build"]["target"] == "train"
    assert services["train"]["profiles"] == ["train"]


def test_cron_runs_the_jobs_in_the_loop_with_a_heartbeat_check(compose):
    cron = compose["services"]["cron"]
    assert cron["command"] == ["sh", "/app/deploy/cron/every.sh", "sh", "/app/deploy/cron/jobs.sh"]
    assert cron["healthcheck"]["test"] == ["CMD", "sh", "/app/deploy/cron/healthcheck.sh"]
    # File deletions and the storage reconciliation work on the files themselves.
    assert cron["volumes"] == compose["services"]["web"]["volumes"] == ["media:/srv/media"]


def test_no_secret_is_committed(compose):
    def walk(node, path=""):
        if isinstance(node, dict):
            for key, value in node.items():
                yield from walk(value, f"{path}.{key}")
        elif isinstance(node, list):
            for index, value in enumerate(node):
                yield from walk(value, f"{path}[{index}]")
        else:
            yield path, node

    for path, value in walk(compose):
        if SECRET_NAME.search(path.rsplit(".", 1)[-1]):
            assert isinstance(value, str) and re.fullmatch(r"\$\{[A-Z_]+(:\?[^}]*)?\}", value), (path, value)
        if isinstance(value, str) and "://" in value and "@" in value:
            # A URL with credentials is only ever built from variables.
            userinfo = value.split("://", 1)[1].split("@", 1)[0]
            assert re.fullmatch(r"(\$\{[^}]+\}:?)+", userinfo), (path, value)

    for name, value in env_example().items():
        if SECRET_NAME.search(name):
            assert not value, f".env.example must leave {name} empty, not {value!r}"
    for ignore_file in (".gitignore", ".dockerignore"):
        assert ".env" in (REPO / ignore_file).read_text().split(), ignore_file


def settings_variables() -> set[str]:
    """Every environment variable instagender/settings.py reads."""
    text = (REPO / "instagender" / "settings.py").read_text()
    # env("X"), env.int("X"), env_bool("X"), os.environ.get("X"), os.getenv("X")
    names = set(re.findall(r"\benv(?:[._][a-z_]+)?\(\s*\"([A-Z][A-Z0-9_]+)\"", text))
    names |= set(re.findall(r"(?:environ\.get|getenv)\(\s*\"([A-Z][A-Z0-9_]+)\"", text))
    names |= set(re.findall(r"\"([A-Z][A-Z0-9_]+)\" in env", text))
    return names


def test_env_example_lists_every_variable_the_deployment_reads():
    listed = set(env_example())
    read = settings_variables()
    assert {"DJANGO_SECRET_KEY", "DATABASE_URL", "STORAGE_BACKEND", "AWS_STORAGE_BUCKET_NAME"} <= read
    read |= set(re.findall(r"_int\(\"([A-Z_]+)\"", (REPO / "deploy" / "gunicorn.conf.py").read_text()))
    read |= set(
        re.findall(r"environ\.get\(\"([A-Z_]+)\"", (REPO / "deploy" / "gunicorn.conf.py").read_text())
    )
    for script in (REPO / "deploy" / "cron").glob("*.sh"):
        read |= set(re.findall(r"\$\{([A-Z_]+):-", script.read_text()))
    read |= set(re.findall(r"\$\{([A-Z_]+)(?::[-?])", COMPOSE.read_text()))
    read |= {"DJANGO_ADMIN_EMAIL", "DJANGO_ADMIN_PASSWORD"}  # manage.py seed_admin
    read -= {"CRON_HEARTBEAT_FILE", "HEALTHCHECK_PORT"}  # internal to the image's scripts
    assert sorted(read - listed) == []


def test_env_example_has_a_comment_above_every_variable():
    lines = ENV_EXAMPLE.read_text().splitlines()
    for index, line in enumerate(lines):
        if re.fullmatch(r"[A-Z][A-Z0-9_]*=.*", line):
            block = lines[max(0, index - 3) : index]
            assert any(previous.startswith("#") for previous in block), line


# --- Docker Compose's own reading -----------------------------------------------------------
def docker_compose() -> str:
    found = shutil.which("docker-compose", path=str(BIN)) or shutil.which("docker-compose")
    if not found:
        missing("docker-compose is not installed (pip install -r requirements-dev.txt)")
    return found


def project(tmp_path: Path, env_text: str) -> Path:
    """A copy of what an operator has on the server: the repository files and their .env."""
    for name in ("compose.yaml", "compose.dev.yaml", "Dockerfile", ".env.example"):
        shutil.copy(REPO / name, tmp_path / name)
    shutil.copytree(REPO / "deploy" / "nginx" / "templates", tmp_path / "deploy" / "nginx" / "templates")
    (tmp_path / ".env").write_text(env_text)
    return tmp_path


def compose_config(directory: Path, *files: str) -> subprocess.CompletedProcess:
    arguments = [item for name in files or ("compose.yaml",) for item in ("-f", name)]
    return subprocess.run(
        [docker_compose(), *arguments, "config", "--format", "json"],
        cwd=directory,
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "HOME": str(directory)},
        timeout=60,
    )


def filled_in_env() -> str:
    text = ENV_EXAMPLE.read_text()
    text = text.replace("\nSITE_DOMAIN=\n", "\nSITE_DOMAIN=instagender.example\n")
    text = text.replace(
        "\nDJANGO_SECRET_KEY=\n", "\nDJANGO_SECRET_KEY=not-a-real-key-but-long-enough-for-this\n"
    )
    return text.replace("\nPOSTGRES_PASSWORD=\n", "\nPOSTGRES_PASSWORD=Correct-Horse-42\n")


def test_docker_compose_refuses_to_start_until_the_secrets_are_filled_in(tmp_path):
    result = compose_config(project(tmp_path, ENV_EXAMPLE.read_text()))
    assert result.returncode != 0
    for message in (
        "set DJANGO_SECRET_KEY in .env",
        "set POSTGRES_PASSWORD in .env",
        "set SITE_DOMAIN in .env",
    ):
        assert message in result.stderr


def test_docker_compose_accepts_the_filled_in_example(tmp_path):
    result = compose_config(project(tmp_path, filled_in_env()))
    assert result.returncode == 0, result.stderr
    config = json.loads(result.stdout)
    assert set(config["services"]) == {"db", "migrate", "web", "nginx", "cron"}  # train is opt-in
    web = config["services"]["web"]["environment"]
    assert web["DATABASE_URL"] == "postgres://instagender:Correct-Horse-42@db:5432/instagender"
    assert web["DJANGO_ALLOWED_HOSTS"] == "instagender.example"
    assert web["DJANGO_CSRF_TRUSTED_ORIGINS"] == "https://instagender.example"
    assert web["CACHE_URL"] == "dbcache://instagender_cache"
    assert web["PRIVATE_MEDIA_SERVING"] == "x-accel"
    assert web["ALLAUTH_TRUSTED_PROXY_COUNT"] == "1"
    nginx = config["services"]["nginx"]
    assert nginx["environment"]["NGINX_SERVER_NAME"] == "instagender.example"
    assert nginx["environment"]["NGINX_CLIENT_MAX_BODY_SIZE"] == "30m"
    assert {(port["target"], port["published"]) for port in nginx["ports"]} == {(80, "80"), (443, "443")}


def test_the_train_profile_and_the_development_overlay_are_valid(tmp_path):
    directory = project(tmp_path, filled_in_env())
    train = subprocess.run(
        [docker_compose(), "--profile", "train", "config", "--services"],
        cwd=directory,
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "HOME": str(directory)},
        timeout=60,
    )
    assert train.returncode == 0, train.stderr
    assert "train" in train.stdout.split()

    result = compose_config(directory, "compose.yaml", "compose.dev.yaml")
    assert result.returncode == 0, result.stderr
    config = json.loads(result.stdout)
    assert "nginx" not in config["services"]
    web = config["services"]["web"]
    assert web["environment"]["DJANGO_DEBUG"] == "1"
    assert web["command"][:3] == ["python", "manage.py", "runserver"]
    assert [port["host_ip"] for port in web["ports"]] == ["127.0.0.1"]  # never on a public interface
