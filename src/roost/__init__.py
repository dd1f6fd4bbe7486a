"""Roost: SageMaker's built-in Image Classification algorithm, self-hosted on PyTorch."""

__version__ = "0.1.0"
