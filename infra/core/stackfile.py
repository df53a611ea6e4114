"""Stack files: `Pulumi.<env>.yaml` read from disk (at call time) into the raw config `infra.core.config.load` parses.

The reader is as strict as Pulumi's own YAML parser, and every refusal is one line naming the file, line and
column (`StackFileError`): a syntax error, a key given twice at any depth (PyYAML would keep the last one and
silently drop the first), a document that is not a mapping, a `config:` that is not a mapping, a non-scalar key,
a recursive alias, or nesting deeper than any stack needs. Keys are read as the text written (YAML 1.2, as
Pulumi reads them: `on:` and `1:` are the strings "on" and "1").
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from infra.core.config import SecretValue, StackConfig, load, redact_text
from infra.core.paths import REPO_ROOT

MAX_DEPTH = 32  # the deepest real stack key is config > key > pool > tolerations > item > field
MAX_VALUES = 100_000  # values after alias expansion ("billion laughs" documents are refused)
_MERGE_TAG = "tag:yaml.org,2002:merge"


class StackFileError(ValueError):
    """A stack file that is not a valid Pulumi stack document: one line, `file:line:column: what`."""

    def __init__(self, path: Path | str, line: int | None, column: int | None, message: str):
        self.path, self.line, self.column = Path(path), line, column
        where = f"{self.path.name}:{line}:{column}" if line is not None else self.path.name
        super().__init__(redact_text(f"{where}: {message}"))


def _where(node: Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


class _StackLoader(yaml.SafeLoader):
    """SafeLoader whose mapping keys are their source text, refusing duplicate and non-scalar keys."""

    file: Path = Path("Pulumi.yaml")

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[str, Any]:  # type: ignore[override]
        seen: dict[str, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == _MERGE_TAG:
                continue
            if not isinstance(key_node, ScalarNode):
                raise StackFileError(self.file, *_where(key_node), "a mapping key must be a plain string")
            if key_node.value in seen:
                raise StackFileError(
                    self.file,
                    *_where(key_node),
                    f"duplicate key {key_node.value!r} (first on line {seen[key_node.value]}): Pulumi refuses "
                    "duplicate keys; keep one",
                )
            seen[key_node.value] = key_node.start_mark.line + 1
        self.flatten_mapping(node)  # merge keys (`<<: *anchor`): explicit keys override merged ones
        mapping: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, ScalarNode):
                raise StackFileError(self.file, *_where(key_node), "a mapping key must be a plain string")
            mapping[key_node.value] = self.construct_object(value_node, deep=deep)
        return mapping


def _check_shape(root: Node, file: Path) -> None:
    """Refuse recursive aliases, nesting deeper than MAX_DEPTH and alias expansion beyond MAX_VALUES (linear:
    each node is measured once, however many aliases point at it)."""
    sizes: dict[int, tuple[int, int]] = {}  # id(node) -> (values after expansion, height)
    active: set[int] = set()

    def measure(node: Node, depth: int) -> tuple[int, int]:
        if depth > MAX_DEPTH:
            raise StackFileError(file, *_where(node), f"nested deeper than {MAX_DEPTH} levels")
        if id(node) in sizes:
            size, height = sizes[id(node)]
            if depth + height > MAX_DEPTH:
                raise StackFileError(file, *_where(node), f"nested deeper than {MAX_DEPTH} levels")
            return sizes[id(node)]
        if id(node) in active:
            raise StackFileError(file, *_where(node), "an alias refers to a node that contains it (a cycle)")
        active.add(id(node))
        children: list[Node] = []
        if isinstance(node, SequenceNode):
            children = list(node.value)
        elif isinstance(node, MappingNode):
            children = [n for pair in node.value for n in pair]
        size, height = 1, 0
        for child in children:
            child_size, child_height = measure(child, depth + 1)
            size, height = size + child_size, max(height, child_height + 1)
            if size > MAX_VALUES:
                raise StackFileError(file, *_where(node), f"expands to more than {MAX_VALUES} values (aliases)")
        active.discard(id(node))
        sizes[id(node)] = (size, height)
        return size, height

    measure(root, 0)


def parse_stack_text(text: str, file: Path | str = "Pulumi.yaml") -> dict[str, Any]:
    """The `config:` mapping of a stack document's text, with secrets as SecretValue markers. Raises
    StackFileError naming the file, line and column of anything Pulumi would refuse."""
    file = Path(file)
    try:
        loader = _StackLoader(text)  # the reader checks the characters here: a control character raises at once
    except yaml.YAMLError as exc:
        raise StackFileError(file, None, None, str(exc).splitlines()[0]) from None
    loader.file = file
    try:
        node = loader.get_single_node()
        if node is None:
            return {}
        _check_shape(node, file)
        document = loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        # The problem only, never PyYAML's snippet of the source line: it may hold a secret.
        problem = exc.problem or exc.context or "invalid YAML"
        raise StackFileError(
            file, mark.line + 1 if mark else None, mark.column + 1 if mark else None, problem
        ) from None
    except yaml.YAMLError as exc:  # e.g. a reader error (a control character), which carries no mark
        raise StackFileError(file, None, None, str(exc).splitlines()[0]) from None
    finally:
        loader.dispose()
    if document is None:
        return {}
    if not isinstance(document, Mapping):
        raise StackFileError(
            file, *_where(node), f"a stack file is a mapping with a `config:` key, not a {_kind(document)}"
        )
    config = document.get("config")
    if config is None:
        return {}
    if not isinstance(config, Mapping):
        config_node = next(v for k, v in node.value if k.value == "config")
        raise StackFileError(
            file, *_where(config_node), f"`config:` must be a mapping of `project:key: value`, not a {_kind(config)}"
        )
    return _mark_secrets(config)


def _kind(value: Any) -> str:
    return {list: "list", str: "string", bool: "boolean", int: "number", float: "number"}.get(
        type(value), type(value).__name__
    )


def stack_file(env: str, root: Path = REPO_ROOT) -> Path:
    return root / f"Pulumi.{env}.yaml"


def stack_names(root: Path = REPO_ROOT) -> list[str]:
    return sorted(p.name[len("Pulumi.") : -len(".yaml")] for p in root.glob("Pulumi.*.yaml"))


def _mark_secrets(value: Any) -> Any:
    """Replace Pulumi's `{secure: <ciphertext>}` entries with SecretValue markers."""
    if isinstance(value, Mapping):
        if set(value) == {"secure"}:
            return SecretValue()
        return {k: _mark_secrets(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_mark_secrets(v) for v in value]
    return value


def read_stack_file(env: str, root: Path = REPO_ROOT) -> dict[str, Any]:
    path = stack_file(env, root)
    if not path.exists():
        raise FileNotFoundError(f"no stack file {path.name}; stacks: {', '.join(stack_names(root)) or '(none)'}")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise StackFileError(path, None, None, f"not UTF-8 text (byte {exc.start})") from None
    return parse_stack_text(text, path)


def load_stack(env: str, root: Path = REPO_ROOT) -> StackConfig:
    return load(read_stack_file(env, root), env)
