"""A real Azurite blob server (npm `azurite`, installed into ./node_modules) on a free port."""

import os
import shutil
import signal
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from local.net import free_port, wait_for_port

REPO_ROOT = Path(__file__).resolve().parents[1]
AZURITE_BIN = REPO_ROOT / "node_modules" / ".bin" / "azurite-blob"

# Azurite's well-known development account (public, documented by Microsoft).
ACCOUNT_NAME = "devstoreaccount1"
ACCOUNT_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)


@dataclass
class Azurite:
    """One Azurite blob process. Use as a context manager, or call start()/stop()."""

    port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None
    workdir: Path | None = None

    @property
    def account_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/{ACCOUNT_NAME}"

    def connection_string(self, account_key: str = ACCOUNT_KEY) -> str:
        return (
            f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT_NAME};"
            f"AccountKey={account_key};BlobEndpoint={self.account_url};"
        )

    def loader_env(self, **settings: str) -> dict[str, str]:
        """This process's env with MODEL_*/AZURE_* replaced by this server's connection
        string (and `settings`), ready to run model_loader from the repo."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("MODEL_", "AZURE_"))}
        env.update(
            AZURE_STORAGE_CONNECTION_STRING=self.connection_string(),
            PYTHONPATH=str(REPO_ROOT),
            **settings,
        )
        return env

    def start(self, timeout: float = 30.0) -> "Azurite":
        if not AZURITE_BIN.exists():
            raise RuntimeError(f"{AZURITE_BIN} is missing: run `make node`")
        if self.workdir is None:
            self.workdir = Path(tempfile.mkdtemp(prefix="azurite-"))
        self.process = subprocess.Popen(
            [
                str(AZURITE_BIN),
                "--blobHost",
                "127.0.0.1",
                "--blobPort",
                str(self.port),
                "--location",
                str(self.workdir),
                "--skipApiVersionCheck",
                "--loose",
                "--silent",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        wait_for_port(self.port, timeout)
        return self

    def stop(self, keep_data: bool = False) -> None:
        """Stop the server; keep_data=True lets a restart on the same port see the same blobs."""
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.process = None
        if not keep_data and self.workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None

    def __enter__(self) -> "Azurite":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
