"""Without a server: every rendered Deployment of every stack converts to a local vLLM command line with only the
listed replacements, and the weights Jobs download what --trust-remote-code needs offline."""

from __future__ import annotations

import fnmatch
import json
import os
import subprocess
from pathlib import Path

from infra.core.paths import REPO_ROOT
from infra.core.plan import build_for_env
from infra.core.platform_objects import WEIGHTS_FILE_PATTERNS
from tests.vllm.conftest import job_repos_and_patterns, weights_jobs
from tests.vllm.harness import VLLM_VENV, Server, load_spec

DEPLOYMENTS = sorted(p for p in (REPO_ROOT / "manifests").glob("*/*/deployment-*.yaml"))


def test_weights_jobs_use_the_shared_pattern_list_and_fetch_the_remote_code():
    jobs = weights_jobs()
    assert jobs
    for job in jobs:
        _, patterns = job_repos_and_patterns(job)
        assert patterns == list(WEIGHTS_FILE_PATTERNS), patterns
        # config.json's auto_map names these; offline, --trust-remote-code needs them in the cache
        for f in (
            "configuration_jina_embeddings_v5.py",
            "modeling_jina_embeddings_v5.py",
            "config.json",
            "adapters/retrieval/adapter_model.safetensors",
            "tokenizer.json",
            "merges.txt",
        ):
            assert any(fnmatch.fnmatch(f, p) for p in patterns), f"{f} is not downloaded by {patterns}"


def test_all_four_vendor_and_mode_combinations_are_rendered_and_convert(tmp_path):
    seen = set()
    for path in DEPLOYMENTS:
        env, variant = path.parent.parent.name, path.parent.name
        spec = load_spec(env, variant)
        server = Server(spec, tmp_path / "models", tmp_path / f"{env}-{variant}")
        server._mount_dirs()
        cmd, envs = server.local_command(), server.local_env()
        assert cmd[1] == "serve" and cmd[2] == spec.container["args"][0]
        changed = [a for a, b in zip(spec.container["args"], cmd[2:], strict=False) if a != b]
        assert all(a.startswith(("--host=", "--port=")) for a in changed), changed
        assert envs["HF_HOME"].startswith(str(tmp_path)), envs["HF_HOME"]
        assert envs["HF_HUB_OFFLINE"] == "1" if "HF_HUB_OFFLINE" in envs else True
        in_pod = {
            k: v
            for k, v in envs.items()
            if k != "PATH" and v.startswith(("/home/vllm", "/models", "/tmp/")) and not v.startswith(str(tmp_path))
        }
        assert not in_pod, f"env values still pointing into the pod's filesystem: {in_pod}"
        seen.add((spec.vendor, spec.mode))
    assert seen == {("nvidia", "base"), ("nvidia", "merged"), ("amd", "base"), ("amd", "merged")}, seen


def test_vllms_own_parser_reads_every_rendered_flag_as_the_plan_sized_it():
    """vLLM's CLI parser and EngineArgs take every stack's args as rendered (a flag it does not know, or a value of the
    wrong type, fails here), and the engine fields are the plan's: memory fraction, batch sizes and, on time-sliced
    GPUs only, the KV cache fixed in bytes (vllm-project/vllm#55827)."""
    rendered = {}
    for path in DEPLOYMENTS:
        env, variant = path.parent.parent.name, path.parent.name
        rendered[f"{env}/{variant}"] = load_spec(env, variant).container["args"]
    proc = subprocess.run(
        [str(VLLM_VENV / "bin" / "python"), str(Path(__file__).with_name("vllm_cli_parse.py"))],
        input=json.dumps(rendered),
        capture_output=True,
        text=True,
        env={**os.environ, "VLLM_TARGET_DEVICE": "cpu"},
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    parsed = json.loads(proc.stdout)
    for name, fields in parsed.items():
        env, variant = name.split("/")
        release = next(r for r in build_for_env(env).releases if r.variant == variant)
        engine, slice_ = release.spec.engine, release.pool.slice
        assert fields["model"] == release.spec.model.repository, name
        assert fields["runner"] == "pooling" and fields["trust_remote_code"] is True, name
        assert fields["max_model_len"] == release.spec.model.max_model_len, name
        assert fields["gpu_memory_utilization"] == engine.gpu_memory_utilization, name
        assert fields["max_num_batched_tokens"] == engine.max_num_batched_tokens, name
        assert fields["max_num_seqs"] == engine.max_num_seqs, name
        assert fields["kv_cache_memory_bytes"] == engine.kv_cache_memory_bytes, name
        assert (fields["kv_cache_memory_bytes"] is not None) == (slice_.kind == "time-sliced"), name
    assert {n.split("/")[0] for n in parsed} >= {"dev", "staging", "prod", "prod-amd", "local"}, sorted(parsed)
