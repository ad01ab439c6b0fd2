"""The HTTP edge: Shipyard's API and the router that carries agent traffic, on one port."""
