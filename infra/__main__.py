"""Entry point for both `python -m infra ...` (the command line) and the Pulumi program.

Pulumi.yaml names this directory as the program (`main: infra/`); the engine runs this file as a
script. `python -m infra` runs it as a module of the `infra` package. The spec tells them apart.
"""

import sys
from pathlib import Path

if __spec__ is not None and __spec__.name == "infra.__main__":
    from infra.cli import main

    sys.exit(main())
else:
    # Run by the Pulumi engine from inside infra/: make the repository root importable.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from infra.sinks.pulumi.program import run

    run()
