"""jina-embeddings-v5-text-small on vLLM pooling servers: the bundle's pure core.

Modules that decide what is deployed (config, catalog, accelerators, sizing, values, platform,
plan) import nothing from Pulumi; `infra/__main__.py` and `infra/components/` wire the plan into
Pulumi resources, and `python -m infra ...` is the command line (infra/cli.py).
"""
