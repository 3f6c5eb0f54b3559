"""Face identity: face pipeline (``pipeline``, ``track_faces``), galleries, visits, watchlists, alerts, privacy.

Kept import-light on purpose (the store's migrations import ``agent.identity.schema``): faiss, onnxruntime and
cv2 load only in the modules that need them.
"""
