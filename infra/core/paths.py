"""Where the bundle's own files are: the repository, the chart, the committed benchmark result.

Paths only; nothing is read at import.
"""

from __future__ import annotations

from pathlib import Path

from infra.core.names import CHART_NAME

REPO_ROOT = Path(__file__).resolve().parents[2]


CHART_PATH = REPO_ROOT / "charts" / CHART_NAME
BENCH_RESULT = REPO_ROOT / "bench" / "results" / "nvidia-h100-80gb-hbm3.json"
ENGINE_RESULT = REPO_ROOT / "bench" / "results" / "vllm-0.25.0-nvidia-h200.json"
