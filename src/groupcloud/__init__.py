"""groupcloud: the control plane of a financial group's common cloud."""

__all__ = ["__version__"]

__version__ = "0.2.0"
