"""Face models: YuNet detection with 5 landmarks, 5-point alignment to the ArcFace template, ArcFace-style
embedders. Pure model code (no agent imports): images in, numpy arrays out; crops live in memory only."""

from models.faces.align import ARCFACE_TEMPLATE, align_face, similarity_transform
from models.faces.embedder import FaceEmbedder, build_face_embedder
from models.faces.yunet import Faces, YunetDetector, build_face_detector, decode_yunet

__all__ = ["ARCFACE_TEMPLATE", "FaceEmbedder", "Faces", "YunetDetector", "align_face", "build_face_detector",
           "build_face_embedder", "decode_yunet", "similarity_transform"]
