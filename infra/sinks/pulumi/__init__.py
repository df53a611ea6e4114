"""Pulumi: the program, its components and the engine runner (Automation API)."""
