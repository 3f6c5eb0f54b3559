"""People-analytics vision pipeline: frame sources, motion gating, ROI filters and tracking."""
