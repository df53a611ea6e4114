"""`python -m infra smoke`: is an embedding server answering correctly? For people and pagers.

    python -m infra smoke --env prod --variant retrieval [--url http://127.0.0.1:18000]
    python -m infra smoke --url http://host:8000 --model NAME --expect-dim 384 --no-dimensions

With --env/--variant the expectations come from the plan: the served model name, 1024-dim vectors, a
Matryoshka `dimensions` request (256), the variant's prompt prefixes ("Query: " for retrieval queries,
"Document: " otherwise; vLLM adds none itself), and the multilingual check. The URL defaults to the
release's in-cluster Service; from a laptop, port-forward and pass --url. With --url alone every
expectation is a flag, so the same checks run against any OpenAI-compatible embedding server.

Checks, in order: /health answers 200; /v1/models lists the model; /v1/embeddings returns one finite
vector per input, of the expected size and unit L2 norm; `dimensions` truncates (and re-normalises);
the query prefix reaches the model (a prefixed query embeds differently) and a prefixed query is closer
to its matching document than to an unrelated one; the same sentence in five languages is closer to
itself than to an unrelated sentence (the model is multilingual); the vectors of fixed texts match the
variant's golden vectors (cosine >= their file's min_cosine). vLLM serves the raw base weights when a
task's adapter is missing and only logs a warning; the golden check is what catches a variant served
with the wrong adapter or none. Golden files live in infra/golden/<model>.json (docs/golden-vectors.md:
where they come from, how to refresh them); with --env the model's file is used when it exists.

Exit codes: 0 every check passed; 1 a check failed; 2 usage (bad flags, unknown stack or variant);
3 the server could not be reached (connection refused, DNS, timeout) or answered 401/403.
An API key, when the server wants one, is read from $VLLM_API_KEY (--api-key-env to change the name).
"""

from __future__ import annotations

import json
import math
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

NORM_TOLERANCE = 1e-3
SAME_VECTOR = 0.9999  # cosine above which two embeddings are taken as identical
DEFAULT_DIMENSIONS_CHECK = 256

# The same sentence in five languages, and one about something else.
MULTILINGUAL = {
    "en": "The cat sleeps on the warm windowsill.",
    "de": "Die Katze schläft auf der warmen Fensterbank.",
    "fr": "Le chat dort sur le rebord de fenêtre chaud.",
    "es": "El gato duerme en el alféizar cálido.",
    "zh": "猫在温暖的窗台上睡觉。",
}
UNRELATED = "Quarterly revenue rose by eight percent after the merger."
QUERY = "How do plants turn sunlight into energy?"
RELEVANT_DOCUMENT = "Photosynthesis lets plants convert light energy from the sun into chemical energy stored in sugar."
OTHER_DOCUMENT = "The stock exchange closed lower on Tuesday as bank shares fell."

# Golden vectors: per model, the vectors each task variant must return for GOLDEN_TEXTS (sent as they are, no
# prefix added), at the full size. Kept with the catalog; docs/golden-vectors.md says how they are made.
GOLDEN_DIR = Path(__file__).resolve().parent.parent / "golden"
GOLDEN_TEXTS = (
    "Document: " + RELEVANT_DOCUMENT,
    "Query: " + QUERY,
    MULTILINGUAL["de"],
    MULTILINGUAL["zh"],
)
GOLDEN_MIN_COSINE = 0.99  # bf16 GPU kernels vs the float32 reference stay far above; another task's adapter falls below


class Unreachable(RuntimeError):
    pass


class CheckFailed(AssertionError):
    pass


@dataclass(frozen=True)
class Expectations:
    url: str
    model: str | None  # None: take the first model /v1/models lists
    dim: int | None  # None: only require every vector to have the same size
    dimensions: int | None  # a Matryoshka size to request; None: skip that check
    query_prefix: str
    document_prefix: str
    multilingual: bool
    api_key: str | None = field(default=None, repr=False)  # never in a repr, a traceback or a log
    timeout: float = 30.0
    retrieval: bool = True  # the query/document ranking check (off for a model without semantics)
    golden: Path | None = None  # golden-vector file; None: no golden check (SKIP, with golden_note)
    golden_task: str | None = None  # the variant's task, whose golden vectors the server must return
    golden_note: str = ""


@dataclass
class Result:
    check: str
    status: str  # PASS, FAIL, SKIP
    detail: str


@dataclass
class Report:
    url: str
    model: str | None
    results: list[Result] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(r.status != "FAIL" for r in self.results)


# ---------------------------------------------------------------------------------------------
# Vector maths (pure)
# ---------------------------------------------------------------------------------------------


def norm(v: list[float]) -> float:
    return math.sqrt(sum(x * x for x in v))


def cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=False)) / (norm(a) * norm(b))


def check_vectors(vectors: list[list[float]], count: int, dim: int | None) -> str:
    if len(vectors) != count:
        raise CheckFailed(f"{len(vectors)} vectors for {count} inputs")
    sizes = {len(v) for v in vectors}
    if len(sizes) != 1:
        raise CheckFailed(f"vectors of different sizes: {sorted(sizes)}")
    size = sizes.pop()
    if dim is not None and size != dim:
        raise CheckFailed(f"vectors have {size} dimensions, expected {dim}")
    if not all(isinstance(x, (int, float)) and math.isfinite(x) for v in vectors for x in v):
        raise CheckFailed("a vector holds a non-finite or non-numeric value")
    return f"{count} vectors of {size} dimensions"


def check_unit_norm(vectors: list[list[float]]) -> str:
    norms = [norm(v) for v in vectors]
    worst = max(abs(n - 1) for n in norms)
    if worst > NORM_TOLERANCE:
        raise CheckFailed(
            f"L2 norms {', '.join(f'{n:.4f}' for n in norms)} are not 1 (±{NORM_TOLERANCE}): is --pooler-config use_activation set?"
        )
    return f"L2 norm 1 ± {worst:.1e}"


def check_multilingual(translations: dict[str, list[float]], unrelated: list[float]) -> str:
    """Every pair of translations is closer than any translation is to the unrelated sentence."""
    langs = sorted(translations)
    same = min(cosine(translations[a], translations[b]) for i, a in enumerate(langs) for b in langs[i + 1 :])
    other = max(cosine(translations[a], unrelated) for a in langs)
    if same <= other:
        pair = min(
            ((a, b) for i, a in enumerate(langs) for b in langs[i + 1 :]),
            key=lambda p: cosine(translations[p[0]], translations[p[1]]),
        )
        raise CheckFailed(
            f"least similar translations {pair[0]}/{pair[1]} at cosine {same:.3f}, "
            f"but a translation and the unrelated sentence at {other:.3f}"
        )
    return (
        f"translations {', '.join(langs)}: cosine >= {same:.3f} to each other, <= {other:.3f} to the unrelated sentence"
    )


def load_golden(path: Path, task: str) -> tuple[list[str], list[list[float]], dict[str, list[list[float]]], float]:
    """(texts, the task's vectors, every task's vectors, min_cosine) of a golden file; ValueError if unusable."""
    try:
        data = json.loads(path.read_text())
        texts, vectors, minimum = list(data["texts"]), dict(data["vectors"]), float(data["min_cosine"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"golden file {path}: {exc}") from exc
    if task not in vectors:
        raise ValueError(f"golden file {path} has no vectors for task {task!r} (has {', '.join(sorted(vectors))})")
    if any(len(v) != len(texts) for v in vectors.values()):
        raise ValueError(f"golden file {path}: one vector per text expected")
    return texts, vectors[task], vectors, minimum


def check_golden(served: list[list[float]], task: str, everything: dict[str, list[list[float]]], minimum: float) -> str:
    """Every served vector is within `minimum` cosine of the task's golden vector; on failure, say which task's
    golden vectors the server's answers resemble most (a wrong adapter), if any."""
    expected = everything[task]
    worst = min(cosine(a, b) for a, b in zip(served, expected, strict=True))
    if worst < minimum:
        closest = {t: min(cosine(a, b) for a, b in zip(served, v, strict=True)) for t, v in everything.items()}
        best = max(closest, key=lambda t: closest[t])
        hint = (
            f"; they match task {best!r} (cosine >= {closest[best]:.4f}): wrong adapter?"
            if best != task and closest[best] >= minimum
            else "; they match no task's golden vectors: no adapter (raw base weights), or other weights?"
        )
        raise CheckFailed(
            f"vectors differ from the golden vectors of task {task!r} (min cosine {worst:.4f} < {minimum}){hint}"
        )
    return f"{len(served)} texts match the golden vectors of task {task!r} (min cosine {worst:.5f} >= {minimum})"


def check_retrieval(query: list[float], relevant: list[float], other: list[float]) -> str:
    hit, miss = cosine(query, relevant), cosine(query, other)
    if hit <= miss:
        raise CheckFailed(
            f"the query is closer to the unrelated document ({miss:.3f}) than to the matching one ({hit:.3f})"
        )
    return f"matching document {hit:.3f} > unrelated {miss:.3f}"


# ---------------------------------------------------------------------------------------------
# HTTP
# ---------------------------------------------------------------------------------------------


class Client:
    def __init__(self, exp: Expectations):
        self.exp = exp

    def _request(self, method: str, path: str, body: dict | None = None) -> tuple[int, Any]:
        headers = {"Accept": "application/json"}
        data = None
        if body is not None:
            data, headers["Content-Type"] = json.dumps(body).encode(), "application/json"
        if self.exp.api_key:
            headers["Authorization"] = f"Bearer {self.exp.api_key}"
        request = urllib.request.Request(self.exp.url.rstrip("/") + path, data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=self.exp.timeout) as response:
                raw = response.read()
                status = response.status
        except urllib.error.HTTPError as exc:
            if exc.code in (401, 403):
                raise Unreachable(
                    f"{method} {path}: {exc.code} {exc.reason}: the server wants an API key ($VLLM_API_KEY, or --api-key-env)"
                ) from exc
            raw, status = exc.read(), exc.code
        except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
            raise Unreachable(f"{method} {self.exp.url.rstrip('/')}{path}: {getattr(exc, 'reason', exc)}") from exc
        try:
            return status, json.loads(raw) if raw else None
        except ValueError:
            return status, raw.decode(errors="replace")[:200]

    def get(self, path: str) -> tuple[int, Any]:
        return self._request("GET", path)

    def embed(self, model: str, texts: list[str], **extra: Any) -> list[list[float]]:
        status, body = self._request(
            "POST", "/v1/embeddings", {"model": model, "input": texts, "encoding_format": "float", **extra}
        )
        if status != 200:
            raise CheckFailed(f"/v1/embeddings answered {status}: {body}")
        try:
            data = sorted(body["data"], key=lambda d: d["index"])
            return [d["embedding"] for d in data]
        except (KeyError, TypeError) as exc:
            raise CheckFailed(f"/v1/embeddings answered 200 without data[].embedding: {str(body)[:200]}") from exc


def run_checks(exp: Expectations) -> Report:
    """Run every check; raises Unreachable when the server cannot be reached at all."""
    client = Client(exp)
    report = Report(exp.url, exp.model)

    def check(name: str, fn) -> Any:
        try:
            detail = fn()
            report.results.append(Result(name, "PASS", detail if isinstance(detail, str) else ""))
            return True
        except CheckFailed as exc:
            report.results.append(Result(name, "FAIL", str(exc)))
            return False

    def health() -> str:
        status, body = client.get("/health")
        if status != 200:
            raise CheckFailed(f"/health answered {status} (503 means vLLM's engine is dead): {body}")
        return "200"

    check("health", health)

    def models() -> str:
        status, body = client.get("/v1/models")
        if status != 200:
            raise CheckFailed(f"/v1/models answered {status}: {body}")
        names = [m.get("id") for m in (body or {}).get("data", [])]
        if exp.model is None:
            if not names:
                raise CheckFailed("/v1/models lists no model")
            report.model = names[0]
        elif exp.model not in names:
            raise CheckFailed(f"/v1/models lists {names}, not {exp.model!r}")
        return f"serves {report.model}"

    if not check("models", models):
        return report  # nothing below can run without a model name
    model = report.model
    assert model is not None
    vectors: list[list[float]] = []

    def embeddings() -> str:
        vectors.extend(
            client.embed(model, [exp.document_prefix + RELEVANT_DOCUMENT, exp.document_prefix + OTHER_DOCUMENT])
        )
        return check_vectors(vectors, 2, exp.dim)

    if check("embeddings", embeddings):
        check("unit-norm", lambda: check_unit_norm(vectors))
    else:
        report.results.append(Result("unit-norm", "SKIP", "no vectors"))

    if exp.dimensions is None:
        report.results.append(Result("dimensions", "SKIP", "the model has no Matryoshka sizes (--no-dimensions)"))
    else:

        def dimensions() -> str:
            short = client.embed(model, [exp.document_prefix + RELEVANT_DOCUMENT], dimensions=exp.dimensions)
            detail = check_vectors(short, 1, exp.dimensions)
            return f"{detail}; {check_unit_norm(short)}"

        check("dimensions", dimensions)

    def query_prefix() -> str:
        plain, prefixed = client.embed(model, [QUERY, exp.query_prefix + QUERY])
        similarity = cosine(plain, prefixed)
        if similarity >= SAME_VECTOR:
            raise CheckFailed(
                f"{exp.query_prefix!r} + query embeds like the bare query (cosine {similarity:.5f}): the prefix does not reach the model"
            )
        return f"{exp.query_prefix!r} changes the query's vector (cosine {similarity:.4f} to the bare query)"

    if exp.query_prefix:
        check("query-prefix", query_prefix)
    else:
        report.results.append(Result("query-prefix", "SKIP", "no query prefix for this model (--query-prefix)"))

    def retrieval() -> str:
        q, relevant, other = client.embed(
            model,
            [exp.query_prefix + QUERY, exp.document_prefix + RELEVANT_DOCUMENT, exp.document_prefix + OTHER_DOCUMENT],
        )
        return check_retrieval(q, relevant, other)

    if exp.retrieval:
        check("retrieval", retrieval)
    else:
        report.results.append(Result("retrieval", "SKIP", "the model has no semantics to rank by (--no-retrieval)"))

    if exp.multilingual:

        def multilingual() -> str:
            texts = [exp.document_prefix + t for t in MULTILINGUAL.values()] + [exp.document_prefix + UNRELATED]
            vecs = client.embed(model, texts)
            return check_multilingual(dict(zip(MULTILINGUAL, vecs[:-1], strict=False)), vecs[-1])

        check("multilingual", multilingual)
    else:
        report.results.append(Result("multilingual", "SKIP", "the model is not multilingual (--no-multilingual)"))

    if exp.golden is None or exp.golden_task is None:
        report.results.append(
            Result("golden", "SKIP", exp.golden_note or "no golden vectors given (--golden, with --variant)")
        )
    else:
        golden_file, task = exp.golden, exp.golden_task

        def golden() -> str:
            try:
                texts, _, everything, minimum = load_golden(golden_file, task)
            except ValueError as exc:
                raise CheckFailed(str(exc)) from exc
            return check_golden(client.embed(model, texts), task, everything, minimum)

        check("golden", golden)
    return report


# ---------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------


def render_text(report: Report) -> str:
    lines = [f"smoke test of {report.url} (model {report.model or '?'})"]
    lines += [f"  {r.status:<4} {r.check:<13} {r.detail}" for r in report.results]
    lines.append("result: " + ("PASS" if report.passed else "FAIL"))
    return "\n".join(lines)
