"""Sampling's file checks on pydicom-data's real chest CR (RG1_UNCR.dcm, 1955 x 1841, 16-bit, 7.2 MB).

`decode` (runner.data.imaging.load_image, what `sampling.verify: decode` runs) against `header`
(runner.data.imaging.verify_header: header + pixel length, no decoding). Prints min / median ms per file over --runs
rounds of --calls calls each (the file is in the page cache after the first read, as for a re-sampled task).

    .venv/bin/python benchmarks/bench_verify.py [--runs 3] [--calls 10]
"""

from __future__ import annotations

import argparse
import os
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--calls", type=int, default=10)
    args = parser.parse_args()

    from pydicom.data import get_testdata_file

    from runner.data.imaging import load_image, verify_header

    path = get_testdata_file("RG1_UNCR.dcm")
    load_image(path)  # warm imports and the page cache
    print(f"{path} ({os.path.getsize(path) / 1e6:.1f} MB), {os.cpu_count()} cores, load average "
          f"{os.getloadavg()[0]:.1f}; ms per file, min / median of {args.runs} rounds of {args.calls}")
    for name, check in (("decode", load_image), ("header", verify_header)):
        rounds = []
        for _ in range(args.runs):
            t0 = time.perf_counter()
            for _ in range(args.calls):
                check(path)
            rounds.append((time.perf_counter() - t0) / args.calls * 1e3)
        rounds.sort()
        print(f"{name:7} {rounds[0]:8.2f} / {rounds[len(rounds) // 2]:8.2f}")


if __name__ == "__main__":
    main()
