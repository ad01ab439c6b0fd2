"""The web dashboard at `/ui/`: pages rendered on the server from the controller's state.

Server-rendered HTML needs nothing built at install time and works offline; the one
script is a few inline lines that refresh a page when the controller's state changes.
See docs/dashboard.md.
"""
