"""Checks: gates over what the sinks render (policy rules, promtool cases). Pure functions over manifests."""
