import hashlib
import os
import random

from model_loader.download import HashingFile


def test_out_of_order_range_writes_hash_like_the_whole_file(tmp_path):
    content = os.urandom(10 * 65536 + 17)
    ranges = [(start, content[start : start + 65536]) for start in range(0, len(content), 65536)]
    random.Random(7).shuffle(ranges)
    path = tmp_path / "blob"
    fd = os.open(path, os.O_RDWR | os.O_CREAT)
    try:
        sink = HashingFile(fd)
        for start, data in ranges:
            sink.seek(start)
            sink.write(data)
        digest = sink.hexdigest()
    finally:
        os.close(fd)

    assert path.read_bytes() == content
    assert digest == hashlib.sha256(content).hexdigest()
