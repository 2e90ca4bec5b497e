"""What kind of model file a path really is (its ``ModelFormat.format``), told from its
content where that is decisive, else from its suffix; used to refuse a ``--model-path``
the chosen backend cannot read before anything is loaded."""

from __future__ import annotations

from pathlib import Path

# a model file's suffix -> the format kind it is (ModelFormat.format)
_SUFFIXES = {".onnx": "onnx", ".pb": "tensorflow", ".tflite": "tflite", ".pt": "pytorch",
             ".pth": "pytorch", ".pt2": "pytorch", ".torchscript": "pytorch",
             ".xml": "openvino", ".caffemodel": "caffe", ".prototxt": "caffe",
             ".cfg": "darknet", ".weights": "darknet"}
_KIND_WORDS = {"onnx": "an ONNX model", "tensorflow": "a TensorFlow model",
               "tflite": "a TFLite flatbuffer", "pytorch": "a PyTorch model",
               "openvino": "an OpenVINO IR", "caffe": "a Caffe model",
               "darknet": "a Darknet model"}


def detect_file_format(path: Path) -> str | None:
    """The format kind a model file (or folder) really is, from its content where that
    is decisive (a SavedModel folder, the TFLite "TFL3" mark, a TorchScript/torch.export
    zip, an ONNX protobuf), else from its suffix; None when it cannot be told."""
    if path.is_dir():
        if (path / "saved_model.pb").is_file() or (path / "saved_model.pbtxt").is_file():
            return "tensorflow"
        return None
    try:
        with path.open("rb") as handle:
            head = handle.read(16)
    except OSError:
        return None
    if head[4:8] == b"TFL3":
        return "tflite"
    if head[:4] == b"PK\x03\x04":
        import zipfile

        try:
            with zipfile.ZipFile(path) as archive:
                names = archive.namelist()
        except (OSError, zipfile.BadZipFile):
            return None
        if any(n.endswith(("data.pkl", "constants.pkl", "/version")) for n in names):
            return "pytorch"
        return None
    suffix = _SUFFIXES.get(path.suffix.lower())
    if suffix is not None:
        return suffix
    # ModelProto starts with ir_version (field 1, varint), then producer_name, graph, ...
    if len(head) >= 3 and head[0] == 0x08 and 1 <= head[1] <= 30 and \
            head[2] in (0x12, 0x1A, 0x22, 0x2A, 0x32, 0x3A, 0x42):
        return "onnx"
    return None


def kind_words(kind: str) -> str:
    """A format kind for people: ``onnx`` -> "an ONNX model"."""
    return _KIND_WORDS.get(kind, f"a {kind} model")


__all__ = ["detect_file_format", "kind_words"]
