"""The local target: agents as supervised processes on this machine, served on loopback.

It exists so Shipyard works with nothing but Python and git installed: the quickstart,
the examples and most integration tests deploy, preview and roll out agents here, without
a cluster. `processes` holds the supervisor; `launcher` and `logbuffer` are its parts.
"""
