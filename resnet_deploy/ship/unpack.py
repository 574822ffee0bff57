"""Opening a bundle someone handed us (a folder or a .tar.gz) on the host, before anything of it
is trusted: only what its manifest lists is ever written, each file no larger than the manifest
says, the whole within a size cap; the checks name the tarball the user gave, never our
temporary folders."""

from __future__ import annotations

import shutil
import tarfile
import zlib
from pathlib import Path

from resnet_deploy.errors import InputError, IntegrityError, first_line
from resnet_deploy.portable import integrity
from resnet_deploy.portable.constants import MANIFEST, MANIFEST_SUM, SIGNATURE_FILE

MAX_BUNDLE_BYTES = 4 << 30  # every member of a tarball together: a ResNet-152 fp32 bundle is ~0.25 GB
MAX_META_BYTES = 16 << 20  # manifest.json / its checksum / the signature: a few KB to ~1 MB in ours
CHUNK = 1 << 20


def _check_member(tar_path: Path, m: tarfile.TarInfo) -> tuple[str, ...]:
    parts = Path(m.name).parts
    if m.name.startswith(("/", "\\")) or Path(m.name).is_absolute() or ".." in parts:
        raise IntegrityError(f"{str(tar_path)!r}: member {m.name!r} would land outside the target directory; refused.")
    if not (m.isfile() or m.isdir()):
        raise IntegrityError(f"{str(tar_path)!r}: member {m.name!r} is a link or special file; refused.")
    return parts


def index_members(tar_path: Path, tar: tarfile.TarFile) -> tuple[str, dict[str, tarfile.TarInfo]]:
    """Every member's header checked as it is read (names, kinds, the running total of declared
    sizes, so a bomb is refused at its header, before its data is even decompressed); returns
    the one top-level folder and its regular files by name inside it."""
    tops, files, total = set(), {}, 0
    for m in tar:
        parts = _check_member(tar_path, m)
        total += m.size
        if total > MAX_BUNDLE_BYTES:
            raise IntegrityError(
                f"{str(tar_path)!r} declares more than {MAX_BUNDLE_BYTES >> 30} GiB of files "
                f"(member {m.name!r} reaches {total >> 20} MiB); refused before unpacking."
            )
        tops.add(parts[0] if parts else "")
        if m.isfile() and len(parts) > 1:
            files["/".join(parts[1:])] = m
    if len(tops) != 1 or "" in tops:
        raise IntegrityError(f"{str(tar_path)!r} does not hold exactly one bundle directory; re-run `package`.")
    return tops.pop(), files


def _write_member(tar: tarfile.TarFile, m: tarfile.TarInfo, dest: Path, limit: int, what: str) -> None:
    """One member's bytes to dest, never more than `limit` (its size in the manifest)."""
    if m.size > limit:
        raise IntegrityError(f"{what} is {m.size} bytes in the tarball but {limit} in its manifest; refused.")
    dest.parent.mkdir(parents=True, exist_ok=True)
    src = tar.extractfile(m)
    if src is None:  # not a regular file: the caller lets only regular files through
        raise IntegrityError(f"{what} is not a regular file in the tarball; refused.")
    with open(dest, "xb") as out:
        shutil.copyfileobj(src, out, CHUNK)


def _listed(tar_path: Path, manifest: dict, files: dict[str, tarfile.TarInfo]) -> list[tuple[str, int]]:
    """(name, bytes) of every file the manifest lists, each present in the tarball."""
    listed = manifest.get("files")
    if not isinstance(listed, dict) or not listed:
        raise IntegrityError(f"{str(tar_path)!r}: manifest.json lists no files; re-run `package`.")
    out = []
    for name, rec in listed.items():
        try:
            integrity.check_member_name(name)
        except integrity.BundleError as e:
            raise IntegrityError(f"{str(tar_path)!r}: {e}") from None
        size = rec.get("bytes") if isinstance(rec, dict) else None
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise IntegrityError(f"{str(tar_path)!r}: the manifest gives no size for {name!r}; re-run `package`.")
        if name not in files:
            raise IntegrityError(
                f"{str(tar_path)!r}: {name} listed in the manifest is missing from the tarball; re-run `package`."
            )
        out.append((name, size))
    return out


def _extract_listed(tar_path: Path, tar: tarfile.TarFile, dest: Path) -> Path:
    top, files = index_members(tar_path, tar)
    bundle = dest / top
    for meta in (MANIFEST, MANIFEST_SUM):
        if meta not in files:
            raise IntegrityError(
                f"{str(tar_path)!r}: {meta} is missing: not a complete resnet-deploy bundle; re-run `package`."
            )
        _write_member(tar, files[meta], bundle / meta, MAX_META_BYTES, f"{str(tar_path)!r}: {meta}")
    try:
        manifest = integrity.read_manifest(str(bundle))
        integrity.check_bundle_name(str(bundle), manifest)
    except integrity.BundleError as e:
        raise IntegrityError(f"bundle {str(tar_path)!r} refused on the host: {e}") from None
    listed = _listed(tar_path, manifest, files)
    for name, size in listed:
        _write_member(tar, files[name], bundle / name, size, f"{str(tar_path)!r}: {name}")
    if SIGNATURE_FILE in files and SIGNATURE_FILE not in dict(listed):
        _write_member(
            tar, files[SIGNATURE_FILE], bundle / SIGNATURE_FILE, MAX_META_BYTES, f"{str(tar_path)!r}: {SIGNATURE_FILE}"
        )
    return bundle


def safe_extract(tar_path: Path, dest: Path) -> Path:
    """The bundle inside a tarball, in dest: the manifest first (checked), then exactly the
    files it lists (each at most its listed size) and the signature; anything else in the
    tarball is never written. Refuses '..', absolute names, links, device files and more than
    MAX_BUNDLE_BYTES declared; a file that is not a whole .tar.gz is one line."""
    try:
        with tarfile.open(tar_path, "r:*") as tar:
            dest.mkdir(parents=True, exist_ok=True)
            return _extract_listed(Path(tar_path), tar, dest)
    except (NotADirectoryError, IsADirectoryError, FileExistsError) as e:  # members that collide
        raise IntegrityError(
            f"{str(tar_path)!r}: member paths collide ({e.strerror}: {Path(str(e.filename)).name}); re-run `package`."
        ) from e
    except (tarfile.TarError, EOFError, zlib.error) as e:  # EOFError: a truncated gzip stream
        raise InputError(
            f"{str(tar_path)!r} is not a whole .tar.gz bundle ({first_line(e, 120) or 'truncated'}); "
            "copy it again or re-run `package`."
        ) from e


def verified(bundle: Path, shown: Path) -> dict:
    """The bundle's manifest after every integrity check; errors name `shown` (what the user gave)."""
    from resnet_deploy.portable.checks import check_manifest

    try:
        return check_manifest(integrity.verify_bundle(str(bundle)))  # the fields the device will use, too
    except integrity.BundleError as e:
        raise IntegrityError(f"bundle {str(shown)!r} refused on the host: {e}") from e


def open_bundle(path: Path, workdir: Path, verify_key: Path | None = None) -> Path:
    """A clean copy of a bundle (a directory or a .tar.gz) in workdir, verified on the host: the
    manifest, its checksum and the files the manifest lists, no links, nothing else. A folder is
    treated exactly like a tarball: whatever else it holds never reaches the device."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"Bundle {str(path)!r} does not exist; create one with `package`.")
    if path.is_dir() and path.is_symlink():
        raise IntegrityError(f"bundle {str(path)!r} is a link; pass the bundle folder or its .tar.gz itself.")
    source = safe_extract(path, workdir / "extracted") if path.is_file() else path
    manifest = verified(source, path)
    signed: tuple[str, ...] = ()
    if verify_key is not None:
        from resnet_deploy.ship.signing import verify_signature

        verify_signature(source, verify_key, shown=path)  # every file as it was signed, nothing else
        signed = (SIGNATURE_FILE,)
    clean = workdir / "clean" / source.name
    for name in (MANIFEST, MANIFEST_SUM, *signed, *manifest["files"]):
        (clean / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source / name, clean / name)  # plain files: verified above, links refused
    verified(clean, path)
    return clean


def _carries_signature(path: Path) -> bool:
    """Whether a bundle (folder or .tar.gz, already verified) holds a signature file."""
    if path.is_dir():
        return (path / SIGNATURE_FILE).is_file()
    with tarfile.open(path, "r:gz") as tar:
        return any(n.split("/")[-1] == SIGNATURE_FILE for n in tar.getnames())


def verify_signed(path: Path, key: Path | None = None) -> str:
    """The `verify` command: the bundle's integrity (every file against the manifest, the manifest
    against its checksum) and, with a key, its signature; one line on success. Without a key the
    line says the bundle's origin was not checked."""
    import json
    import tempfile

    with tempfile.TemporaryDirectory(prefix="rd-verify-") as tmp:
        clean = open_bundle(Path(path), Path(tmp), verify_key=Path(key) if key is not None else None)
        n = len(json.loads((clean / MANIFEST).read_text())["files"])
    if key is not None:
        return f"ok: {path} is intact ({n} files and the manifests) and signed by the owner of {key}"
    sig = (
        "it carries a signature that was NOT checked (pass --key PUB)"
        if _carries_signature(Path(path))
        else "it is UNSIGNED: the checksums show it is whole, not who made it (sign with `package --sign-key`)"
    )
    return f"ok: {path} is intact ({n} files and the manifests); {sig}"
