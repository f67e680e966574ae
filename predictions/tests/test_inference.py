"""The web's inference module stays free of TensorFlow (fast check; the slow suite runs it)."""

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_web_modules_import_no_tensorflow():
    code = """
import sys, django
django.setup()
import instagender.urls, instagender.wsgi, curation.admin, predictions.inference, predictions.services
import predictions.selectors, ml.synthetic, ml.metrics, ml.splits
loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras", "tf_keras"))
print("TF_MODULES", loaded)
print("LITERT", "ai_edge_litert.interpreter" in sys.modules)
"""
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        env={"DJANGO_SETTINGS_MODULE": "instagender.settings", "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr
    assert "TF_MODULES []" in result.stdout
    assert "LITERT True" in result.stdout
