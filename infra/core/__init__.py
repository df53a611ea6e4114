"""Core: what is deployed, decided in pure Python.

No pulumi import, no subprocess, no file I/O at import (measured calibration and stack files are read at call time).
"""
