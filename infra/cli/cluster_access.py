"""The one way a command reads the live cluster: a client from --kubeconfig/--context, a read, and the exit code
a script can use when either fails (infra.core.errors)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any, TypeVar

from infra.core.errors import EXIT_UNREACHABLE, EXIT_USAGE
from infra.ops.status import ClusterUnreachable, api_client

T = TypeVar("T")


def read_cluster(args: argparse.Namespace, read: Callable[[Any], T]) -> tuple[T | None, int]:
    """(what `read(client)` returned, 0), or (None, the exit code) after printing why on stderr."""
    try:
        client = api_client(args.kubeconfig, args.context)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return None, EXIT_USAGE
    try:
        return read(client), 0
    except ClusterUnreachable as exc:
        print(f"error: cluster unreachable: {exc}", file=sys.stderr)
        return None, EXIT_UNREACHABLE
    finally:
        client.close()
