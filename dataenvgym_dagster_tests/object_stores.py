"""Object stores on this machine for the tests: moto's S3 server and an emulator of the GCS JSON API.

Both are real HTTP servers on a free loopback port; s3fs and gcsfs talk to them exactly as they
talk to AWS and Google, pointed there by the standard variables (``AWS_ENDPOINT_URL``,
``STORAGE_EMULATOR_HOST``) that docs/cluster.md documents for other S3- or GCS-compatible endpoints.
"""

from __future__ import annotations

import importlib
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager

# Fake credentials: moto accepts any; they keep botocore from looking for real ones.
S3_VARIABLES = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


@contextmanager
def environment(**variables: str) -> Iterator[None]:
    """Set environment variables for the block, then restore the previous values."""
    saved = {name: os.environ.get(name) for name in variables}
    os.environ.update(variables)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def s3_server(bucket: str) -> Iterator[str]:
    """moto's S3 server with ``bucket`` created; ``AWS_ENDPOINT_URL`` points there. Yields the endpoint URL."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=_free_port(), verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    try:
        with environment(**S3_VARIABLES, AWS_ENDPOINT_URL=endpoint):
            import s3fs

            s3fs.S3FileSystem(skip_instance_cache=True).mkdir(bucket)
            yield endpoint
    finally:
        server.stop()


@contextmanager
def gcs_server(bucket: str) -> Iterator[str]:
    """``gcp-storage-emulator`` (in memory) with ``bucket``; ``STORAGE_EMULATOR_HOST`` points there.

    gcsfs's experimental zonal-bucket support probes buckets over gRPC, which the emulator does
    not serve; it is turned off (before gcsfs picks its class) so gcsfs uses the JSON API only."""
    from gcp_storage_emulator.server import create_server

    port = _free_port()
    server = create_server("127.0.0.1", port, in_memory=True, default_bucket=bucket)
    server.start()
    try:
        with environment(STORAGE_EMULATOR_HOST=f"http://127.0.0.1:{port}", GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT="false"):
            import gcsfs

            importlib.reload(gcsfs)
            yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()
