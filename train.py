"""Train Rankers and SR GANs: ``python train.py ranker=blur gan=rankrbri`` (see README)."""

from ranksrgan.cli.train import main

if __name__ == "__main__":
    main()
