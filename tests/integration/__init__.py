"""Integration tests: real processes, real git, real HTTP on loopback."""
