"""The known models: upstream raw URL at a pinned commit, sha256, size, licence and how to use each file.

Every row was checked byte for byte against the public commit it names (see ``docs/models.md``). The URLs are
pinned to a commit, so the bytes behind them cannot change; the sha256 is still verified on every install.
"""

from __future__ import annotations

from models.spec import ModelSpec

_KAZ_MOT = "Kazuhito00/MOT-Tracking-by-Detection-Pipeline"
_KAZ_MOT_C = "e50a76b8b430b778276e7fd04fd4cafd5d45eab2"
_KAZ_LIGHT = "Kazuhito00/Person-Detection-using-RaspberryPi-CPU"
_KAZ_LIGHT_C = "fab8c0d1129b391e8aaf0a4e557dd5bb812e749f"
_YUNET = "ShiqiYu/libfacedetection.train"
_YUNET_C = "0047ac24afb1a50a0c6105001c89d1b5b805dbf1"
_RFB = "Linzaer/Ultra-Light-Fast-Generic-Face-Detector-1MB"
_RFB_C = "dffdddda9794a50607cba8f318507a28c1c27cab"
_MFN = "foamliu/MobileFaceNet"
_MFN_C = "a6cc9032a659b615f477833e1a70b5e7931bcccc"
_CORAL = "google-coral/test_data"
_CORAL_C = "104342d2d3480b3e66203073dac24f4e2dbb4c41"

MS_CELEB_CAVEAT = (
    "Weights trained on MS-Celeb-1M, whose terms were research-only and which Microsoft withdrew in 2019; the "
    "repository's Apache-2.0 licence covers the code, not necessarily the weights. Commercial use of these "
    "weights is an unsettled legal question: treat this as a development/test model and keep the face "
    "embedding model swappable (any ArcFace-style 112x112 ONNX model can replace it)."
)

_YOLOX_PRE = ("BGR 0-255 float32, no mean/std; letterbox r=min(S/h, S/w), resize, paste at the top-left of an "
              "SxS canvas filled with 114; HWC->CHW")
_REID_PRE = "person crop resized to 128x256 (w x h), BGR 0-255 float32, NHWC [1,256,128,3]; no normalisation"
_CORAL_PRE = "RGB uint8 0-255, NHWC [1,224,224,3] (quantised input: scale 1/128, zero point 128); resize/centre-crop"


def _raw(repo: str, commit: str, path: str) -> str:
    return f"https://github.com/{repo}/raw/{commit}/{path}"


def _spec(name: str, task: str, relpath: str, repo: str, commit: str, path: str, sha256: str, size: int,
          licence: str, input_size: tuple[int, int] | None, preprocessing: str, decoder: str, runtime: str,
          licence_caveat: str = "") -> ModelSpec:
    return ModelSpec(name=name, task=task, relpath=relpath, url=_raw(repo, commit, path),  # type: ignore[arg-type]
                     sha256=sha256, size=size, licence=licence, licence_caveat=licence_caveat,
                     input_size=input_size, preprocessing=preprocessing, decoder=decoder,
                     runtime=runtime, source=f"{repo}@{commit}:{path}")  # type: ignore[arg-type]


CATALOG: tuple[ModelSpec, ...] = (
    _spec("yolox-nano", "person_detection", "person_detection/yolox_nano_416x416.onnx", _KAZ_MOT, _KAZ_MOT_C,
          "Detector/yolox/model/yolox_nano_416x416.onnx",
          "695e750a5d5754bb5a8d5325643b59282191a7e7a564e435a415fd3c578eab14", 3660092,
          "Apache-2.0", (416, 416), _YOLOX_PRE.replace("S", "416"), "yolox", "onnx"),
    _spec("light-person", "person_detection", "person_detection/light_person_detector.onnx", _KAZ_LIGHT,
          _KAZ_LIGHT_C, "model/model.onnx",
          "4bf5f704cd3bd900645a4303e0934ede13d9fb2135058b38005f4c2886c68576", 3616703,
          "Apache-2.0", (192, 192), _YOLOX_PRE.replace("S", "192"), "yolox", "onnx"),
    _spec("person-reid-0248", "person_reid", "person_reid/person-reidentification-retail-0248.onnx", _KAZ_MOT,
          _KAZ_MOT_C, "Tracker/person_reid/model/person-reidentification-retail-0248.onnx",
          "43891ce644ff6f4c70cce150028e44d6cf3d150cb5a3eb75bf69bfaef0ebe789", 806257,
          "Apache-2.0", (128, 256), _REID_PRE, "reid-embedding", "onnx"),
    _spec("person-reid-0288", "person_reid", "person_reid/person-reidentification-retail-0288.onnx", _KAZ_MOT,
          _KAZ_MOT_C, "Tracker/person_reid/model/person-reidentification-retail-0288.onnx",
          "f3966d905e7232026aa8b814c328231a7b45c5b6b4dd32f886894223c4441b80", 813323,
          "Apache-2.0", (128, 256), _REID_PRE, "reid-embedding", "onnx"),
    _spec("yunet-n", "face_detection", "face_detection/yunet_n_dynamic.onnx", _YUNET, _YUNET_C,
          "onnx/yunet_n_dynamic.onnx",
          "104ee26c71d5c270ce79a6b3dced91c91013260d29a6bf18f9296c5b8c4c2b12", 322906,
          "Apache-2.0", None, "BGR 0-255 float32, no normalisation; any H, W multiple of 32 (pad bottom/right); "
          "NCHW; also loads in cv2.FaceDetectorYN", "yunet", "onnx"),
    _spec("yunet-n-640", "face_detection", "face_detection/yunet_n_640_640.onnx", _YUNET, _YUNET_C,
          "onnx/yunet_n_640_640.onnx",
          "25a606a145a5b6d7271ae138fbd00eba91dad8b83222ae3f2c7ecd0f4a7b0e31", 317466,
          "Apache-2.0", (640, 640), "BGR 0-255 float32, no normalisation; exactly 640x640 (pad bottom/right); NCHW",
          "yunet", "onnx"),
    _spec("rfb-320", "face_detection", "face_detection/version-RFB-320.onnx", _RFB, _RFB_C,
          "models/onnx/version-RFB-320.onnx",
          "34cd7e60aeff28744c657de7a3dc64e872d506741de66987f3426f2b79f88017", 1270727,
          "MIT", (320, 240), "RGB, (x-127)/128, plain resize to 320x240 (no letterbox), NCHW; outputs already "
          "decoded (normalised x1,y1,x2,y2 + softmax scores)", "ultraface", "onnx"),
    _spec("mobilefacenet", "face_embedding", "face_embedding/foamliu_MobileFaceNet.onnx", _MFN, _MFN_C,
          "weights/MobileFaceNet.onnx",
          "b7120c095d60094f28a4a54ba6a8bf51b297a6273fb40ef6350dfec1f63d9507", 3998070,
          "Apache-2.0 (repository licence; see caveat)", (112, 112),
          "face aligned by 5-point similarity transform to the ArcFace 112x112 template; RGB, x/255, ImageNet "
          "mean (0.485,0.456,0.406) / std (0.229,0.224,0.225); NCHW; output 128-d, L2-normalise",
          "arcface", "onnx", licence_caveat=MS_CELEB_CAVEAT),
    _spec("mobilenet-v1-embedding", "product_embedding",
          "feature_extractor/mobilenet_v1_1.0_224_quant_embedding_extractor.tflite", _CORAL, _CORAL_C,
          "mobilenet_v1_1.0_224_quant_embedding_extractor.tflite",
          "f409ef4f73fcbb9667841965623c5c8524aac33d41b9bf5f3667161fb4a76319", 3251736,
          "Apache-2.0", (224, 224), _CORAL_PRE + "; output uint8 [1,1,1,1024]: dequantise, flatten, L2-normalise",
          "mobilenet-embedding", "tflite"),
    _spec("mobilenet-v2", "product_classification", "feature_extractor/mobilenet_v2_1.0_224_quant.tflite", _CORAL,
          _CORAL_C, "mobilenet_v2_1.0_224_quant.tflite",
          "7aad0c74c5e3c06e5eb3c827e13304fdd68a83da6087d92ee169c24ff9fd4776", 3610798,
          "Apache-2.0", (224, 224), _CORAL_PRE + "; output uint8 softmax [1,1001] (scale 1/256), labels in "
          "imagenet-labels (index 0 = background)", "mobilenet-classifier", "tflite"),
    _spec("imagenet-labels", "labels", "feature_extractor/imagenet_labels.txt", _CORAL, _CORAL_C,
          "imagenet_labels.txt",
          "b8aaeb5630c62626a7d124a05c0e14230a7ffdd2136a31d0190a4fb71c1d82f1", 21686,
          "Apache-2.0", None, "text, one label per line (1001 lines, index 0 = background)", "none", "none"),
)
