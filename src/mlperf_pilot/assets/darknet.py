"""yolov3-tiny from darknet's .cfg and .weights, rebuilt in torch for the ONNX export.

The network follows the cfg section by section (convolution with batch norm and leaky
ReLU 0.1, max pools, a route, an upsample, two yolo heads). The weights file holds a
header (three int32 and a 64-bit "seen" count), then per convolution either batch-norm
beta, gamma, mean, variance followed by the kernel, or the bias followed by the kernel;
the load checks that every value is consumed. The exported graph ends with the yolo
decoding, so the ONNX model outputs ``boxes`` (N, A, 4: centre x, centre y, width,
height, relative to the input) and ``scores`` (N, A, 80: objectness x class
probability) for all A = 3 x (13x13 + 26x26) anchors at 416x416.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from mlperf_pilot.errors import AssetError


def parse_cfg(text: str) -> list[dict[str, str]]:
    """Sections of a darknet .cfg, in order, each with its ``type``."""
    sections: list[dict[str, str]] = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith("[") and line.endswith("]"):
            sections.append({"type": line[1:-1].strip()})
        elif "=" in line and sections:
            key, value = line.split("=", 1)
            sections[-1][key.strip()] = value.strip()
    return sections


def build_yolov3_tiny(torch: Any, cfg_text: str, weights: bytes, input_size: int = 416) -> Any:
    """The torch module with the darknet weights loaded."""
    nn = torch.nn
    sections = parse_cfg(cfg_text)
    layers = sections[1:]  # [net] first

    class Darknet(nn.Module):  # type: ignore[misc,name-defined]
        def __init__(self) -> None:
            super().__init__()
            self.blocks = nn.ModuleList()
            self.kinds: list[str] = []
            self.routes: dict[int, list[int]] = {}
            self.heads: list[tuple[int, list[tuple[int, int]]]] = []
            channels = [3]
            for index, section in enumerate(layers):
                kind = section["type"]
                block: Any = nn.Identity()
                out_channels = channels[-1]
                if kind == "convolutional":
                    filters, size = int(section["filters"]), int(section["size"])
                    stride = int(section.get("stride", 1))
                    pad = size // 2 if int(section.get("pad", 0)) else 0
                    bn = int(section.get("batch_normalize", 0))
                    parts = [nn.Conv2d(channels[-1], filters, size, stride, pad, bias=not bn)]
                    if bn:
                        parts.append(nn.BatchNorm2d(filters, eps=1e-5))
                    if section.get("activation") == "leaky":
                        parts.append(nn.LeakyReLU(0.1))
                    block = nn.Sequential(*parts)
                    out_channels = filters
                elif kind == "maxpool":
                    size, stride = int(section["size"]), int(section["stride"])
                    if stride == 1:  # darknet keeps the size: pad right and bottom
                        block = nn.Sequential(nn.ZeroPad2d((0, 1, 0, 1)),
                                              nn.MaxPool2d(size, stride))
                    else:
                        block = nn.MaxPool2d(size, stride)
                elif kind == "upsample":
                    block = nn.Upsample(scale_factor=int(section["stride"]), mode="nearest")
                elif kind == "route":
                    sources = [int(v) for v in section["layers"].split(",")]
                    sources = [s if s >= 0 else index + s for s in sources]
                    self.routes[index] = sources
                    out_channels = sum(channels[s + 1] for s in sources)
                elif kind == "yolo":
                    mask = [int(v) for v in section["mask"].split(",")]
                    values = [int(v) for v in section["anchors"].split(",")]
                    anchors = [(values[2 * m], values[2 * m + 1]) for m in mask]
                    self.heads.append((index, anchors))
                else:
                    raise AssetError(f"unsupported darknet layer [{kind}]")
                self.blocks.append(block)
                self.kinds.append(kind)
                channels.append(out_channels)

        def forward(self, x: Any) -> tuple[Any, Any]:
            outputs: list[Any] = []
            boxes, scores = [], []
            for index, (kind, block) in enumerate(zip(self.kinds, self.blocks, strict=True)):
                if kind == "route":
                    x = torch.cat([outputs[s] for s in self.routes[index]], dim=1)
                elif kind == "yolo":
                    anchors = dict(self.heads)[index]
                    b, s = decode_head(torch, x, anchors, input_size)
                    boxes.append(b)
                    scores.append(s)
                else:
                    x = block(x)
                outputs.append(x)
            return torch.cat(boxes, dim=1), torch.cat(scores, dim=1)

    model = Darknet()
    _load_weights(model, layers, weights, torch)
    return model.eval()


def decode_head(torch: Any, x: Any, anchors: list[tuple[int, int]], input_size: int
                ) -> tuple[Any, Any]:
    """A yolo head's raw map → (boxes cxcywh in 0..1, scores = objectness x class)."""
    batch, _, height, width = x.shape
    count = len(anchors)
    x = x.view(batch, count, -1, height, width).permute(0, 1, 3, 4, 2)  # B,A,H,W,85
    grid_y, grid_x = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    anchor = torch.tensor(anchors, dtype=torch.float32).view(1, count, 1, 1, 2)
    cx = (torch.sigmoid(x[..., 0]) + grid_x) / width
    cy = (torch.sigmoid(x[..., 1]) + grid_y) / height
    wh = torch.exp(x[..., 2:4]) * anchor / input_size
    objectness = torch.sigmoid(x[..., 4:5])
    scores = objectness * torch.sigmoid(x[..., 5:])
    boxes = torch.stack([cx, cy, wh[..., 0], wh[..., 1]], dim=-1)
    return boxes.reshape(batch, -1, 4), scores.reshape(batch, -1, scores.shape[-1])


def _load_weights(model: Any, layers: list[dict[str, str]], data: bytes, torch: Any) -> None:
    header = np.frombuffer(data[:12], dtype=np.int32)
    major, minor = int(header[0]), int(header[1])
    offset = 12 + (8 if major * 10 + minor >= 2 else 4)
    values = np.frombuffer(data[offset:], dtype=np.float32)
    position = 0

    def take(tensor: Any) -> None:
        nonlocal position
        size = tensor.numel()
        if position + size > values.size:
            raise AssetError("the darknet weights file is shorter than the cfg needs")
        tensor.data.copy_(torch.from_numpy(
            values[position:position + size].copy()).view_as(tensor))
        position += size

    for section, block in zip(layers, model.blocks, strict=True):
        if section["type"] != "convolutional":
            continue
        conv = block[0]
        if int(section.get("batch_normalize", 0)):
            bn = block[1]
            for tensor in (bn.bias, bn.weight, bn.running_mean, bn.running_var):
                take(tensor)
        else:
            take(conv.bias)
        take(conv.weight)
    if position != values.size:
        raise AssetError(f"the darknet weights file has {values.size - position} values the "
                         "cfg does not use", hint="the .cfg and .weights do not belong together")


def read_files(folder: Path) -> tuple[str, bytes]:
    return ((folder / "yolov3-tiny.cfg").read_text(encoding="utf-8"),
            (folder / "yolov3-tiny.weights").read_bytes())
