"""Security and policy gates over plain manifests (dicts): pure functions, no Pulumi, no cluster.

- `pss`: the Pod Security Standards (baseline + restricted) as the admission code defines them.
- `rules`: reliability and exposure rules the installed tools lack (kube-score, Polaris, kube-linter specs).
- `secrets`: the secret scan (token patterns, plain-text secret-like keys, Secrets with data).
- `targets`: what the gates run over: every stack's plan through the chart, every chart scenario, the export.
- `report`: `python -m infra policy`, the controls x objects table the README quotes.

The tests (tests/policy/) and the Pulumi policy pack (policy/) call the same functions.
"""

from infra.checks.policy.violations import Violation

__all__ = ["Violation"]
