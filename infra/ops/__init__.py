"""Day-2 operations over a running stack: `python -m infra status` and `python -m infra smoke`."""
