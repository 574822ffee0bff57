"""Where results live under --out, and how they are written: the Workspace, artifacts and their
manifests, the schemas of what we read back, atomic files and staging folders."""

from resnet_deploy.lazy import public

_WHERE = {
    "Workspace": "workspace",
    "Artifact": "artifact",
    "TensorSpec": "artifact",
    "write_json_atomic": "fsutil",
    "write_text_atomic": "fsutil",
    "publish_dir": "fsutil",
    "staging_dir": "fsutil",
}
__all__ = list(_WHERE)
__getattr__, __dir__ = public(__name__, _WHERE)
