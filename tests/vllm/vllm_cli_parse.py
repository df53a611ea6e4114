"""Run by the vLLM CPU virtualenv's Python (not pytest's): parse rendered `vllm serve` argument lists with vLLM's own
CLI parser and EngineArgs, the path `vllm serve` takes (vllm/entrypoints/cli/serve.py), and print the engine fields.

stdin: {"<name>": [args after `vllm serve`], ...}; stdout: {"<name>": {field: value, ...}, ...}.
"""

import json
import sys

from vllm.engine.arg_utils import EngineArgs
from vllm.entrypoints.cli.serve import ServeSubcommand
from vllm.utils.argparse_utils import FlexibleArgumentParser

FIELDS = (
    "model",
    "revision",
    "tokenizer_revision",
    "runner",
    "trust_remote_code",
    "dtype",
    "max_model_len",
    "gpu_memory_utilization",
    "kv_cache_memory_bytes",
    "max_num_batched_tokens",
    "max_num_seqs",
)

root = FlexibleArgumentParser()
ServeSubcommand().subparser_init(root.add_subparsers(dest="subparser"))
out = {}
for name, args in json.load(sys.stdin).items():
    ns = root.parse_args(["serve", *args])
    ns.model = ns.model_tag  # what `vllm serve MODEL` does before building the engine
    engine = EngineArgs.from_cli_args(ns)
    out[name] = {k: getattr(engine, k) for k in FIELDS}
json.dump(out, sys.stdout, default=str)
