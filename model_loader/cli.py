"""`model_loader publish|fetch|prefetch|list|check|verify`: options default to shared env names."""

import argparse
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

from model_loader import logs, prefetch
from model_loader.catalog import check_version, list_versions
from model_loader.config import (
    AUTH_MODES,
    TRUST_RULES,
    CacheSettings,
    StorageSettings,
    TransferSettings,
)
from model_loader.errors import LoaderError, UsageError
from model_loader.install import fetch, verify_installed
from model_loader.names import validate_digest, validate_name, validate_version
from model_loader.publish import publish
from model_loader.retention import hold
from model_loader.storage import container_client

PROG = "model_loader"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:
        raise UsageError(message)


def build_parser() -> argparse.ArgumentParser:
    env = os.environ.get
    parser = _Parser(prog=PROG, description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def with_storage(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--container", help="blob container [MODEL_CONTAINER, default models]")
        sub.add_argument(
            "--account-url",
            help="https://<account>.blob.core.windows.net [AZURE_STORAGE_ACCOUNT_URL]",
        )
        sub.add_argument(
            "--auth",
            choices=AUTH_MODES,
            help="credential to use [AZURE_STORAGE_AUTH,"
            " default auto: connection string, then SAS, then identity]",
        )

    def with_model(sub: argparse.ArgumentParser, digest: bool) -> None:
        sub.add_argument("--name", default=env("MODEL_NAME"), help="model name [MODEL_NAME]")
        sub.add_argument(
            "--version", default=env("MODEL_VERSION"), help="model version [MODEL_VERSION]"
        )
        if digest:
            sub.add_argument(
                "--digest",
                default=env("MODEL_DIGEST"),
                help="pinned sha256 of manifest.json [MODEL_DIGEST]",
            )

    sub = commands.add_parser("publish", help="upload DIR as an immutable version")
    sub.add_argument("directory", type=Path)
    with_model(sub, digest=False)
    sub.add_argument("--force", action="store_true", help="replace an existing version")
    sub.add_argument("--format", dest="model_format", help="model format (default: inferred)")
    sub.add_argument(
        "--publisher",
        default=env("MODEL_PUBLISHER"),
        help="who publishes [MODEL_PUBLISHER, default user@host]",
    )
    with_storage(sub)

    sub = commands.add_parser("fetch", help="install a verified version into DEST/<name>/<version>")
    with_model(sub, digest=True)
    sub.add_argument("--dest", type=Path, default=env("MODEL_ROOT"), help="root [MODEL_ROOT]")
    sub.add_argument("--keep", type=int, help="versions of the model kept [MODEL_CACHE_KEEP, 3]")
    sub.add_argument(
        "--max-bytes", type=int, help="bound on the root's bytes [MODEL_CACHE_MAX_BYTES, 0: none]"
    )
    sub.add_argument(
        "--verify",
        choices=TRUST_RULES,
        help="trust an installed version by its stat record or by hashing every file"
        " [MODEL_CACHE_VERIFY, stat]",
    )
    with_storage(sub)

    sub = commands.add_parser(
        "prefetch",
        parents=[sub],
        add_help=False,
        help="fetch, then serve the installed version's metrics until SIGTERM (a node's cache)",
    )
    sub.add_argument(
        "--metrics-port",
        type=prefetch.port,
        default=env("PREFETCH_METRICS_PORT"),
        help="port of the metrics, answering once installed [PREFETCH_METRICS_PORT]",
    )
    sub.add_argument(
        "--metrics-address",
        default=env("PREFETCH_METRICS_ADDRESS", "0.0.0.0"),
        help="address of the metrics [PREFETCH_METRICS_ADDRESS, 0.0.0.0]",
    )
    sub.add_argument(
        "--stage",
        action="append",
        type=prefetch.staged_version,
        help="VERSION[@DIGEST] also kept on the node, ahead of a bump; repeatable"
        " [PREFETCH_STAGE, space-separated]",
    )

    sub = commands.add_parser("list", help="published versions of a model")
    sub.add_argument("--name", default=env("MODEL_NAME"), help="model name [MODEL_NAME]")
    sub.add_argument("--json", action="store_true", help="one JSON object per line")
    with_storage(sub)

    sub = commands.add_parser("check", help="pre-flight: is the pinned version in Blob?")
    with_model(sub, digest=True)
    with_storage(sub)

    sub = commands.add_parser("verify", help="check an installed version directory offline")
    sub.add_argument("directory", type=Path)
    return parser


def run(args: argparse.Namespace) -> int:
    if args.command == "verify":
        _, digest = verify_installed(args.directory)
        print(digest)
        return 0

    name = validate_name(_required(args.name, "--name", "MODEL_NAME"))
    version = None
    if args.command != "list":
        version = validate_version(_required(args.version, "--version", "MODEL_VERSION"))
    storage = StorageSettings.from_env(args.container, args.auth, args.account_url)
    transfer = TransferSettings.from_env()
    if args.command in ("fetch", "prefetch"):
        digest = validate_digest(args.digest)
        dest = _required(args.dest, "--dest", "MODEL_ROOT")
        cache = CacheSettings.from_env(args.keep, args.max_bytes, args.verify)
        if args.command == "prefetch":  # all checked before any download
            _required(args.metrics_port, "--metrics-port", "PREFETCH_METRICS_PORT")
            stage_env = os.environ.get("PREFETCH_STAGE", "").split()
            staged = args.stage or [prefetch.staged_version(text) for text in stage_env]
        container = container_client(storage, transfer)
        if args.command == "fetch":
            fetch(container, name, version, dest, digest, transfer, cache)
            return 0
        reports, held = [], []  # each version's fd is held until this process exits
        for each_version, each_digest in [(version, digest), *staged]:
            reports.append(fetch(container, name, each_version, dest, each_digest, transfer, cache))
            held.append(hold(dest / name / each_version))  # kept by every trim meanwhile
        prefetch.serve(reports, args.metrics_address, args.metrics_port)
    elif args.command == "publish":
        print(
            publish(
                container_client(storage, transfer),
                args.directory,
                name,
                version,
                force=args.force,
                model_format=args.model_format,
                publisher=args.publisher,
            )
        )
    elif args.command == "check":
        digest = validate_digest(args.digest)
        print(check_version(container_client(storage, transfer), name, version, digest))
    elif args.command == "list":
        for info in list_versions(container_client(storage, transfer), name):
            if args.json:
                print(json.dumps(asdict(info)))
            else:
                print(f"{info.version}\t{info.digest}\t{info.created}\t{info.bytes}")
    return 0


def _required(value, option: str, env_name: str):
    if value in (None, ""):
        raise UsageError(f"{option} is required (or set {env_name})")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    logs.configure(os.environ.get("MODEL_LOADER_LOG_LEVEL", "INFO"))
    try:
        return run(build_parser().parse_args(argv))
    except LoaderError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except OSError as exc:  # local disk: permissions, space, a missing directory
        where = exc.filename or "local file"
        print(f"{PROG}: error: {where}: {exc.strerror or exc}", file=sys.stderr)
        return UsageError.exit_code
    except KeyboardInterrupt:
        print(f"{PROG}: error: interrupted", file=sys.stderr)
        return 130
