"""Model registry and ONNX/LiteRT runners (people analytics, faces, products). Never imports ``agent``."""
