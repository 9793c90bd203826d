"""Settings read once at start from the environment the chart sets."""

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class AppConfig:
    model_root: Path
    model_name: str
    model_version: str
    model_digest: str = ""
    max_batch_size: int = 64
    max_request_bytes: int = 1024 * 1024
    intra_op_threads: int = 1

    @property
    def model_dir(self) -> Path:
        return self.model_root / self.model_name / self.model_version

    @classmethod
    def from_env(cls) -> "AppConfig":
        env = os.environ
        return cls(
            model_root=Path(env.get("MODEL_ROOT", "/models")),
            model_name=env.get("MODEL_NAME", ""),
            model_version=env.get("MODEL_VERSION", ""),
            model_digest=env.get("MODEL_DIGEST", ""),
            max_batch_size=int(env.get("MAX_BATCH_SIZE", "64")),
            max_request_bytes=int(env.get("MAX_REQUEST_BYTES", str(1024 * 1024))),
            intra_op_threads=int(env.get("ORT_INTRA_OP_THREADS", "1")),
        )
