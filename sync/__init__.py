"""Store-and-forward MQTT sync: durable outbox, signed commands, the sync client and the reference cloud.

This package never imports ``agent``: the agent composes it.
"""
