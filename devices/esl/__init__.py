"""Electronic shelf labels: data model, rendering, gateway backends and simulators."""
