"""Artifact: an exported model directory and its manifest.json (read, write, verify sha256)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from resnet_deploy.config import Precision
from resnet_deploy.errors import DeployError, IntegrityError, InputError
from resnet_deploy.store.fsutil import write_json_atomic
from resnet_deploy.portable.constants import MANIFEST, SCHEMA_VERSION
from resnet_deploy.portable.integrity import sha256_file

__all__ = ["Artifact", "TensorSpec", "sha256_file", "MANIFEST"]


@dataclass(frozen=True)
class TensorSpec:
    """One model input or output as the artifact sees it."""

    name: str
    dtype: str
    shape: list[int]
    layout: str = "NHWC"
    quant: dict | None = None  # {"scale": float, "zero_point": int} for quantized tensors

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "dtype": self.dtype,
            "shape": list(self.shape),
            "layout": self.layout,
            "quant": self.quant,
        }


@dataclass
class Artifact:
    """The files a Target wrote, and what the manifest says about them.

    `files` are relative to `path`; `files[0]` is the model file a runner loads.
    """

    target: str
    precision: Precision
    path: Path
    files: list[str]
    inputs: list[TensorSpec] = field(default_factory=list)
    outputs: list[TensorSpec] = field(default_factory=list)
    details: dict = field(default_factory=dict)  # target-specific manifest fields
    manifest: dict = field(default_factory=dict)

    @property
    def model_file(self) -> Path:
        return self.path / self.files[0]

    @property
    def manifest_path(self) -> Path:
        return self.path / MANIFEST

    def file_hashes(self) -> dict[str, dict]:
        return {f: {"sha256": sha256_file(self.path / f), "bytes": (self.path / f).stat().st_size} for f in self.files}

    def write_manifest(self, common: dict) -> dict:
        """Compose and atomically write manifest.json from the common fields and this artifact."""
        manifest = {
            "schema_version": SCHEMA_VERSION,
            **common,
            "target": self.target,
            "precision": self.precision.value,
            "files": self.file_hashes(),
            "inputs": [t.to_dict() for t in self.inputs],
            "outputs": [t.to_dict() for t in self.outputs],
            **self.details,
        }
        write_json_atomic(self.manifest_path, manifest)
        self.manifest = manifest
        return manifest

    @classmethod
    def load(cls, path: Path) -> "Artifact":
        """Read an artifact directory back from its manifest."""
        path = Path(path)
        mpath = path / MANIFEST
        if not mpath.is_file():
            raise InputError(f"{str(path)!r} has no {MANIFEST}; pass a directory written by `resnet-deploy export`.")
        from resnet_deploy.store.schemas import read_checked

        m = read_checked(mpath, "manifest", "re-export the artifact")
        try:
            return cls(
                target=m["target"],
                precision=Precision.parse(m["precision"]),
                path=path,
                files=list(m["files"]),
                inputs=[TensorSpec(**t) for t in m["inputs"]],
                outputs=[TensorSpec(**t) for t in m["outputs"]],
                manifest=m,
            )
        except (KeyError, TypeError, AttributeError, DeployError) as e:
            raise IntegrityError(
                f"{str(mpath)!r} is not a resnet-deploy manifest ({e}); re-export the artifact."
            ) from e

    def verify(self) -> None:
        """Raise IntegrityError unless every file matches the sha256 in the manifest."""
        from resnet_deploy.portable.integrity import BundleError, check_member_name

        for name, rec in self.manifest.get("files", {}).items():
            try:
                f = self.path / check_member_name(name)
            except BundleError as e:
                raise IntegrityError(f"{str(self.manifest_path)!r}: {e}") from e
            if not f.is_file():
                raise IntegrityError(f"{str(f)!r} listed in the manifest is missing; re-export the artifact.")
            actual = sha256_file(f)
            if actual != rec["sha256"]:
                raise IntegrityError(
                    f"{str(f)!r} sha256 {actual[:12]}... does not match the manifest's "
                    f"{rec['sha256'][:12]}...; the file was changed or corrupted, re-export it."
                )
