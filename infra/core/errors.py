"""Exit codes of every `python -m infra` command, in one place.

- 0 `EXIT_OK`: success.
- 1 `EXIT_FAILED`: the checked thing is wrong: a stale export or runbook page, a failed smoke check, a policy
  failure, a degraded stack, a failed engine operation.
- 2 `EXIT_USAGE`: bad input (unknown stack, invalid config, a missing tool): nothing was done.
- 3 `EXIT_UNREACHABLE`: the cluster or server to check could not be reached.
- 4 `EXIT_WARNINGS`: `preflight` only: no failure, but warnings or checks that could not run.
"""

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_UNREACHABLE, EXIT_WARNINGS = 0, 1, 2, 3, 4
# Names the commands use where they read better: a stale generated tree, a degraded stack.
EXIT_STALE = EXIT_DEGRADED = EXIT_FAILED
