"""Fakes of external services, each a real server on a loopback port (never a monkeypatch)."""
