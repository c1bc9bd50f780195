"""Integration tests: real workers on a real database; the ``app`` fixture is in tests/conftest.py."""
