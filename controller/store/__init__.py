"""Shipyard's memory: revisions, rollouts, events and what runs where, kept across restarts."""
