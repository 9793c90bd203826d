"""Fetch a version into DEST/<name>/<version>/: download beside it, verify, rename into place."""

import json
import shutil
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

from azure.storage.blob import ContainerClient

from model_loader import manifest as manifests
from model_loader.config import TransferSettings
from model_loader.download import Progress, download_file
from model_loader.errors import IntegrityError, LoaderError, NotFoundError
from model_loader.logs import log
from model_loader.names import MANIFEST_NAME, REPORT_NAME, version_prefix
from model_loader.storage import blob_errors


@dataclass(frozen=True)
class FetchReport:
    """Written as fetch-report.json next to the model for the app to expose as metrics."""

    name: str
    version: str
    digest: str
    bytes: int
    files: int
    seconds: float
    cache_hit: bool
    fetched_at: str

    def write(self, directory: Path) -> None:
        body = json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"
        temporary = directory / f".{REPORT_NAME}.tmp"
        temporary.write_text(body)
        temporary.replace(directory / REPORT_NAME)


def read_remote_manifest(
    container: ContainerClient, name: str, version: str, pinned: str | None = None
) -> tuple[manifests.Manifest, bytes, str]:
    """The version's manifest, its exact bytes and its digest; NotFoundError when absent,
    IntegrityError when its digest is not the `pinned` one."""
    blob_name = version_prefix(name, version) + MANIFEST_NAME
    what = f"{container.container_name}/{blob_name}"
    try:
        with blob_errors(what):
            raw = container.get_blob_client(blob_name).download_blob().readall()
    except NotFoundError:
        raise NotFoundError(f"{what}: model {name} version {version} is not published") from None
    digest = manifests.digest_of(raw)
    if pinned and digest != pinned:
        raise IntegrityError(f"{what}: digest {digest} differs from the pinned {pinned}")
    manifest = manifests.parse(raw, what)
    if (manifest.name, manifest.version) != (name, version):
        raise IntegrityError(f"{what}: manifest is for {manifest.name}/{manifest.version}")
    return manifest, raw, digest


def verify_installed(directory: Path) -> tuple[manifests.Manifest, str]:
    """Offline check of an installed version; returns its manifest and digest."""
    manifest_path = directory / MANIFEST_NAME
    if not manifest_path.is_file():
        raise NotFoundError(f"{manifest_path}: no manifest, not an installed model version")
    raw = manifest_path.read_bytes()
    manifest = manifests.parse(raw, str(manifest_path))
    manifests.verify_files(directory, manifest)
    return manifest, manifests.digest_of(raw)


def fetch(
    container: ContainerClient,
    name: str,
    version: str,
    dest_root: Path,
    digest: str | None,
    transfer: TransferSettings,
) -> FetchReport:
    """Install name/version under dest_root, or do nothing when it is already there verified."""
    started = time.monotonic()
    target = dest_root / name / version
    cached = _cache_hit(target, digest)
    if cached:
        report = _report(cached[0], cached[1], started, cache_hit=True)
        report.write(target)
        log("cache hit", name=name, version=version, digest=cached[1], path=str(target))
        return report

    manifest, raw, remote_digest = read_remote_manifest(container, name, version, digest)
    log(
        "fetch start",
        name=name,
        version=version,
        digest=remote_digest,
        files=len(manifest.files),
        bytes=manifest.total_bytes,
    )

    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_leftovers(target)
    staging = target.parent / f".{version}.partial-{uuid.uuid4().hex[:8]}"
    staging.mkdir()
    try:
        progress = Progress(manifest.total_bytes, transfer.progress_seconds)
        _download_all(container, name, version, manifest, staging, transfer, progress)
        (staging / MANIFEST_NAME).write_bytes(raw)
        report = _report(manifest, remote_digest, started, cache_hit=False)
        report.write(staging)
        _swap_into_place(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    log(
        "fetch done",
        name=name,
        version=version,
        digest=remote_digest,
        bytes=report.bytes,
        seconds=report.seconds,
        mb_per_s=progress.rate(),
        path=str(target),
    )
    return report


def _cache_hit(target: Path, digest: str | None) -> tuple[manifests.Manifest, str] | None:
    if not (target / MANIFEST_NAME).is_file():
        return None
    try:
        manifest, installed_digest = verify_installed(target)
    except LoaderError as exc:
        log("installed copy is invalid, fetching again", path=str(target), reason=str(exc))
        return None
    if digest and installed_digest != digest:
        log(
            "installed copy has another digest, fetching again",
            path=str(target),
            installed=installed_digest,
            pinned=digest,
        )
        return None
    return manifest, installed_digest


def _download_all(container, name, version, manifest, staging, transfer, progress) -> None:
    prefix = version_prefix(name, version)
    with ThreadPoolExecutor(transfer.file_concurrency, thread_name_prefix="fetch") as pool:
        futures = [
            pool.submit(
                download_file,
                container,
                prefix + entry.path,
                entry,
                staging / entry.path,
                transfer,
                progress,
            )
            for entry in manifest.files
        ]
        try:
            for future in futures:
                future.result()
        except BaseException:
            for future in futures:
                future.cancel()
            raise


def _swap_into_place(staging: Path, target: Path) -> None:
    """Rename the verified staging dir to target; an old invalid copy is moved aside first."""
    if target.exists():
        retired = target.parent / f".{target.name}.retired-{uuid.uuid4().hex[:8]}"
        target.rename(retired)
        staging.rename(target)
        shutil.rmtree(retired, ignore_errors=True)
    else:
        staging.rename(target)


def _remove_leftovers(target: Path) -> None:
    """Staging or retired dirs left by a run that was killed."""
    for pattern in (f".{target.name}.partial-*", f".{target.name}.retired-*"):
        for leftover in target.parent.glob(pattern):
            shutil.rmtree(leftover, ignore_errors=True)


def _report(manifest: manifests.Manifest, digest: str, started: float, cache_hit: bool):
    return FetchReport(
        name=manifest.name,
        version=manifest.version,
        digest=digest,
        bytes=manifest.total_bytes,
        files=len(manifest.files),
        seconds=round(time.monotonic() - started, 3),
        cache_hit=cache_hit,
        fetched_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    )
