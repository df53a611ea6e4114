"""The model catalog: what jina-embeddings-v5-text-small is and how each task variant is served.

Facts come from ../shared/research/vllm-jina-facts.md (sections named inline). Everything here is
data; no function in this module talks to a cluster or to Pulumi.
"""

from __future__ import annotations

from dataclasses import dataclass

BASE_REPOSITORY = "jinaai/jina-embeddings-v5-text-small"

# Serving modes. "merged": one pre-merged repository per task, the recipe's default.
# "base": the base repository plus `--hf-overrides {"jina_task": ...}`; vLLM merges the task's LoRA
# adapter at start-up (vllm/model_executor/models/jina.py, _load_adapter).
SERVING_MODES = ("merged", "base")


@dataclass(frozen=True)
class ModelShape:
    """The Qwen3-0.6B backbone shape: what GPU memory and compute depend on (facts §2)."""

    hidden_size: int = 1024
    num_layers: int = 28
    num_attention_heads: int = 16
    num_kv_heads: int = 8
    head_dim: int = 128
    intermediate_size: int = 3072
    vocab_size: int = 151936
    max_position_embeddings: int = 32768
    embedding_dimensions: int = 1024
    # Backbone parameters without adapters: 596.05M (facts §2, "Safetensors size"); the card's 677M
    # counts the four LoRA adapters as well.
    backbone_parameters: int = 596_049_920
    dtype_bytes: int = 2  # bfloat16

    @property
    def kv_bytes_per_token(self) -> int:
        """K and V for every layer: 2 x 28 layers x 8 KV heads x 128 dims x 2 bytes = 114,688 B."""
        return 2 * self.num_layers * self.num_kv_heads * self.head_dim * self.dtype_bytes


SHAPE = ModelShape()

# The card's Matryoshka list (facts §1.5). vLLM only accepts `dimensions` when the HF config declares
# them, which Jina's config may not, so the bundle passes them through --hf-overrides.
MATRYOSHKA_DIMENSIONS = (32, 64, 128, 256, 512, 768, 1024)

# Download sizes the startup budget is computed from (facts §2): a pre-merged repo holds the merged
# bf16 safetensors (1,192,133,208 B) plus tokenizer and config files (~12 MB); the base repo adds
# four r=32 adapters of 20.19M parameters each in bf16.
MERGED_DOWNLOAD_BYTES = 1_192_133_208 + 12_000_000
ADAPTER_BYTES = 20_190_000 * 2
BASE_DOWNLOAD_BYTES = MERGED_DOWNLOAD_BYTES + 4 * ADAPTER_BYTES


@dataclass(frozen=True)
class Variant:
    """One task variant: the unit the bundle deploys as its own Deployment, Service and HPA."""

    task: str  # the `jina_task` value vLLM understands
    merged_repository: str
    # Pinned Hugging Face commit of the pre-merged repository, or None where no pinned commit is
    # known: a stack that serves this variant pre-merged must then pin one itself. A moving branch
    # such as "main" is never used: a new upload would silently change the vectors an index holds.
    merged_revision: str | None
    query_prefix: str  # what clients prepend to queries; vLLM adds no prompt itself (facts §1.4)
    document_prefix: str


# Revisions are the commits public projects pin (third-party references found with the search tool;
# the README's "Model" section lists them). None were found for -text-matching and -clustering.
VARIANTS: dict[str, Variant] = {
    "retrieval": Variant(
        task="retrieval",
        merged_repository=f"{BASE_REPOSITORY}-retrieval",
        merged_revision="6856e76bb72982e58de0620458a4e8b3614da340",
        query_prefix="Query: ",
        document_prefix="Document: ",
    ),
    "text-matching": Variant(
        task="text-matching",
        merged_repository=f"{BASE_REPOSITORY}-text-matching",
        merged_revision=None,
        query_prefix="Document: ",
        document_prefix="Document: ",
    ),
    "classification": Variant(
        task="classification",
        merged_repository=f"{BASE_REPOSITORY}-classification",
        merged_revision="4447914a9b5b2fb00db3ce0884602b47a08f9458",
        query_prefix="Document: ",
        document_prefix="Document: ",
    ),
    "clustering": Variant(
        task="clustering",
        merged_repository=f"{BASE_REPOSITORY}-clustering",
        merged_revision=None,
        query_prefix="Document: ",
        document_prefix="Document: ",
    ),
}
BASE_REVISION = "dd76d535f5447ca3897a9c893fb1e612ead98192"

VARIANT_NAMES = tuple(VARIANTS)


@dataclass(frozen=True)
class ServedModel:
    """What vLLM loads for one variant in one serving mode."""

    repository: str
    revision: str
    jina_task: str | None  # set only in base mode
    download_bytes: int


def served_model(variant: Variant, serving_mode: str, revision: str | None = None) -> ServedModel:
    """`revision` overrides the catalog's pin (a stack may pin a newer commit)."""
    if serving_mode == "merged":
        pinned = revision or variant.merged_revision
        if not pinned:
            raise ValueError(f"no pinned revision is known for {variant.merged_repository}; pin one")
        return ServedModel(variant.merged_repository, pinned, None, MERGED_DOWNLOAD_BYTES)
    if serving_mode == "base":
        return ServedModel(BASE_REPOSITORY, revision or BASE_REVISION, variant.task, BASE_DOWNLOAD_BYTES)
    raise ValueError(f"unknown serving mode {serving_mode!r}; allowed: {', '.join(SERVING_MODES)}")


def default_served_model_name(variant: Variant) -> str:
    """The recipe's clients send `model` = the pre-merged repo id; keep that name in both modes so
    client code works unchanged whichever mode a stack serves."""
    return variant.merged_repository
