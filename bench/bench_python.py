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
import json
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

cli_s, cli_loop = [], []
for _ in range(runs):
    t = time.perf_counter()
    r = subprocess.run([cli, "train", "--quiet", "--dim", dim, "--save",
                        os.path.join(tmp, "cli.mfs"), tsv], check=True, capture_output=True,
                       text=True)
    cli_s.append(time.perf_counter() - t)
    cli_loop.append(json.loads(r.stdout)["seconds"])  # reading, parsing and learning

t = time.perf_counter()
df = pd.read_csv(tsv, sep="\t", header=None, names=["user", "item", "rating", "time"])
csv_s = time.perf_counter() - t
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

c, cl = statistics.median(cli_s), statistics.median(cli_loop)
p, lb = statistics.median(py_s), statistics.median(lib_s)
print("events %d, dim %s, user/item dtypes %s/%s, kernel %s, median of %d" % (
    n, dim, df.user.dtype, df.item.dtype, lr.info()["kernel"], runs))
print("cli train, its summary's seconds (read, parse, learn)  %.3f s  %.2fM events/s" % (cl, n / cl / 1e6))
print("cli train, whole process (+ model setup, --save, exit) %.3f s" % c)
print("pandas read_csv of the same file (once, not in learn)  %.3f s" % csv_s)
print("python learn(df), whole call                           %.3f s  %.2fM events/s" % (p, n / p / 1e6))
print("  of it in the library's mfs_model_learn               %.3f s  %.2fM events/s" % (lb, n / lb / 1e6))
print("  Python's overhead (IDs, mfs_event array): %.3f s = %.0f ns/event, %.0f%% of the call"
      % (p - lb, (p - lb) / n * 1e9, 100 * (p - lb) / p))
print("python learn(df) / cli train seconds: %.2f" % (p / cl))
print("model file equal to the CLI's byte for byte: %s (%d bytes)" % (a == b, len(a)))
subprocess.run(["rm", "-rf", tmp])
sys.exit(0 if a == b else 1)
