"""``python -m ranksrgan.metrics``: runs the ``ranksrgan-score`` command (:mod:`ranksrgan.cli.score`).

The command is looked up by name at run time, so the metrics package itself imports nothing from
the command-line layer above it.
"""

import runpy

__all__: list[str] = []

if __name__ == "__main__":
    runpy.run_module("ranksrgan.cli.score", run_name="__main__")
