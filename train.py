"""Train Rankers and SR GANs: ``python train.py ranker=blur gan=rankrbri`` (see README)."""

import os

# Idle OpenMP threads sleep instead of spinning (much faster beside other busy processes); must be
# set before torch is imported. The user's own value wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from ranksrgan.cli.train import main  # noqa: E402

if __name__ == "__main__":
    main()
