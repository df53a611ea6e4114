"""An independent reference for jina-embeddings-v5-text-small vectors: transformers + safetensors, no vLLM.
Runs in the vLLM virtualenv (it has torch and transformers); prints JSON.

    python tests/vllm/reference.py --snapshot DIR [--task TASK | --no-adapter] --dimensions 1024 < texts.json

It reads the checkpoint files of one snapshot directory (a Hugging Face cache snapshot or any local copy):
config.json, the tokenizer, model.safetensors and, with --task, adapters/<task>/ of the base repository.
It merges the LoRA itself (W += B @ A * lora_alpha / r, in float32), runs transformers' Qwen3Model in float32,
pools the last token, L2-normalises, then truncates to --dimensions and re-normalises (Matryoshka).

The same script computes the golden vectors of `python -m infra smoke` (infra/golden/): pointed at the real
model's snapshot (after the weights Job's download) it gives the real vectors; see docs/golden-vectors.md.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def load_state(snapshot: Path, task: str | None) -> dict:
    import torch
    from safetensors.torch import load_file

    state = {k.removeprefix("model."): v.float() for k, v in load_file(str(snapshot / "model.safetensors")).items()}
    if task is None:
        return state
    ad = snapshot / "adapters" / task
    cfg = json.loads((ad / "adapter_config.json").read_text())
    scale = cfg["lora_alpha"] / cfg["r"]
    lora = load_file(str(ad / "adapter_model.safetensors"))
    pairs = 0
    for key, a in lora.items():
        if ".lora_A." not in key:
            continue
        target = key.removeprefix("base_model.model.").removeprefix("model.").replace(".lora_A.weight", ".weight")
        b = lora[key.replace(".lora_A.", ".lora_B.")]
        state[target] = state[target] + (b.float() @ a.float()) * scale
        pairs += 1
    if pairs == 0:
        raise SystemExit(f"no LoRA pairs in {ad}")
    del torch
    return state


def embed(snapshot: Path, task: str | None, texts: list[str], dimensions: int) -> list[list[float]]:
    import torch
    from transformers import PreTrainedTokenizerFast, Qwen3Config, Qwen3Model

    raw = json.loads((snapshot / "config.json").read_text())
    keep = {
        k: v
        for k, v in raw.items()
        if k not in ("auto_map", "architectures", "model_type", "torch_dtype", "task_names")
    }
    config = Qwen3Config(**keep)
    model = Qwen3Model(config).float().eval()
    missing, unexpected = model.load_state_dict(load_state(snapshot, task), strict=False)
    if missing or unexpected:
        raise SystemExit(f"state dict mismatch: missing {missing}, unexpected {unexpected}")
    tok = PreTrainedTokenizerFast.from_pretrained(str(snapshot))  # tokenizer.json; no remote code
    out = []
    with torch.no_grad():
        for text in texts:  # one at a time: no padding, the last token is the last position
            ids = tok(text, return_tensors="pt")["input_ids"]
            hidden = model(input_ids=ids).last_hidden_state[0, -1]
            v = torch.nn.functional.normalize(hidden, dim=-1)[:dimensions]
            out.append(torch.nn.functional.normalize(v, dim=-1).tolist())
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--snapshot", required=True, type=Path)
    ap.add_argument("--task", help="merge adapters/<task> of the snapshot (base repository)")
    ap.add_argument("--dimensions", type=int, default=1024)
    ap.add_argument("--jobs", help="JSON list of {snapshot, task, dimensions}: many at once (texts from stdin)")
    args = ap.parse_args(argv)
    texts = json.load(sys.stdin)
    if args.jobs:
        results = [
            embed(Path(j["snapshot"]), j.get("task"), texts, j.get("dimensions", 1024)) for j in json.loads(args.jobs)
        ]
        json.dump(results, sys.stdout)
    else:
        json.dump(embed(args.snapshot, args.task, texts, args.dimensions), sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
