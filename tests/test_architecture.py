"""The dependency rules the README states, checked on the code itself."""

import ast
from pathlib import Path

from tests.fresh_process import run_python

REPO = Path(__file__).resolve().parents[1]
APPS = {"accounts", "babies", "predictions", "curation"}


def _imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_the_pure_ml_package_imports_neither_django_nor_tensorflow_nor_an_app():
    modules = sorted(f"ml.{path.stem}" for path in (REPO / "ml").glob("*.py") if path.stem != "__init__")
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('django', 'tensorflow', 'keras', 'accounts', 'babies', 'predictions', 'curation'))\n"
        "print('LOADED', bad)\n"
    )
    result = run_python(code, django=False)
    assert result.returncode == 0, result.stderr
    assert "LOADED []" in result.stdout
    assert len(modules) >= 10


def test_babies_models_services_and_images_import_nothing_from_predictions():
    for name in ("models.py", "services.py", "images.py"):
        imported = _imported_modules(REPO / "babies" / name)
        assert not {module for module in imported if module.split(".")[0] in ("predictions", "curation")}, (
            name
        )


def test_the_audit_log_sits_below_every_app():
    for path in (REPO / "audit").rglob("*.py"):
        if "tests" in path.relative_to(REPO).parts:
            continue  # tests may build their data with any app's factories
        imported = _imported_modules(path)
        apps = {module.split(".")[0] for module in imported} & APPS
        assert not apps, f"{path.relative_to(REPO)} imports {sorted(apps)}"


def test_accounts_does_not_import_curation_to_log():
    """It logs through the audit app; curation only erases a parent's frozen training copies."""
    imported = _imported_modules(REPO / "accounts" / "services.py")
    assert "audit.services" in imported
    assert not any(module.startswith("curation.services.audit") for module in imported)
