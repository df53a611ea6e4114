"""Full-size, random-weight checkpoints in the shape of jina-embeddings-v5-text-small, for benchmarking vLLM.

Nothing is downloaded. The weights are random bf16 tensors made on the GPU; memory and time depend only on the shape.

Two directories are written under OUT:

- ``OUT/base``: the base repository's layout. ``config.json`` declares ``architectures: ["JinaEmbeddingsV5Model"]``
  (vLLM's native class, vllm/model_executor/models/jina.py, vllm-project/vllm PR #39575), ``model.safetensors``
  holds the Qwen3-0.6B backbone, and ``adapters/<task>/adapter_config.json`` + ``adapter_model.safetensors`` hold one
  LoRA adapter per task (retrieval, text-matching, clustering, classification) at the published rank r=32 on all seven
  projections. vLLM merges the adapter chosen by ``--hf-overrides '{"jina_task": ...}'`` at load time.
- ``OUT/merged``: a pre-merged per-task repository's layout (``jinaai/jina-embeddings-v5-text-small-<task>``): the same
  backbone declared as ``Qwen3Model`` with a sentence-transformers last-token pooling config, and no adapters.

Both share a word-level tokenizer of 3,000 words ``w0`` … ``w2999`` with no added special tokens, so that an input of
N space-separated words is exactly N tokens. That lets the load generator hit exact lengths (``max_model_len - 1``
without touching ``max_model_len``, vllm-project/vllm#55427). Tokenising it costs less CPU than Qwen3's byte-level BPE.

Usage: python3 bench/make_checkpoint.py OUT [--device cuda] [--vocab-size 151936]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from typing import Any

# Qwen3-0.6B backbone (jinaai/jina-embeddings-v5-text-small config.json; see bench/README.md for the sources).
SHAPE: dict[str, Any] = dict(
    hidden_size=1024,
    intermediate_size=3072,
    num_hidden_layers=28,
    num_attention_heads=16,
    num_key_value_heads=8,
    head_dim=128,
    max_position_embeddings=32768,
    rope_theta=1000000.0,
    rms_norm_eps=1e-6,
    tie_word_embeddings=True,
)
TASKS = ("retrieval", "text-matching", "clustering", "classification")
LORA_RANK = 32
LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
MATRYOSHKA = [32, 64, 128, 256, 512, 768, 1024]
WORDS = 3000


def backbone_tensors(vocab: int, device: str):
    import torch

    h, i, L = SHAPE["hidden_size"], SHAPE["intermediate_size"], SHAPE["num_hidden_layers"]
    q = SHAPE["num_attention_heads"] * SHAPE["head_dim"]
    kv = SHAPE["num_key_value_heads"] * SHAPE["head_dim"]
    g = torch.Generator(device=device).manual_seed(0)

    def rnd(*shape):
        return (torch.randn(*shape, generator=g, device=device, dtype=torch.float32) * 0.02).to(torch.bfloat16).cpu()

    def ones(n):
        return torch.ones(n, dtype=torch.bfloat16)

    t = {"embed_tokens.weight": rnd(vocab, h), "norm.weight": ones(h)}
    for n in range(L):
        p = f"layers.{n}."
        t.update(
            {
                p + "self_attn.q_proj.weight": rnd(q, h),
                p + "self_attn.k_proj.weight": rnd(kv, h),
                p + "self_attn.v_proj.weight": rnd(kv, h),
                p + "self_attn.o_proj.weight": rnd(h, q),
                p + "self_attn.q_norm.weight": ones(SHAPE["head_dim"]),
                p + "self_attn.k_norm.weight": ones(SHAPE["head_dim"]),
                p + "mlp.gate_proj.weight": rnd(i, h),
                p + "mlp.up_proj.weight": rnd(i, h),
                p + "mlp.down_proj.weight": rnd(h, i),
                p + "input_layernorm.weight": ones(h),
                p + "post_attention_layernorm.weight": ones(h),
            }
        )
    return t


def adapter_tensors(device: str, seed: int):
    import torch

    h, i = SHAPE["hidden_size"], SHAPE["intermediate_size"]
    q = SHAPE["num_attention_heads"] * SHAPE["head_dim"]
    kv = SHAPE["num_key_value_heads"] * SHAPE["head_dim"]
    dims = {
        "self_attn.q_proj": (q, h),
        "self_attn.k_proj": (kv, h),
        "self_attn.v_proj": (kv, h),
        "self_attn.o_proj": (h, q),
        "mlp.gate_proj": (i, h),
        "mlp.up_proj": (i, h),
        "mlp.down_proj": (h, i),
    }
    g = torch.Generator(device=device).manual_seed(seed)
    w = {}
    for n in range(SHAPE["num_hidden_layers"]):
        for name, (o, k) in dims.items():
            pre = f"base_model.model.layers.{n}.{name}"
            w[pre + ".lora_A.weight"] = (
                (torch.randn(LORA_RANK, k, generator=g, device=device) * 0.01).to(torch.bfloat16).cpu()
            )
            w[pre + ".lora_B.weight"] = (
                (torch.randn(o, LORA_RANK, generator=g, device=device) * 0.01).to(torch.bfloat16).cpu()
            )
    return w


def write_tokenizer(out: str) -> None:
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"<|endoftext|>": 0}
    vocab.update({f"w{n}": n + 1 for n in range(WORDS)})
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<|endoftext|>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="<|endoftext|>", pad_token="<|endoftext|>", unk_token="<|endoftext|>"
    )
    fast.model_max_length = SHAPE["max_position_embeddings"]
    fast.save_pretrained(out)


def config(vocab: int, architecture: str) -> dict:
    c: dict[str, Any] = dict(SHAPE)
    c.update(
        architectures=[architecture],
        model_type="qwen3",
        vocab_size=vocab,
        torch_dtype="bfloat16",
        hidden_act="silu",
        attention_bias=False,
        attention_dropout=0.0,
        use_cache=True,
        sliding_window=None,
        use_sliding_window=False,
        max_window_layers=SHAPE["num_hidden_layers"],
        initializer_range=0.02,
        bos_token_id=0,
        eos_token_id=0,
        pad_token_id=0,
        matryoshka_dimensions=MATRYOSHKA,
    )
    return c


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--vocab-size", type=int, default=151936)
    a = ap.parse_args()
    from safetensors.torch import save_file

    t0 = time.time()
    base, merged = os.path.join(a.out, "base"), os.path.join(a.out, "merged")
    for d in (base, merged):
        os.makedirs(d, exist_ok=True)
        write_tokenizer(d)
    weights = backbone_tensors(a.vocab_size, a.device)
    params = sum(v.numel() for v in weights.values())
    save_file(weights, os.path.join(base, "model.safetensors"), metadata={"format": "pt"})
    del weights
    link = os.path.join(merged, "model.safetensors")
    if not os.path.exists(link):
        os.link(os.path.join(base, "model.safetensors"), link)
    json.dump(config(a.vocab_size, "JinaEmbeddingsV5Model"), open(os.path.join(base, "config.json"), "w"), indent=1)
    json.dump(config(a.vocab_size, "Qwen3Model"), open(os.path.join(merged, "config.json"), "w"), indent=1)
    # Sentence-transformers pooling config of the pre-merged repos: last-token pooling, then normalisation.
    json.dump(
        [
            {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
            {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
            {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
        ],
        open(os.path.join(merged, "modules.json"), "w"),
        indent=1,
    )
    os.makedirs(os.path.join(merged, "1_Pooling"), exist_ok=True)
    os.makedirs(os.path.join(merged, "2_Normalize"), exist_ok=True)
    json.dump(
        {
            "word_embedding_dimension": SHAPE["hidden_size"],
            "pooling_mode_lasttoken": True,
            "pooling_mode_mean_tokens": False,
            "pooling_mode_cls_token": False,
            "include_prompt": True,
        },
        open(os.path.join(merged, "1_Pooling", "config.json"), "w"),
        indent=1,
    )
    adapter_params = 0
    for n, task in enumerate(TASKS):
        d = os.path.join(base, "adapters", task)
        os.makedirs(d, exist_ok=True)
        json.dump(
            {
                "r": LORA_RANK,
                "lora_alpha": LORA_RANK,
                "lora_dropout": 0.0,
                "bias": "none",
                "target_modules": list(LORA_TARGETS),
                "peft_type": "LORA",
                "task_type": "FEATURE_EXTRACTION",
            },
            open(os.path.join(d, "adapter_config.json"), "w"),
            indent=1,
        )
        w = adapter_tensors(a.device, seed=n + 1)
        adapter_params += sum(v.numel() for v in w.values())
        save_file(w, os.path.join(d, "adapter_model.safetensors"), metadata={"format": "pt"})
    size = os.path.getsize(os.path.join(base, "model.safetensors"))
    print(
        json.dumps(
            {
                "backbone_params": params,
                "adapter_params_4_tasks": adapter_params,
                "model_safetensors_bytes": size,
                "seconds": round(time.time() - t0, 1),
                "out": a.out,
            },
            sort_keys=True,
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
