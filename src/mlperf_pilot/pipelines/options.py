"""What a rendered pipeline needs besides the RunSpec: image, storage, namespace, names.

:class:`PipelineOptions` holds the ``pipeline render`` options that are not run settings;
:func:`render_input` plans the RunSpec once (every name checked, as ``run`` checks it) into
the :class:`RenderInput` the Tekton and Kubernetes renderers are pure functions of.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from mlperf_pilot import __version__
from mlperf_pilot.config import RunSpec
from mlperf_pilot.errors import ConfigError
from mlperf_pilot.vocab import Device

DEFAULT_SIZE = "50Gi"
DEFAULT_CPU = "4"
DEFAULT_MEMORY = "8Gi"
DEFAULT_SERVICE_ACCOUNT = "mlperf-pilot"
# the image's user (Containerfile: USER 10001:0); the pods' fsGroup by default, so that a
# fresh claim is writable by that user ("none": the cluster assigns it, as OpenShift does)
DEFAULT_FS_GROUP = 10001
# the image build (item: Containerfile at the repository root, its build arguments)
CONTAINERFILE = "Containerfile"
BUILDAH_IMAGE = "quay.io/buildah/stable:v1.37"
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?(m|k|Ki|Mi|Gi|Ti|Pi|Ei|M|G|T|P|E)?$")


def default_image(device: Device) -> str:
    suffix = "-cuda" if device is Device.CUDA else ""
    return f"localhost/mlperf-pilot:{__version__}{suffix}"


@dataclass(frozen=True)
class PipelineOptions:
    """``pipeline render``'s own options (None: the default the renderer says)."""

    image: str | None = None
    storage_class: str | None = None
    size: str = DEFAULT_SIZE
    namespace: str | None = None
    registry_secret: str | None = None  # a kubernetes.io/dockerconfigjson Secret, by name
    service_account: str = DEFAULT_SERVICE_ACCOUNT
    pvc: str | None = None  # an existing claim instead of a volumeClaimTemplate / new PVC
    cpu: str = DEFAULT_CPU
    memory: str = DEFAULT_MEMORY
    gpus: int = 1  # per run pod, for --device cuda
    name: str = "mlperf"  # prefix of every object's name
    git_url: str | None = None  # the repository the Tekton pipeline builds (required there)
    git_revision: str = "main"
    division: str = "open"  # of the submission the pipeline's last task builds
    submitter: str = "my-org"
    fs_group: int | None = DEFAULT_FS_GROUP  # the pods' securityContext.fsGroup

    @property
    def pod_security(self) -> dict[str, object]:
        """The pods' securityContext: the claim's group (fsGroup); empty with none (each
        container says runAsNonRoot itself: the image build's cannot)."""
        return {} if self.fs_group is None else {"fsGroup": self.fs_group}

    def check(self, target: str = "tekton") -> None:
        """Names and quantities Kubernetes would refuse, refused here first."""
        if target == "tekton" and not self.git_url:
            raise ConfigError("the Tekton pipeline builds its image from a repository: "
                              "--git-url is missing",
                              hint="give --git-url (a clone of mlperf-pilot with the "
                                   "Containerfile at its root), or --target k8s with --image")
        for label, value, longest in (
                ("--namespace", self.namespace, 63), ("--name", self.name, 40),
                ("--registry-secret", self.registry_secret, 253),
                ("--service-account", self.service_account, 253), ("--pvc", self.pvc, 253),
                ("--storage-class", self.storage_class, 253)):
            pattern = _DNS_LABEL if longest <= 63 else _DNS_SUBDOMAIN
            if value is not None and (len(value) > longest or not pattern.match(value)):
                dots = "" if longest <= 63 else " and '.'"
                raise ConfigError(f"{label} {value!r} is not a Kubernetes name",
                                  hint=f"use lower-case letters, digits, '-'{dots}, at most "
                                       f"{longest} characters, starting and ending "
                                       "alphanumeric")
        for label, value in (("--size", self.size), ("--cpu", self.cpu),
                             ("--memory", self.memory)):
            if not _QUANTITY.match(value):
                raise ConfigError(f"{label} {value!r} is not a Kubernetes quantity",
                                  hint="e.g. --size 50Gi, --cpu 4 or 500m, --memory 8Gi")
        if self.fs_group is not None and not 0 <= self.fs_group <= 2**31 - 1:
            raise ConfigError(f"--fs-group {self.fs_group} is not a group id",
                              hint="give a GID from 0 to 2147483647, or --fs-group none")
        if self.gpus < 1:
            raise ConfigError(f"--gpus {self.gpus} must be 1 or more",
                              hint="give the GPUs each run pod requests, e.g. --gpus 1")


@dataclass(frozen=True)
class RenderInput:
    """A planned RunSpec with what the renderers read from the plan."""

    spec: RunSpec
    backend: str | None  # the backend the plan chose (local SUT), else None
    system: str  # the results folder's system name
    options: PipelineOptions

    @property
    def cuda(self) -> bool:
        device = getattr(self.spec.sut, "device", Device.CPU)
        return device is Device.CUDA

    @property
    def image(self) -> str:
        return self.options.image or default_image(Device.CUDA if self.cuda else Device.CPU)

    @property
    def scenarios(self) -> list[str]:
        return [s.value for s in self.spec.scenarios]


def render_input(spec: RunSpec, options: PipelineOptions, target: str = "tekton"
                 ) -> RenderInput:
    """Plan ``spec`` (a resolved RunSpec: layered over its card) and check the options."""
    from mlperf_pilot.engine import plan_run

    options.check(target)
    # --dataset-path and --model-path name places inside the pods (the data volume), not
    # here: planned without them, rendered with them
    inside = {"dataset_path": None}
    sut = spec.sut
    if getattr(sut, "model_path", None) is not None:
        sut = sut.model_copy(update={"model_path": None})
    plan = plan_run(spec.model_copy(update={**inside, "sut": sut}), layer=False)
    backend = plan.sut.details.get("backend")
    return RenderInput(spec=spec, backend=str(backend) if backend else None,
                       system=plan.system, options=options)


__all__ = ["BUILDAH_IMAGE", "CONTAINERFILE", "DEFAULT_FS_GROUP", "PipelineOptions", "RenderInput",
           "default_image", "render_input"]
