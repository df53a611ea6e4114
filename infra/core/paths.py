"""Where the bundle's own files are: the repository, the chart, the committed benchmark result.

Paths only; nothing is read at import.
"""

from __future__ import annotations

import os
from pathlib import Path

from infra.core.names import CHART_NAME

REPO_ROOT = Path(__file__).resolve().parents[2]
# The pinned toolchain's cache (tools/bootstrap.sh builds into it; tools/env.sh exports the variable).
TOOLS_DIR = Path(os.environ.get("BUNDLE_TOOLS_DIR", Path.home() / ".cache" / "jina-embeddings-bundle" / "tools"))


CHART_PATH = REPO_ROOT / "charts" / CHART_NAME
BENCH_RESULT = REPO_ROOT / "bench" / "results" / "nvidia-h100-80gb-hbm3.json"
ENGINE_RESULT = REPO_ROOT / "bench" / "results" / "vllm-0.25.0-nvidia-h200.json"
