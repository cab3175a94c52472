"""SeaweedFS, the local S3 server that keeps the broker's log: command line, identity, bucket."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

from deploy.local.config import BUCKET, GRPC_OFFSET, StackConfig
from deploy.local.credentials import S3Credentials, write_private


def s3_identity_config(creds: S3Credentials) -> str:
    """The ``-s3.config`` file: one identity with all rights, keys from the state folder."""
    identity = {
        "name": "lemma",
        "credentials": [{"accessKey": creds.access_key, "secretKey": creds.secret_key}],
        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
    }
    return json.dumps({"identities": [identity]}, indent=2) + "\n"


def server_argv(weed: str, config: StackConfig) -> list[str]:
    state = config.state_dir
    return [
        weed,
        "server",
        f"-dir={state / 'seaweedfs'}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        f"-master.port={config.master_port}",
        f"-master.port.grpc={config.master_port + GRPC_OFFSET}",
        "-master.telemetry=false",
        "-master.electionTimeout=1s",  # a lone master: 10 s (the default) to re-elect itself on restart
        "-master.volumeSizeLimitMB=1024",
        "-volume.max=0",
        f"-volume.port={config.volume_port}",
        f"-volume.port.grpc={config.volume_port + GRPC_OFFSET}",
        "-volume.preStopSeconds=1",
        f"-filer.port={config.filer_port}",
        f"-filer.port.grpc={config.filer_port + GRPC_OFFSET}",
        "-s3",
        f"-s3.port={config.s3_port}",
        f"-s3.port.grpc={config.s3_port + GRPC_OFFSET}",
        f"-s3.config={state / 's3.json'}",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
    ]


def write_s3_config(config: StackConfig, creds: S3Credentials) -> None:
    write_private(config.state_dir / "s3.json", s3_identity_config(creds))


def create_bucket(weed: str, config: StackConfig, timeout: float = 30.0) -> None:
    """Create the bucket through ``weed shell``; fine when it exists. Retries while the master
    is still electing itself leader."""
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        try:
            done = subprocess.run(
                [weed, "shell", f"-master=127.0.0.1:{config.master_port}"],
                input=f"s3.bucket.create -name {BUCKET}\n",
                capture_output=True,
                text=True,
                timeout=10,
                cwd=config.state_dir,
            )
            last = (done.stdout + done.stderr).strip()
        except subprocess.TimeoutExpired:
            last = "weed shell did not answer within 10s"
        if f"created bucket {BUCKET}" in last or "already exists" in last:
            return
        time.sleep(0.5)
    raise RuntimeError(f"could not create the S3 bucket {BUCKET!r}: {last[-500:]}")


def data_dir(config: StackConfig) -> Path:
    return config.state_dir / "seaweedfs"
