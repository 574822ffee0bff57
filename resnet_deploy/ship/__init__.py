"""Getting artifacts onto devices: self-testing bundles, opening a bundle someone handed us, signing,
deploy to a folder or over SSH, fleets through Ansible, and the device self-test itself."""

from resnet_deploy.lazy import public

_WHERE = {
    "package": "bundle",
    "open_bundle": "unpack",
    "verify_signed": "unpack",
    "sign_bundle": "signing",
    "deploy_fleet": "fleet",
    "SshDevice": "ssh",
}
__all__ = list(_WHERE)
__getattr__, __dir__ = public(__name__, _WHERE)
