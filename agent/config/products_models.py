"""The ``[products]`` section: product recognition at self-service scales (embedder, gallery, screen endpoint)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, field_validator

from agent.config.base import DEVICE_NAME_PATTERN, Section, check_device_name

_Unit = Annotated[float, Field(ge=0.0, le=1.0)]


class ScaleCameraConfig(Section):
    """The camera above one scale's tray (a ``[[products.cameras]]`` table)."""

    scale: str = Field(title="Scale name", description="Name of the [[scales]] entry this camera looks at.",
                       json_schema_extra={"pattern": DEVICE_NAME_PATTERN})
    url: str = Field(title="Camera URL", min_length=1,
                     description="Where the tray image comes from: rtsp://..., http(s)://..., /dev/videoN, a "
                     "video file, or a still image file (read afresh on every weighing).")
    roi: tuple[_Unit, _Unit, _Unit, _Unit] | None = Field(
        default=None, title="Tray region",
        description="Crop of the tray in the image: [x1, y1, x2, y2] normalised 0-1; unset = the whole image.")

    _check_scale = field_validator("scale")(check_device_name)

    @field_validator("roi")
    @classmethod
    def _check_roi(cls, value: tuple[float, float, float, float] | None) -> tuple[float, float, float, float] | None:
        if value is not None:
            x1, y1, x2, y2 = value
            if not (0 <= x1 < x2 <= 1 and 0 <= y1 < y2 <= 1):
                raise ValueError(f"invalid roi {list(value)}: need 0 <= x1 < x2 <= 1 and 0 <= y1 < y2 <= 1")
        return value


class ProductsConfig(Section):
    """Recognition of what is on a scale: top-k PLU candidates for the scale's screen, learning from use."""

    enabled: bool = Field(default=True, title="Enabled",
                          description="Recognise products on scales that have a camera in [[products.cameras]].")
    embedder: str = Field(default="mobilenet-v1-embedding", min_length=1, title="Embedding model",
                          description="Registry name of the product feature extractor, or a path to an .onnx / "
                          ".tflite embedding model (ONNX: float RGB with ImageNet mean/std, at the input size "
                          "and layout the model declares).")
    head: str = Field(default="grocery_wccn_lda", title="Projection head",
                      description="Learned metric head applied to the embedding: a shipped head's name, a path to "
                      "an .npz from scripts/train_product_head.py, or '' for none. Changing it starts a new "
                      "embedding space (the gallery must be re-enrolled).")
    flip_tta: bool = Field(default=True, title="Mirror-image averaging",
                           description="Average the embeddings of the image and its mirror image (2x inference).")
    threads: int = Field(default=2, ge=1, le=16, title="Inference threads",
                         description="Threads of the embedding model.")
    top_k: int = Field(default=5, ge=1, le=20, title="Candidates shown",
                       description="How many PLU candidates are sent to the scale's screen.")
    cap_per_plu: int = Field(default=20, ge=1, le=500, title="Gallery cap per PLU",
                             description="Most embeddings kept per PLU; above it the most redundant one is "
                             "replaced, keeping the gallery diverse.")
    dedupe_cosine: float = Field(default=0.97, gt=0, le=1, title="Near-duplicate cosine",
                                 description="A new embedding this similar to one of the same PLU is not added.")
    weight_penalty: float = Field(default=0.2, ge=0, le=1, title="Weight plausibility penalty",
                                  description="Score taken off a candidate whose typical piece weight (price "
                                  "book typical_weight_kg) cannot add up to the weighed amount (full at a "
                                  "factor 2 away); 0 disables the check.")
    learn_on_confirm: bool = Field(default=True, title="Learn from confirmations",
                                   description="Add the embedding of a confirmed weighing to the gallery under "
                                   "the chosen PLU.")
    share_learned: bool = Field(default=True, title="Publish learned embeddings",
                                description="Queue events/product_learned (with the vector) for each learned "
                                "embedding, so the cloud can share it chain-wide.")
    http_host: str = Field(default="127.0.0.1", title="Screen endpoint address",
                           description="Address the candidates HTTP endpoint listens on (LAN address for a "
                           "separate screen device).")
    http_port: int = Field(default=0, ge=0, le=65535, title="Screen endpoint port",
                           description="Port of the candidates HTTP endpoint; 0 disables it.")
    aggregate_interval_s: float = Field(default=300, ge=1, le=86_400, title="Aggregate interval (s)",
                                        description="Weighing statistics are sent to the cloud every interval.")
    pending_ttl_s: float = Field(default=600, gt=0, le=86_400, title="Confirmation window (s)",
                                 description="A weighing not confirmed within this time can no longer be.")
    cameras: list[ScaleCameraConfig] = Field(default_factory=list, title="Scale cameras",
                                             description="One [[products.cameras]] table per scale with a camera.")

    def camera_for(self, scale: str) -> ScaleCameraConfig | None:
        """The camera configured for ``scale``, if any."""
        return next((c for c in self.cameras if c.scale == scale), None)
