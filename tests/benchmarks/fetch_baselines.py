"""Standalone download baselines for the fetch benchmark, one per process.

Run by tests/benchmarks/test_fetch_bench.py; imports nothing of ours so that the KServe
baseline can run in its own virtualenv.

    python fetch_baselines.py naive  CONNECTION_STRING CONTAINER BLOB OUT_FILE
    python fetch_baselines.py kserve CONNECTION_STRING CONTAINER BLOB OUT_DIR
    python fetch_baselines.py limit  BLOB_SAS_URL SIZE CONCURRENCY RANGE_BYTES
    python fetch_baselines.py write  OUT_FILE SIZE
"""

import asyncio
import http.client
import os
import sys
import threading
import urllib.parse


def naive(connection_string: str, container: str, blob: str, out_file: str) -> None:
    """What most code does: the whole blob in memory, then one write."""
    from azure.storage.blob import BlobServiceClient

    service = BlobServiceClient.from_connection_string(connection_string)
    data = service.get_blob_client(container, blob).download_blob().readall()
    with open(out_file, "wb") as handle:
        handle.write(data)


def kserve(connection_string: str, container: str, blob: str, out_dir: str) -> None:
    """KServe's storage initializer core, as its _download_azure_blob_async drives it."""
    from azure.storage.blob.aio import BlobServiceClient
    from kserve_storage.kserve_storage import _AZURE_MAX_FILE_CONCURRENCY, Storage

    async def run() -> None:
        async with BlobServiceClient.from_connection_string(connection_string) as service:
            container_client = service.get_container_client(container)
            properties = await container_client.get_blob_client(blob).get_blob_properties()
            prefix = blob.rsplit("/", 1)[0]
            semaphore = asyncio.Semaphore(_AZURE_MAX_FILE_CONCURRENCY)
            await Storage._download_single_blob_async(
                container_client, properties, out_dir, prefix, semaphore
            )

    asyncio.run(run())


def limit(sas_url: str, size: str, concurrency: str, range_bytes: str) -> None:
    """Raw parallel ranged GETs over keep-alive connections; bytes read and discarded."""
    size, workers, step = int(size), int(concurrency), int(range_bytes)
    url = urllib.parse.urlsplit(sas_url)
    path = f"{url.path}?{url.query}"
    offsets = iter(range(0, size, step))
    lock = threading.Lock()
    errors: list[str] = []

    def worker() -> None:
        connection = http.client.HTTPConnection(url.hostname, url.port, timeout=60)
        buffer = memoryview(bytearray(1024 * 1024))
        while True:
            with lock:
                start = next(offsets, None)
            if start is None:
                break
            end = min(start + step, size) - 1
            connection.request(
                "GET", path, headers={"Range": f"bytes={start}-{end}", "x-ms-version": "2021-08-06"}
            )
            response = connection.getresponse()
            if response.status != 206:
                errors.append(f"HTTP {response.status}")
                break
            while response.readinto(buffer):
                pass
        connection.close()

    threads = [threading.Thread(target=worker) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise SystemExit(f"limit: {errors[0]}")


def write(out_file: str, size: str) -> None:
    """The local disk's ceiling: SIZE bytes written to the destination, no network at all."""
    block = bytes(8 * 1024 * 1024)
    fd = os.open(out_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        for offset in range(0, int(size), len(block)):
            os.pwrite(fd, block, offset)
    finally:
        os.close(fd)


if __name__ == "__main__":
    {"naive": naive, "kserve": kserve, "limit": limit, "write": write}[sys.argv[1]](*sys.argv[2:])
