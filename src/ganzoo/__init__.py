"""ganzoo: a PyTorch Lightning + Hydra experiment framework for the GAN zoo."""

__version__ = "0.1.0"
