"""Tiny jina-embeddings-v5-text-small checkpoints for the `vllm` tier, generated locally and laid out as a
Hugging Face cache. Runs in the vLLM virtualenv (torch, tokenizers, transformers, huggingface_hub, safetensors).

    python tests/vllm/checkpoint.py build --hf-home DIR --patterns JSON --repos JSON

What it writes:

* Source trees shaped like the published repositories (nothing is downloaded; weights are random):
  - the base repository `jinaai/jina-embeddings-v5-text-small` with the file set its pinned revision lists
    (config.json with `architectures: [JinaEmbeddingsV5Model]` and an `auto_map` naming
    `configuration_jina_embeddings_v5.JinaEmbeddingsV5Config` and `modeling_jina_embeddings_v5.JinaEmbeddingsV5Model`,
    those two `.py` files, `custom_st.py`, `modules.json`, `config_sentence_transformers.json`,
    `generation_config.json`, the tokenizer files, `model.safetensors`, and `adapters/<task>/adapter_config.json`
    + `adapter_model.safetensors` for the four tasks);
  - four pre-merged repositories `…-<task>`: the same files without `adapters/`, the task's LoRA merged into
    the weights (W += B @ A * lora_alpha / r).
* The shape is the real model's family (Qwen3 decoder, GQA 2:1, q/k RMS norms, tied embeddings, 1024-dim
  output, 32768 positions) scaled down: 2 layers, head_dim 64 (vLLM's CPU attention refuses 16).
* The tokenizer is a byte-level BPE trained on a few sentences, saved through PreTrainedTokenizerFast.
* The cache: `$HF_HOME/hub/models--<org>--<name>/{blobs/<sha256>, snapshots/<revision>/<file> -> blob, refs/main}`
  for every (repository, revision) given, holding only the files that the given allow-patterns select, matched
  by huggingface_hub's own `filter_repo_objects` (what `snapshot_download(allow_patterns=...)` applies). The
  patterns come from infra.core.platform_objects.WEIGHTS_FILE_PATTERNS, the list the rendered weights Job downloads.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

BASE_REPOSITORY = "jinaai/jina-embeddings-v5-text-small"
TASKS = ("retrieval", "text-matching", "classification", "clustering")
SEED = 20261201

# The real model's shape family, scaled down (real: 28 layers, head_dim 128, vocab 151,936).
SHAPE: dict[str, Any] = {
    "hidden_size": 1024,
    "intermediate_size": 1536,
    "num_hidden_layers": 2,
    "num_attention_heads": 16,
    "num_key_value_heads": 8,
    "head_dim": 64,
    "max_position_embeddings": 32768,
    "rms_norm_eps": 1e-6,
    "rope_theta": 1000000,
}
LORA_RANK, LORA_ALPHA = 8, 16
LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")

TOKENIZER_CORPUS = [
    "Query: How do plants turn sunlight into energy?",
    "Document: Photosynthesis lets plants convert light energy from the sun into chemical energy stored in sugar.",
    "Document: The stock exchange closed lower on Tuesday as bank shares fell.",
    "The cat sleeps on the warm windowsill. Die Katze schläft auf der warmen Fensterbank.",
    "Le chat dort sur le rebord de fenêtre chaud. El gato duerme en el alféizar cálido. 猫在温暖的窗台上睡觉。",
    "Quarterly revenue rose by eight percent after the merger.",
    "Embeddings map text to vectors; similar meanings land close together.",
]
EOS = "<|endoftext|>"

# The repository's Python files: small, real code (transformers imports the config class through auto_map
# under --trust-remote-code; vLLM itself never imports the modeling file).
CONFIGURATION_PY = '''from transformers import Qwen3Config


class JinaEmbeddingsV5Config(Qwen3Config):
    """Qwen3 configuration with the repository's own model type (test fixture)."""

    model_type = "jina_embeddings_v5"
'''
MODELING_PY = '''import torch
from transformers import Qwen3Model

from .configuration_jina_embeddings_v5 import JinaEmbeddingsV5Config


class JinaEmbeddingsV5Model(Qwen3Model):
    """Last-token pooled, L2-normalised embeddings of a Qwen3 decoder (test fixture)."""

    config_class = JinaEmbeddingsV5Config

    def encode(self, input_ids, attention_mask):
        hidden = self(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        last = attention_mask.sum(dim=1) - 1
        pooled = hidden[torch.arange(hidden.shape[0]), last]
        return torch.nn.functional.normalize(pooled, dim=-1)
'''
CUSTOM_ST_PY = '''import torch
from transformers import AutoModel, AutoTokenizer


class Transformer(torch.nn.Module):
    """sentence-transformers entry point: tokenise, encode, normalise (test fixture)."""

    def __init__(self, model_name_or_path, **kwargs):
        super().__init__()
        self.tokenizer = AutoTokenizer.from_pretrained(model_name_or_path)
        self.model = AutoModel.from_pretrained(model_name_or_path, trust_remote_code=True)

    def forward(self, features):
        features["sentence_embedding"] = self.model.encode(features["input_ids"], features["attention_mask"])
        return features
'''


def _config(vocab_size: int, eos_id: int) -> dict:
    return {
        "architectures": ["JinaEmbeddingsV5Model"],
        "auto_map": {
            "AutoConfig": "configuration_jina_embeddings_v5.JinaEmbeddingsV5Config",
            "AutoModel": "modeling_jina_embeddings_v5.JinaEmbeddingsV5Model",
        },
        "model_type": "jina_embeddings_v5",
        "hidden_act": "silu",
        "attention_bias": False,
        "attention_dropout": 0.0,
        "initializer_range": 0.02,
        "tie_word_embeddings": True,
        "torch_dtype": "bfloat16",
        "use_cache": True,
        "vocab_size": vocab_size,
        "bos_token_id": eos_id,
        "eos_token_id": eos_id,
        "pad_token_id": eos_id,
        "task_names": list(TASKS),
        **SHAPE,
    }


def _tokenizer(out: Path) -> tuple[int, int]:
    """Train the byte-level BPE and save it as the published repos do (tokenizer.json, vocab.json, merges.txt)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=600, special_tokens=[EOS], initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False
    )
    tok.train_from_iterator(TOKENIZER_CORPUS, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=EOS, pad_token=EOS, model_max_length=32768)
    fast.save_pretrained(str(out))
    tok.model.save(str(out))  # vocab.json + merges.txt
    return len(fast), fast.convert_tokens_to_ids(EOS)


def _weights(vocab_size: int):
    """The bare Qwen3Model state dict (no `model.` prefix, as the published base repository stores it)."""
    import torch

    g = torch.Generator().manual_seed(SEED)
    h, i, hd = SHAPE["hidden_size"], SHAPE["intermediate_size"], SHAPE["head_dim"]
    q_out, kv_out = SHAPE["num_attention_heads"] * hd, SHAPE["num_key_value_heads"] * hd

    def rnd(*shape, std=0.02):
        return torch.randn(*shape, generator=g) * std

    def norm(n):
        return 1.0 + rnd(n, std=0.1)

    sd = {"embed_tokens.weight": rnd(vocab_size, h, std=0.5), "norm.weight": norm(h)}
    for n in range(SHAPE["num_hidden_layers"]):
        p = f"layers.{n}."
        sd |= {
            p + "input_layernorm.weight": norm(h),
            p + "post_attention_layernorm.weight": norm(h),
            p + "self_attn.q_proj.weight": rnd(q_out, h),
            p + "self_attn.k_proj.weight": rnd(kv_out, h),
            p + "self_attn.v_proj.weight": rnd(kv_out, h),
            p + "self_attn.o_proj.weight": rnd(h, q_out),
            p + "self_attn.q_norm.weight": norm(hd),
            p + "self_attn.k_norm.weight": norm(hd),
            p + "mlp.gate_proj.weight": rnd(i, h),
            p + "mlp.up_proj.weight": rnd(i, h),
            p + "mlp.down_proj.weight": rnd(h, i),
        }
    return {k: v.to(torch.bfloat16).contiguous() for k, v in sd.items()}


def _adapter(base: dict, task_index: int):
    """PEFT-style LoRA tensors for every attention and MLP projection of every layer."""
    import torch

    g = torch.Generator().manual_seed(SEED + 1 + task_index)
    tensors = {}
    for key, w in base.items():
        module = key.split(".")[-2]
        if module not in LORA_TARGETS:
            continue
        prefix = "base_model.model." + key[: -len(".weight")]
        out_f, in_f = w.shape
        tensors[prefix + ".lora_A.weight"] = (
            (torch.randn(LORA_RANK, in_f, generator=g) * 0.05).to(torch.bfloat16).contiguous()
        )
        tensors[prefix + ".lora_B.weight"] = (
            (torch.randn(out_f, LORA_RANK, generator=g) * 0.05).to(torch.bfloat16).contiguous()
        )
    return tensors


def merge_lora(base: dict, adapter: dict, lora_alpha: int, r: int) -> dict:
    """W + (B @ A) * lora_alpha / r, in float32, stored back in the base dtype."""
    merged = dict(base)
    scale = lora_alpha / r
    for key, a in adapter.items():
        if not key.endswith(".lora_A.weight"):
            continue
        target = key[len("base_model.model.") : -len(".lora_A.weight")] + ".weight"
        b = adapter[key.replace(".lora_A.", ".lora_B.")]
        w = base[target]
        merged[target] = (w.float() + (b.float() @ a.float()) * scale).to(w.dtype).contiguous()
    return merged


def _common_files(repo: Path, vocab_size: int, eos_id: int) -> None:
    (repo / "config.json").write_text(json.dumps(_config(vocab_size, eos_id), indent=2) + "\n")
    (repo / "configuration_jina_embeddings_v5.py").write_text(CONFIGURATION_PY)
    (repo / "modeling_jina_embeddings_v5.py").write_text(MODELING_PY)
    (repo / "custom_st.py").write_text(CUSTOM_ST_PY)
    (repo / "modules.json").write_text(
        json.dumps([{"idx": 0, "name": "0", "path": "", "type": "custom_st.Transformer"}], indent=2) + "\n"
    )
    (repo / "config_sentence_transformers.json").write_text(
        json.dumps(
            {"similarity_fn_name": "cosine", "prompts": {"query": "Query: ", "document": "Document: "}}, indent=2
        )
        + "\n"
    )
    (repo / "generation_config.json").write_text(json.dumps({"bos_token_id": eos_id, "eos_token_id": eos_id}) + "\n")
    # A README and a non-safetensors export that the weights Job's patterns must NOT fetch.
    (repo / "README.md").write_text(
        "---\nlicense: cc-by-nc-4.0\n---\nTiny random-weight test fixture of jina-embeddings-v5-text-small.\n"
    )
    (repo / "onnx").mkdir(exist_ok=True)
    (repo / "onnx" / "model.onnx").write_bytes(b"not fetched by the weights Job\n")


def build_sources(src: Path) -> dict[str, Path]:
    """repository id -> source tree."""
    from safetensors.torch import save_file

    trees = {BASE_REPOSITORY: src / "base", **{f"{BASE_REPOSITORY}-{t}": src / t for t in TASKS}}
    tok_dir = src / "_tokenizer"
    tok_dir.mkdir(parents=True, exist_ok=True)
    vocab, eos_id = _tokenizer(tok_dir)
    vocab_size = (vocab + 63) // 64 * 64
    base = _weights(vocab_size)
    for repo in trees.values():
        repo.mkdir(parents=True, exist_ok=True)
        for f in tok_dir.iterdir():
            shutil.copy(f, repo / f.name)
        _common_files(repo, vocab_size, eos_id)
    save_file(base, str(trees[BASE_REPOSITORY] / "model.safetensors"), metadata={"format": "pt"})
    for n, task in enumerate(TASKS):
        adapter = _adapter(base, n)
        ad = trees[BASE_REPOSITORY] / "adapters" / task
        ad.mkdir(parents=True, exist_ok=True)
        (ad / "adapter_config.json").write_text(
            json.dumps(
                {
                    "peft_type": "LORA",
                    "r": LORA_RANK,
                    "lora_alpha": LORA_ALPHA,
                    "lora_dropout": 0.0,
                    "bias": "none",
                    "target_modules": list(LORA_TARGETS),
                    "task_type": "FEATURE_EXTRACTION",
                },
                indent=2,
            )
            + "\n"
        )
        save_file(adapter, str(ad / "adapter_model.safetensors"), metadata={"format": "pt"})
        save_file(
            merge_lora(base, adapter, LORA_ALPHA, LORA_RANK),
            str(trees[f"{BASE_REPOSITORY}-{task}"] / "model.safetensors"),
            metadata={"format": "pt"},
        )
    shutil.rmtree(tok_dir)
    return trees


def fill_cache(hf_home: Path, repo_id: str, revision: str, tree: Path, patterns: list[str]) -> list[str]:
    """Lay `tree` out as the HF cache entry of repo_id@revision, keeping the files `patterns` select."""
    from huggingface_hub.utils import filter_repo_objects

    files = sorted(str(p.relative_to(tree)) for p in tree.rglob("*") if p.is_file())
    kept = list(filter_repo_objects(files, allow_patterns=patterns))
    root = hf_home / "hub" / ("models--" + repo_id.replace("/", "--"))
    snap = root / "snapshots" / revision
    (root / "blobs").mkdir(parents=True, exist_ok=True)
    (root / "refs").mkdir(parents=True, exist_ok=True)
    for rel in kept:
        data = (tree / rel).read_bytes()
        blob = root / "blobs" / hashlib.sha256(data).hexdigest()
        if not blob.exists():
            blob.write_bytes(data)
        link = snap / rel
        link.parent.mkdir(parents=True, exist_ok=True)
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(os.path.relpath(blob, link.parent))
    (root / "refs" / "main").write_text(revision)
    return kept


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build")
    b.add_argument("--hf-home", required=True, type=Path)
    b.add_argument("--sources", required=True, type=Path, help="where the full source trees go")
    b.add_argument("--patterns", required=True, help="JSON list: the weights Job's allow-patterns")
    b.add_argument("--repos", required=True, help="JSON list of [repository, revision] to lay out in the cache")
    args = ap.parse_args(argv)
    trees = build_sources(args.sources)
    manifest = {}
    for repo_id, revision in json.loads(args.repos):
        manifest[f"{repo_id}@{revision}"] = fill_cache(
            args.hf_home, repo_id, revision, trees[repo_id], json.loads(args.patterns)
        )
    json.dump(manifest, sys.stdout, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
