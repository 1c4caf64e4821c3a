"""oasis: a self-hosted server for the OpenAI REST API (v1) on open-weight models."""

__version__ = "0.1.0"
