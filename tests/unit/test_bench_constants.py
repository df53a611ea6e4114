"""The benchmark's own copies of the model shape and GPU peaks agree with infra's.

bench/gpu_sizing_benchmark.py runs standalone on a GPU machine (torch, no infra package), so it keeps
its own FULL_SHAPE, KV arithmetic and vendor TFLOP/s table. It imports torch at the top, so this test
reads those constants from its source with `ast` instead of importing it.
"""

from __future__ import annotations

import ast
from types import SimpleNamespace
from typing import Any

from infra.core.accelerators import GPU_MODELS
from infra.core.catalog import SHAPE
from infra.core.paths import REPO_ROOT

BENCH = REPO_ROOT / "bench" / "gpu_sizing_benchmark.py"
TREE = ast.parse(BENCH.read_text(), filename=str(BENCH))
# bench FULL_SHAPE key (transformers' Qwen3Config) -> infra.core.catalog.ModelShape field
SHAPE_FIELDS = {
    "hidden_size": "hidden_size",
    "num_hidden_layers": "num_layers",
    "num_attention_heads": "num_attention_heads",
    "num_key_value_heads": "num_kv_heads",
    "head_dim": "head_dim",
    "intermediate_size": "intermediate_size",
    "vocab_size": "vocab_size",
    "max_position_embeddings": "max_position_embeddings",
}


def _assigned(name: str) -> ast.expr:
    """The value of the bench module's top-level `name = ...`."""
    for node in TREE.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in node.targets):
            return node.value
    raise AssertionError(f"{BENCH.name} has no top-level {name}")


def _literal(name: str) -> Any:
    """A top-level literal, or a `dict(key=literal, ...)` call, of the bench module."""
    value = _assigned(name)
    if isinstance(value, ast.Call) and isinstance(value.func, ast.Name) and value.func.id == "dict" and not value.args:
        return {kw.arg: ast.literal_eval(kw.value) for kw in value.keywords}
    return ast.literal_eval(value)


def _kv_arith_expression() -> ast.expr:
    """The right-hand side of `kv_arith = ...` in the bench's main()."""
    found = [
        node.value
        for node in ast.walk(TREE)
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "kv_arith" for t in node.targets)
    ]
    assert len(found) == 1, f"expected one kv_arith assignment in {BENCH.name}, found {len(found)}"
    return found[0]


def _bench_peak(device_name: str) -> float | None:
    """The bench's vendor_peak(): first entry whose key is a substring of the device name."""
    for key, tflops, _source in _literal("VENDOR_DENSE_BF16_TFLOPS"):
        if key.lower() in device_name.lower():
            return tflops
    return None


def test_bench_full_shape_is_the_catalog_shape():
    full = _literal("FULL_SHAPE")
    assert {k: full[k] for k in SHAPE_FIELDS} == {k: getattr(SHAPE, f) for k, f in SHAPE_FIELDS.items()}


def test_bench_kv_arithmetic_is_the_catalog_kv_bytes_per_token():
    expression = ast.Expression(_kv_arith_expression())
    cfg = SimpleNamespace(**_literal("FULL_SHAPE"))
    kv_arith = eval(compile(expression, str(BENCH), "eval"), {"__builtins__": {}}, {"cfg": cfg})
    assert kv_arith == SHAPE.kv_bytes_per_token


def test_bench_vendor_peaks_are_the_gpu_models_dense_bf16_tflops():
    # The bench looks peaks up by CUDA device name, which knows no AMD GPU (there it needs --peak-tflops).
    nvidia = [gpu for gpu in GPU_MODELS.values() if gpu.vendor == "nvidia"]
    assert nvidia
    for gpu in nvidia:
        # The product label is the device name with spaces turned into dashes ("NVIDIA-H100-80GB-HBM3").
        device_name = gpu.product_label.replace("-", " ")
        assert _bench_peak(device_name) == gpu.dense_bf16_tflops, gpu.key
