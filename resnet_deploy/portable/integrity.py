"""Bundle integrity: manifest.json against manifest.sha256, every listed file against the manifest."""
import hashlib
import json
import os
import posixpath

from .constants import EXIT_INTEGRITY, MANIFEST, MANIFEST_SUM, SCHEMA_VERSION, SIGNATURE_FILE
from .names import UnsafeName, check_name, check_path


class BundleError(Exception):
    """The bundle cannot be trusted or used; the message says what and how to fix it."""

    exit_code = EXIT_INTEGRITY


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def check_member_name(name):
    """A file name listed in a manifest: relative, '/'-separated, normalised, no '..', no
    backslash. Returns the name; raises BundleError otherwise."""
    ok = (isinstance(name, str) and name and "\\" not in name and not name.startswith("/")
          and posixpath.normpath(name) == name and ".." not in name.split("/"))
    if not ok:
        raise BundleError("%r listed in the manifest is not a safe relative file name; re-run `package`." % (name,))
    try:
        return check_path(name, "file name")
    except UnsafeName as e:
        raise BundleError("the manifest lists an unsafe %s; re-run `package`." % e)


def check_bundle_name(bundle, manifest):
    """The bundle's folder is named as its manifest (checksummed, and signed with the rest) says,
    and that name is safe: a renamed bundle is refused, so what decides where it lands on a
    device is covered by its checks."""
    name = manifest.get("bundle")
    try:
        check_name(name, "bundle name")
    except UnsafeName as e:
        raise BundleError("the manifest's %s; re-run `package`." % e)
    folder = os.path.basename(os.path.abspath(bundle))
    if folder != name:
        raise BundleError("the bundle folder is named %r but its manifest names it %r: it was renamed after "
                          "packaging; use the name it was packaged with." % (folder, name))
    return name


def read_manifest(bundle):
    mpath, spath = os.path.join(bundle, MANIFEST), os.path.join(bundle, MANIFEST_SUM)
    for p in (mpath, spath):
        if not os.path.isfile(p):
            raise BundleError("%s is missing: %s is not a complete resnet-deploy bundle; re-run `package`."
                              % (os.path.basename(p), bundle))
        if os.path.islink(p):
            raise BundleError("%s is a link, not a file; re-run `package`." % os.path.basename(p))
    with open(spath) as f:
        expected = (f.read().split() or [""])[0]
    if sha256_file(mpath) != expected:
        raise BundleError("manifest.json does not match manifest.sha256: the manifest was changed; re-run `package`.")
    try:
        with open(mpath) as f:
            manifest = json.load(f)
    except ValueError as e:
        raise BundleError("manifest.json is not valid JSON (%s); re-run `package`." % e)
    if not isinstance(manifest, dict) or manifest.get("schema_version") != SCHEMA_VERSION:
        got = manifest.get("schema_version") if isinstance(manifest, dict) else None
        raise BundleError("bundle schema_version %r is not %d; use the selftest.py of the resnet-deploy that wrote it."
                          % (got, SCHEMA_VERSION))
    return manifest


def verify_bundle(bundle):
    """Check the manifest and every file it lists. Returns the manifest; raises BundleError
    naming the first file that does not match."""
    manifest = read_manifest(bundle)
    files = manifest.get("files")
    if not isinstance(files, dict) or not files:
        raise BundleError("manifest.json lists no files; re-run `package`.")
    for name, rec in files.items():
        if not isinstance(rec, dict) or not isinstance(rec.get("sha256"), str):
            raise BundleError("manifest.json: the entry for %r has no sha256; re-run `package`." % (name,))
        path = os.path.join(bundle, *check_member_name(name).split("/"))
        if os.path.islink(path) or not os.path.isfile(path):
            raise BundleError("%s listed in the manifest is missing or not a plain file; re-deploy the bundle." % name)
        actual = sha256_file(path)
        if actual != rec.get("sha256"):
            raise BundleError("%s sha256 %s... does not match the manifest's %s...: the file was changed or corrupted; "
                              "re-deploy the bundle." % (name, actual[:12], str(rec.get("sha256"))[:12]))
    check_bundle_name(bundle, manifest)
    return manifest


def _signature_problem(message):
    """model-signing's reason in a few words (its hash mismatch message quotes raw digests)."""
    import re

    changed = re.search(r"Hash mismatch for '([^']+)'", message)
    if changed:
        return "%s was changed" % changed.group(1)
    lines = [ln.strip() for ln in message.splitlines() if ln.strip()]
    return (lines[0] if lines else "no reason given")[:140]


def signature_hashing(model_signing):
    """What a bundle signature covers: every file of the bundle but the signature itself."""
    return model_signing.hashing.Config().set_ignored_paths(paths=[SIGNATURE_FILE], ignore_git_paths=False)


def signature_status(bundle, key=None):
    """Check the bundle's model.sig with the OpenSSF model-signing library when a public key is
    given and the library is installed (it is optional on devices); say which happened."""
    sig = os.path.join(bundle, SIGNATURE_FILE)
    status = {"signed": os.path.isfile(sig), "checked": False}
    if key is None:
        status["why"] = "no --verify-key given"
        return status
    if not status["signed"]:
        raise BundleError("the bundle is not signed (no %s); package it with --sign-key, or run without "
                          "--verify-key." % SIGNATURE_FILE)
    try:
        import model_signing
    except ImportError:
        status["why"] = "model-signing is not installed here"
        return status
    try:
        model_signing.verifying.Config().use_elliptic_key_verifier(public_key=key).set_hashing_config(
            signature_hashing(model_signing)).verify(bundle, sig)
    except Exception as e:  # noqa: BLE001 - model_signing raises ValueError and its own types
        raise BundleError("the bundle does not match its signature for key %s (%s): it was changed after signing, "
                          "or signed with another key; do not deploy it." % (key, _signature_problem(str(e))))
    status.update(checked=True, ok=True)
    return status
