"""``python -m ranksrgan.metrics``: the ``ranksrgan-score`` command."""

from ranksrgan.cli.score import main

if __name__ == "__main__":
    raise SystemExit(main())
