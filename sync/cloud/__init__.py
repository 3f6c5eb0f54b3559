"""The reference cloud receiver: what a chain's cloud must do to honour the sync contract.

It deduplicates by ``msg_id``, detects per-stream sequence gaps, stores what it receives, acknowledges with
``down/ack``, and on each store's birth re-sends the commands whose versions the store has not applied.
"""
