"""Shelf labels, gateway side: reconciliation, LED commands, picking, cold chain."""
