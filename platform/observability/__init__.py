"""Observability: metrics, health endpoints and the Prometheus launcher (see docs/observability.md)."""
