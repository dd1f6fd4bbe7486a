"""S3 in the box, measured: a large object up and down through boto3's transfer manager against ``cp`` of the same
file on the same disk and against moto's server (the S3 stand-in the tests used before), and the p50 latency of
small-object PUT and GET; the server's memory while the large object passes.

Everything runs in one process tree on this machine, in the same run: the ratios compare like with like. Roost
is a real ``roost server`` (SQLite, the embedded store); moto is ``moto.server.ThreadedMotoServer`` in this
process (it keeps objects in memory).

    .venv/bin/python benchmarks/bench_s3.py [--size-mb 1024] [--small 200]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from helpers import KEY, SECRET, Server  # noqa: E402
from machine import cpu  # noqa: E402
from roost.system import free_port  # noqa: E402

#: boto3's defaults (8 MiB parts, 10 threads), as `aws s3 cp` and `upload_file` use them
TRANSFER = TransferConfig()


def client(url: str):
    return boto3.client(
        "s3",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id=KEY,
        aws_secret_access_key=SECRET,
        config=Config(retries={"max_attempts": 1}),
    )


def copy_durably(src: Path, dst: Path) -> None:
    shutil.copyfile(src, dst)
    with open(dst, "rb+") as f:
        os.fsync(f.fileno())


def md5_of(path: Path) -> str:
    digest = hashlib.md5()  # noqa: S324 - S3's ETag, not security
    with open(path, "rb") as f:
        while chunk := f.read(8 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS")) / 1024


def large(s3, big: Path, tmp: Path, bucket: str, watch_pid: int | None = None) -> tuple[float, float, float]:
    """Upload and download seconds of ``big``, and the peak RSS growth (MB) of ``watch_pid`` meanwhile."""
    s3.create_bucket(Bucket=bucket)
    peak = [0.0]
    done = threading.Event()
    base = rss_mb(watch_pid) if watch_pid else 0.0

    def watch() -> None:
        while watch_pid and not done.wait(0.1):
            peak[0] = max(peak[0], rss_mb(watch_pid) - base)

    t = threading.Thread(target=watch, daemon=True)
    t.start()
    up = timed(lambda: s3.upload_file(str(big), bucket, "big", Config=TRANSFER))
    down = timed(lambda: s3.download_file(bucket, "big", str(tmp / f"{bucket}.down"), Config=TRANSFER))
    done.set()
    t.join()
    (tmp / f"{bucket}.down").unlink()
    return up, down, peak[0]


def small(s3, bucket: str, n: int) -> tuple[float, float]:
    """p50 milliseconds of a 1 KiB PUT and GET."""
    s3.create_bucket(Bucket=bucket)
    body = os.urandom(1024)
    puts, gets = [], []
    for i in range(n):
        puts.append(timed(lambda i=i: s3.put_object(Bucket=bucket, Key=f"k{i}", Body=body)))
        gets.append(timed(lambda i=i: s3.get_object(Bucket=bucket, Key=f"k{i}")["Body"].read()))
    return statistics.median(puts) * 1000, statistics.median(gets) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mb", type=int, default=1024)
    parser.add_argument("--small", type=int, default=200, help="small objects for the latency")
    parser.add_argument("--no-moto", action="store_true")
    args = parser.parse_args()
    print(f"CPU: {cpu()}; large object {args.size_mb} MB; {args.small} small objects of 1 KiB")
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP")) as d:
        tmp = Path(d)
        big = tmp / "big"
        with open(big, "wb") as f:
            for _ in range(args.size_mb):
                f.write(os.urandom(1024 * 1024))
        subprocess.run(["sync"], check=False)
        cp_s = timed(lambda: shutil.copyfile(big, tmp / "copy"))
        (tmp / "copy").unlink()
        print(f"cp (the same disk): {args.size_mb / cp_s:7.1f} MB/s")
        durable_s = timed(lambda: copy_durably(big, tmp / "copy"))
        (tmp / "copy").unlink()
        print(f"cp + fsync (on disk, as the store leaves an object): {args.size_mb / durable_s:7.1f} MB/s")
        md5_s = timed(lambda: md5_of(big))
        print(
            f"MD5 of the file on one core (every byte of an upload is hashed so, for S3's ETag): "
            f"{args.size_mb / md5_s:7.1f} MB/s = {cp_s / md5_s:.2f}x cp"
        )

        srv = Server(tmp / "roost", roots=[str(tmp)]).start()
        try:
            s3 = client(srv.url)
            up, down, peak = large(s3, big, tmp, "roost-big", srv.proc.pid)
            put_ms, get_ms = small(s3, "roost-small", args.small)
        finally:
            srv.stop()
        rows = [("Roost", up, down, put_ms, get_ms, f"{peak:.0f} MB")]
        if not args.no_moto:
            from moto.server import ThreadedMotoServer

            port = free_port()
            import logging

            logging.getLogger("werkzeug").setLevel(logging.ERROR)
            moto = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
            moto.start()
            try:
                s3 = client(f"http://127.0.0.1:{port}")
                m_up, m_down, _ = large(s3, big, tmp, "moto-big")
                m_put, m_get = small(s3, "moto-small", args.small)
            finally:
                moto.stop()
            rows.append(("moto server", m_up, m_down, m_put, m_get, "in this process"))
        header = ("store", "up MB/s", "x cp", "down MB/s", "x cp", "PUT p50", "GET p50")
        print("{:12} {:>8} {:>6} {:>9} {:>6} {:>8} {:>8}  growth".format(*header))
        for name, u, dn, p, g, growth in rows:
            print(
                f"{name:12} {args.size_mb / u:8.1f} {cp_s / u:6.2f} {args.size_mb / dn:9.1f} {cp_s / dn:6.2f} "
                f"{p:6.1f}ms {g:6.1f}ms  {growth}"
            )
        print(
            f"Roost against cp + fsync: upload {durable_s / up:.2f}x, download {durable_s / down:.2f}x; "
            f"against one core's MD5: upload {md5_s / up:.2f}x"
        )
        if len(rows) == 2:
            (_, ru, rd, rp, rg, _), (_, mu, md, mp, mg, _) = rows
            print(
                f"Roost against moto: upload {mu / ru:.2f}x, download {md / rd:.2f}x, PUT p50 {mp / rp:.2f}x, "
                f"GET p50 {mg / rg:.2f}x (above 1: Roost faster)"
            )


if __name__ == "__main__":
    main()
