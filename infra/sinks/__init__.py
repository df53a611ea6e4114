"""Sinks: how the plan reaches a cluster. helm rendering, the GitOps export, the runbook pages, the Pulumi program."""
