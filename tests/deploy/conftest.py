"""The production stack, for real, minus Docker: a throwaway PostgreSQL database, the release step,
gunicorn with deploy/gunicorn.conf.py and nginx with the rendered deploy/nginx template.

Started once per test session (gunicorn and nginx take a few seconds) and shared by the tests in
this folder; every test makes its own users, so they do not depend on each other.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.deploy.helpers import (
    PYTHON,
    REPO,
    create_database,
    drop_database,
    missing,
    postgres_base_url,
    production_environment,
    run,
    self_signed_certificate,
    start_gunicorn,
    start_nginx,
    stop,
    vendor_files,
    with_database,
)


@pytest.fixture(scope="session")
def deploy_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("deploy")


@pytest.fixture(scope="session")
def deploy_database():
    """A database of its own (``instagender_deploytest_<random>``), dropped at the end."""
    base_url = postgres_base_url()
    try:
        name = create_database(base_url)
    except Exception as error:  # noqa: BLE001 - any failure means "no PostgreSQL here"
        missing(f"PostgreSQL is not reachable at {base_url}: {error}")
    yield with_database(base_url, name)
    drop_database(base_url, name)


@pytest.fixture(scope="session")
def production_env(deploy_root, deploy_database) -> dict[str, str]:
    """The environment compose gives the web container, pointed at this machine."""
    # Only what the Dockerfile keeps from the npm stage: proves collectstatic and the pages need
    # nothing else.
    node_modules = deploy_root / "node_modules"
    for path in vendor_files():
        (node_modules / path).parent.mkdir(parents=True, exist_ok=True)
        (node_modules / path).symlink_to(REPO / "node_modules" / path)
    return production_environment(
        database_url=deploy_database,
        root=deploy_root,
        DJANGO_ADMINS="operators@instagender.test",
        DJANGO_LOG_LEVEL="INFO",
        CACHE_URL="dbcache://instagender_cache",
        ALLAUTH_TRUSTED_PROXY_COUNT="1",
        DEFAULT_FROM_EMAIL="Instagender <noreply@instagender.test>",
        SERVER_EMAIL="Instagender errors <errors@instagender.test>",
        PRIVATE_MEDIA_SERVING="x-accel",
        NODE_MODULES_DIR=str(node_modules),
    )


@pytest.fixture(scope="session")
def mail_dir(production_env) -> Path:
    return Path(production_env["EMAIL_URL"].removeprefix("filemail:///"))


@pytest.fixture(scope="session")
def released(production_env):
    """What a deploy does before web starts: the image's collectstatic, then deploy/release.sh."""
    run(
        [PYTHON, "manage.py", "collectstatic", "--noinput", "--verbosity", "0"],
        env=production_env,
    )
    result = run(["sh", "deploy/release.sh"], env=production_env)
    return result


@pytest.fixture(scope="session")
def gunicorn_server(production_env, released, deploy_root):
    server = start_gunicorn(production_env, deploy_root / "gunicorn.log")
    yield server
    stop(server.process)


@pytest.fixture(scope="session")
def nginx_server(gunicorn_server, deploy_root):
    """nginx with the repository's template, rendered for local ports, in front of gunicorn."""
    prefix = deploy_root / "nginx"
    certificate, key = self_signed_certificate(prefix / "certs")
    proxy = start_nginx(
        prefix,
        upstream=f"127.0.0.1:{gunicorn_server.port}",
        media_root=Path(gunicorn_server.env["MEDIA_ROOT"]),
        certificate=certificate,
        key=key,
    )
    yield proxy
    stop(proxy.process)
