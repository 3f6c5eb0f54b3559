"""Command kinds the agent applies; each module registers its handlers on a ``CommandProcessor``."""
