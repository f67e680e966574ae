"""The web's inference module stays free of TensorFlow (fast check; the slow suite runs it)."""

from tests.fresh_process import run_python


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
    result = run_python(code, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "TF_MODULES []" in result.stdout
    assert "LITERT True" in result.stdout
