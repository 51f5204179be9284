#!/usr/bin/python3
"""fastbook chapter 8's walk-through, with mfstream's Python module on MovieLens 100K.

    tools/fastbook_ch8.py [DATA_DIR] [--out docs]

DATA_DIR holds ml-100k/ (default $MFS_DATA_DIR, else ../shared/data beside the
checkout). Learns u.data in one pass (its file order, test-then-train), prints
the movies with the lowest and highest biases, the movies nearest Silence of
the Lambs, and writes two pictures to --out: curve.png (the prequential curve
of `mfstream train --curve` on the same file, when the CLI is built, else the
module's metrics()) and pca.png (the PCA map of the movie factors).
"""
import argparse
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "python"))
sys.path.insert(0, HERE)

import pandas as pd  # noqa: E402

import mfstream  # noqa: E402
import plot  # noqa: E402


def main():
    root = os.path.join(HERE, "..")
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("data", nargs="?", default=os.environ.get(
        "MFS_DATA_DIR", os.path.join(root, "..", "shared", "data")))
    ap.add_argument("--out", default=os.path.join(root, "docs"))
    a = ap.parse_args()
    d = os.path.join(a.data, "ml-100k")
    if not os.path.exists(os.path.join(d, "u.data")):
        sys.exit("fastbook_ch8.py: no %s/u.data (see README: MovieLens 100K)" % d)
    os.makedirs(a.out, exist_ok=True)
    pd.set_option("display.width", 120)

    ratings = pd.read_csv(os.path.join(d, "u.data"), sep="\t", header=None,
                          names=["user", "item", "rating", "time"])
    print(ratings.head(3).to_string(index=False), "\n")

    learn = mfstream.Learner(curve_every=2000, titles=os.path.join(d, "u.item"))
    learn.learn(ratings)
    st = learn.stats()
    print("one pass over %d events: prequential RMSE %.4f, MAE %.4f\n"
          % (st["events"], st["prequential_rmse"], st["prequential_mae"]))

    items = learn.items_frame()
    rated = items[items.events >= 20]  # biases of movies with some support
    print("lowest item biases (movies with 20+ ratings):")
    print(rated.nsmallest(5, "bias")[["title", "bias", "events"]].to_string(index=False))
    print("\nhighest item biases:")
    print(rated.nlargest(5, "bias")[["title", "bias", "events"]].to_string(index=False))

    lambs = items.item[items.title == "Silence of the Lambs, The (1991)"].iloc[0]
    print("\nnearest Silence of the Lambs (cosine of the factors):")
    print(learn.similar(lambs, k=5)[["title", "score"]].to_string(index=False))

    print("\nrecommended for user 42 (its recent ratings left out):")
    print(learn.recommend(42, k=5)[["title", "score"]].to_string(index=False))

    cli = os.path.join(root, "build", "release", "mfstream")
    curve = os.path.join(tempfile.mkdtemp(prefix="mfs-ch8-"), "curve.tsv")
    if os.access(cli, os.X_OK):
        r = subprocess.run([cli, "train", "--quiet", "--curve", curve, "--curve-every", "2000",
                            os.path.join(d, "u.data")], stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE, text=True)
        if r.returncode != 0:
            sys.exit("fastbook_ch8.py: %s train failed:\n%s" % (cli, r.stderr))
        df = plot.read_curve(curve)
    else:
        df = learn.metrics()
    plot.plot_curve(df, os.path.join(a.out, "curve.png"),
                    "MovieLens 100K, one pass in file order: prequential RMSE")
    model = os.path.join(os.path.dirname(curve), "ml100k.mfs")
    learn.save(model)
    plot.pca_map(mfstream.load(model), os.path.join(a.out, "pca.png"), items=50, among=1000,
                 titles=os.path.join(d, "u.item"))
    print("\nwrote %s and %s" % (os.path.join(a.out, "curve.png"), os.path.join(a.out, "pca.png")))


if __name__ == "__main__":
    main()
