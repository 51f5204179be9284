#!/usr/bin/python3
"""Python Learner.learn from a DataFrame against `mfstream train` on the same events.

    bench/bench_python.py [BUILD_DIR] [EVENTS] [DIM] [RUNS]
    (defaults: build/release 1000000 64 3)

Generates a seeded planted stream with `mfstream gen` (integer IDs, as a
pandas user has them), trains it with the CLI (reading and parsing the TSV,
--save), reads the TSV into a DataFrame once (not timed), then times
Learner(dim).learn(df): the whole call (IDs to strings, the mfs_event array,
the library's learn) and the library's part alone. Prints the median of RUNS
runs of each, the overhead, and whether the Python model file equals the
CLI's byte for byte (saved with the CLI model's reader position).
"""
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
build = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "..", "build", "release")
events = sys.argv[2] if len(sys.argv) > 2 else "1000000"
dim = sys.argv[3] if len(sys.argv) > 3 else "64"
runs = int(sys.argv[4]) if len(sys.argv) > 4 else 3
os.environ.setdefault("MFSTREAM_LIBRARY", os.path.join(build, "libmfstream.so"))
sys.path.insert(0, os.path.join(HERE, "..", "python"))

import pandas as pd  # noqa: E402

import mfstream  # noqa: E402

cli = os.path.join(build, "mfstream")
tmp = tempfile.mkdtemp(prefix="bench-python-")
tsv = os.path.join(tmp, "ev.tsv")
subprocess.run([cli, "gen", "--events", events, "--ids", "int", "--seed", "1", "--output", tsv],
               check=True, stdout=subprocess.DEVNULL)

cli_s = []
for _ in range(runs):
    t = time.perf_counter()
    subprocess.run([cli, "train", "--quiet", "--dim", dim, "--save", os.path.join(tmp, "cli.mfs"),
                    tsv], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    cli_s.append(time.perf_counter() - t)

df = pd.read_csv(tsv, sep="\t", header=None, names=["user", "item", "rating", "time"])
n = len(df)
py_s, lib_s = [], []
for _ in range(runs):
    lr = mfstream.Learner(dim=int(dim))
    t = time.perf_counter()
    lr.learn(df)
    py_s.append(time.perf_counter() - t)
    lib_s.append(lr.stats()["seconds"])

pos = mfstream.load(os.path.join(tmp, "cli.mfs")).position
lr.save(os.path.join(tmp, "py.mfs"), position=pos)
with open(os.path.join(tmp, "cli.mfs"), "rb") as f:
    a = f.read()
with open(os.path.join(tmp, "py.mfs"), "rb") as f:
    b = f.read()

c, p, lb = statistics.median(cli_s), statistics.median(py_s), statistics.median(lib_s)
print("events %d, dim %s, user/item dtypes %s/%s, kernel %s, median of %d" % (
    n, dim, df.user.dtype, df.item.dtype, lr.info()["kernel"], runs))
print("cli train (whole process: read, parse, learn, save)  %.3f s  %.2fM events/s" % (c, n / c / 1e6))
print("python learn(df) (whole call)                         %.3f s  %.2fM events/s" % (p, n / p / 1e6))
print("  of it in the library's mfs_model_learn              %.3f s  %.2fM events/s" % (lb, n / lb / 1e6))
print("  conversion (IDs, mfs_event array): %.3f s = %.0f ns/event" % (p - lb, (p - lb) / n * 1e9))
print("python learn(df) vs cli train: %.2fx the time" % (p / c))
print("model file equal to the CLI's byte for byte: %s (%d bytes)" % (a == b, len(a)))
subprocess.run(["rm", "-rf", tmp])
sys.exit(0 if a == b else 1)
