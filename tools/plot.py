#!/usr/bin/python3
"""Pictures of mfstream runs (matplotlib, Debian python3-matplotlib).

    tools/plot.py curve CURVE.tsv [-o curve.png]      # from `train --curve CURVE.tsv`
    tools/plot.py pca MODEL --titles u.item [-o pca.svg] [--items 50] [--among 1000]

curve: the running and windowed prequential RMSE against events, events/s
below. pca: fastbook chapter 8's map of movie factors: the item factors of
the `among` items with the most events, projected on their first principal
components, `items` of them drawn with their titles. The output format
follows the name's extension (.png, .svg, .pdf). Exit 2 on a usage error, 1
when a file cannot be read.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))


def _pyplot():
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        sys.exit("plot.py: needs matplotlib (apt-get install python3-matplotlib)")
    return plt


def read_curve(path):
    import pandas as pd
    df = pd.read_csv(path, sep="\t")
    need = {"events", "prequential_rmse", "window_rmse", "events_per_s"}
    if not need <= set(df.columns):
        raise ValueError("%s: not a curve (train --curve): it lacks %s"
                         % (path, ", ".join(sorted(need - set(df.columns)))))
    return df


def plot_curve(df, out, title="prequential RMSE"):
    plt = _pyplot()
    fig, (a, b) = plt.subplots(2, 1, figsize=(7, 5), sharex=True,
                               gridspec_kw={"height_ratios": [3, 1]})
    a.plot(df.events, df.window_rmse, lw=1, alpha=0.6, label="window")
    a.plot(df.events, df.prequential_rmse, lw=2, label="running")
    a.set_ylabel("RMSE (predicted before learned)")
    a.set_title(title)
    a.legend()
    a.grid(alpha=0.3)
    b.plot(df.events, df.events_per_s / 1e6, lw=1, color="gray")
    b.set_ylabel("M events/s")
    b.set_xlabel("events")
    b.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def pca_map(model, out, items=50, among=1000, titles=None):
    """fastbook's PCA of the movie factors (the `among` most-rated items)."""
    import numpy as np
    plt = _pyplot()
    df = model.items_frame(titles)
    Q = np.asarray(model.item_factors, dtype=np.float64)
    order = np.argsort(-df["events"].to_numpy(), kind="stable") if "events" in df else \
        np.arange(len(df))
    top = order[:among]
    X = Q[top] - Q[top].mean(0)
    _, _, vt = np.linalg.svd(X, full_matrices=False)
    proj = X @ vt[:3].T
    fac0, fac2 = proj[:, 0], proj[:, 2 if proj.shape[1] > 2 else 1]
    names = df["title"] if "title" in df else df["item"]
    fig = plt.figure(figsize=(12, 12))
    sel = np.arange(min(items, len(top)))
    plt.scatter(fac0[sel], fac2[sel])
    for j in sel:
        plt.text(fac0[j], fac2[j], str(names.iloc[top[j]]), color=np.random.default_rng(
            int(j)).random(3) * 0.7, fontsize=11)
    plt.xlabel("first principal component of the item factors")
    plt.ylabel("third principal component")
    plt.title("movie factors, PCA (the %d most-rated movies of %d)" % (len(sel), len(top)))
    fig.savefig(out, dpi=80, bbox_inches="tight")
    plt.close(fig)
    return proj, top


def main(argv=None):
    ap = argparse.ArgumentParser(prog="plot.py", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="what", required=True)
    c = sub.add_parser("curve", help="a train --curve TSV")
    c.add_argument("curve")
    c.add_argument("-o", "--output", default="curve.png")
    p = sub.add_parser("pca", help="PCA map of a model's item factors")
    p.add_argument("model")
    p.add_argument("--titles")
    p.add_argument("--items", type=int, default=50)
    p.add_argument("--among", type=int, default=1000)
    p.add_argument("-o", "--output", default="pca.png")
    a = ap.parse_args(argv)
    try:
        if a.what == "curve":
            plot_curve(read_curve(a.curve), a.output)
        else:
            import mfstream
            if a.items < 1 or a.among < 1:
                ap.error("--items and --among must be at least 1")
            pca_map(mfstream.load(a.model), a.output, a.items, a.among, a.titles)
    except (OSError, ValueError, RuntimeError) as e:
        print("plot.py: %s" % e, file=sys.stderr)
        return 1
    print("plot.py: wrote %s" % a.output, file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
