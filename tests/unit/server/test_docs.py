"""The server's start path imports no FastAPI or pydantic; /docs and /openapi.json still answer."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from mlpack.server.docs import swagger_page

ROOT = Path(__file__).resolve().parents[3]


def test_what_the_server_imports_before_it_binds() -> None:
    code = ("import sys\n"
            "import mlpack.server.__main__, uvicorn\n"
            "from mlpack.server.app import create_app\n"
            "from mlpack.server.grpc import attach\n"
            "app = create_app('/nonexistent-bundle')\n"
            "print(' '.join(sorted(m for m in sys.modules if m.split('.')[0] in ('fastapi', 'pydantic', 'onnxruntime'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env=dict(os.environ, PYTHONPATH=str(ROOT)), cwd="/")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ""


def test_the_swagger_page_points_at_the_document_and_escapes() -> None:
    page = swagger_page('/openapi.json"</script>', title="<m&l>")
    assert '"/openapi.json\\"\\u003c/script>"' in page and page.count("</script>") == 2
    assert "<title>&lt;m&amp;l&gt; - Swagger UI</title>" in page
    assert "swagger-ui-bundle.js" in page
