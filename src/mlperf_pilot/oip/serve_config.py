"""What ``mlperf-pilot serve`` is configured with (:class:`ServeConfig`).

The model is named as a catalog card and resolved like the local SUT does (backend,
format, device, model file); the rest is how the server listens, batches and guards
itself. The bearer token is never a setting: only the path of a file holding it (or the
environment variable ``MLPERF_PILOT_TOKEN``), so it never lands in argv, logs or records.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from mlperf_pilot.config.sut import MAX_BATCH_TIMEOUT_US, TOKEN_ENV
from mlperf_pilot.vocab import Device

DEFAULT_MAX_BODY_BYTES = 64 * 1024 * 1024  # 64 MiB: a batch of 64 224x224 FP32 images fits
DEFAULT_PORT = 8000


class ServeConfig(BaseModel):
    """One server: a catalog model on a backend, on host:port."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    model: str = "efficientnet-lite0-demo"  # a catalog card name
    backend: str | None = None  # None = the card's default backend
    device: Device = Device.CPU
    model_path: Path | None = None
    model_format: str | None = None  # a card format id
    host: str = "127.0.0.1"
    port: int = Field(default=DEFAULT_PORT, ge=0, le=65535)  # 0 = a free port
    token_file: Path | None = None
    # the dynamic batcher: samples per backend call, how long a partial batch may wait
    # for more requests (0 = run what is queued at once), inference threads
    max_batch_size: int = Field(default=8, ge=1)
    batch_timeout_us: int = Field(default=0, ge=0, le=MAX_BATCH_TIMEOUT_US)
    workers: int = Field(default=1, ge=1)
    threads: int = Field(default=0, ge=0)  # backend intra-op threads; 0 = cores / workers
    # busy-waiting backend threads: off by default, the event loop needs the cores
    spin_wait: bool = False
    max_body_bytes: int = Field(default=DEFAULT_MAX_BODY_BYTES, ge=1)
    served_name: str | None = None  # the model name on the wire; None = the card's name
    drain_timeout_s: float = Field(default=30.0, gt=0)  # SIGTERM: longest wait for requests
    access_log: bool = False
    # glibc's malloc keeps freed memory for the next request body (oip/allocator.py)
    keep_freed_memory: bool = True

    @field_validator("device", mode="before")
    @classmethod
    def _device(cls, value: Any) -> Any:
        return Device.parse(value) if isinstance(value, str) else value

    @property
    def name(self) -> str:
        return self.served_name or self.model

    @property
    def loopback(self) -> bool:
        """Whether the server listens on this machine only."""
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False


__all__ = ["DEFAULT_MAX_BODY_BYTES", "DEFAULT_PORT", "TOKEN_ENV", "ServeConfig"]
