"""Scales as daemon components (``scale-<name>``): driver + stability events → outbox and listeners."""
