"""Signed bundles, with the OpenSSF `model-signing` library (key-based: offline, no Sigstore).

A bundle's manifest.sha256 catches corruption, not an attacker who edits the model and rewrites
manifest.json and manifest.sha256 to match. `package --sign-key KEY` signs the whole bundle folder
(every file, the manifests included) with an elliptic-curve private key; the signature is
`model.sig` in the bundle (the one file it cannot cover). `verify BUNDLE --key PUB` and
`deploy --verify-key PUB` refuse (IntegrityError, exit 6) an unsigned bundle, another key's
signature, and any changed, added or removed file.

Make a key pair (P-256) with OpenSSL:
    openssl ecparam -name prime256v1 -genkey -noout -out signing.key
    openssl ec -in signing.key -pubout -out signing.pub
"""

from __future__ import annotations

from pathlib import Path

from resnet_deploy.errors import InputError, IntegrityError, first_line
from resnet_deploy.portable.constants import SIGNATURE_FILE

KEYGEN = "make one with `openssl ecparam -name prime256v1 -genkey -noout -out signing.key`"


def check_key(path: Path, private: bool) -> None:
    """One line for a key file that is missing or not a key of the right kind (or for the
    signing extra not being installed)."""
    from resnet_deploy.extras import require

    require("signing", "signing and verifying bundles")
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    what = "private key" if private else "public key"
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise InputError(f"{what} {str(path)!r} cannot be read ({e.strerror}); {KEYGEN}.") from None
    try:
        key = (
            serialization.load_pem_private_key(data, password=None)
            if private
            else serialization.load_pem_public_key(data)
        )
    except (ValueError, TypeError) as e:
        raise InputError(
            f"{str(path)!r} is not a PEM {what} ({first_line(e, 120)}); {KEYGEN}"
            + (", then `openssl ec -in signing.key -pubout -out signing.pub`" if not private else "")
            + "."
        ) from None
    if not isinstance(key, (ec.EllipticCurvePrivateKey, ec.EllipticCurvePublicKey)):
        raise InputError(f"{str(path)!r} is a {type(key).__name__}, not an elliptic-curve key; {KEYGEN}.")


def sign_bundle(bundle: Path, key: Path) -> Path:
    """Sign every file of the bundle folder; returns the signature's path."""
    check_key(key, private=True)
    import model_signing

    from resnet_deploy.portable.integrity import signature_hashing

    sig = Path(bundle) / SIGNATURE_FILE
    model_signing.signing.Config().use_elliptic_key_signer(private_key=key).set_hashing_config(
        signature_hashing(model_signing)
    ).sign(bundle, sig)
    return sig


def verify_signature(bundle: Path, key: Path, shown: Path | None = None) -> dict:
    """Raise IntegrityError unless the bundle folder is exactly what `key`'s owner signed (the
    check itself is portable.integrity.signature_status, the one devices run); the error names
    `shown` (the folder or tarball the user gave) rather than where it was unpacked."""
    from resnet_deploy.portable.integrity import BundleError, signature_status

    check_key(key, private=False)
    try:
        return signature_status(str(bundle), str(key))
    except BundleError as e:
        raise IntegrityError(f"bundle {str(shown or bundle)!r}: {e}") from None
