"""Fabriek: the open-source control plane of a sovereign AI factory."""

__version__ = "0.1.0"
