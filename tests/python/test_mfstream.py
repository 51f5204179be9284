"""Tests of the Python module (python/mfstream), run by CTest (label python).

Exit 77 (skipped) when NumPy or pandas is missing. CTest sets MFSTREAM_LIBRARY
(the shared library), MFS_CLI (the mfstream program), PYTHONPATH and
MFS_TEST_TMP. Events are synthetic and seeded: a planted model of 60 users and
40 items.
"""
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

try:
    import numpy as np
    import pandas as pd
except ImportError as e:  # pragma: no cover
    print("skipped: %s (apt-get install python3-numpy python3-pandas)" % e)
    sys.exit(77)

import mfstream  # noqa: E402

CLI = os.environ.get("MFS_CLI", os.path.join(os.path.dirname(__file__), "..", "..", "build",
                                             "release", "mfstream"))
TMP = os.environ.get("MFS_TEST_TMP", tempfile.gettempdir())


def planted(n=3000, users=60, items=40, seed=1):
    """Seeded events of a planted rank-3 model, ratings 1..5."""
    g = np.random.default_rng(seed)
    p = g.normal(size=(users, 3))
    q = g.normal(size=(items, 3))
    u = g.integers(0, users, n)
    i = g.integers(0, items, n)
    r = np.clip(np.rint(3 + (p[u] * q[i]).sum(1) + g.normal(0, 0.3, n)), 1, 5)
    return u, i, r.astype(np.float32)


class Base(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="pytest-", dir=TMP)

    def tearDown(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def path(self, name):
        return os.path.join(self.dir, name)

    def read(self, name):
        with open(self.path(name), "rb") as f:
            return f.read()

    def write_tsv(self, name, u, i, r):
        p = self.path(name)
        with open(p, "w") as f:
            for a, b, c in zip(u, i, r):
                f.write("%d\t%d\t%g\n" % (a, b, c))
        return p

    def cli(self, *args):
        res = subprocess.run([CLI] + list(args), capture_output=True, text=True)
        self.assertEqual(res.returncode, 0, res.stderr)
        return res


class LearnPredict(Base):
    def test_learn__counts_and_scores_prequentially(self):
        u, i, r = planted()
        lr = mfstream.Learner(dim=8, curve_every=1000)
        self.assertEqual(lr.learn(u, i, r), len(r))
        st = lr.stats()
        self.assertEqual(st["events"], len(r))
        self.assertLess(st["prequential_rmse"], 1.2)
        m = lr.metrics()
        self.assertEqual(list(m.columns), ["events", "prequential_rmse", "prequential_mae",
                                           "window_rmse", "window_mae", "events_per_s",
                                           "seconds"])
        self.assertEqual(list(m.events), [1000, 2000, 3000])
        self.assertAlmostEqual(m.prequential_rmse.iloc[-1], st["prequential_rmse"], places=9)
        # the windows put together are the running figure
        sq = (m.window_rmse ** 2 * 1000).sum()
        self.assertAlmostEqual(np.sqrt(sq / 3000), st["prequential_rmse"], places=6)

    def test_predict__scalar_equals_vectorised_and_stays_in_range(self):
        u, i, r = planted()
        lr = mfstream.Learner(dim=8)
        lr.learn(u, i, r)
        v = lr.predict(u[:50], i[:50])
        self.assertEqual(v.shape, (50,))
        for j in range(50):
            self.assertEqual(lr.predict(int(u[j]), int(i[j])), float(v[j]))
        self.assertTrue(((v >= 1) & (v <= 5)).all())
        # a cold user predicts from what is known: mu + the item's side
        self.assertTrue(1 <= lr.predict("nobody", int(i[0])) <= 5)

    def test_tables__predict_is_mu_plus_biases_plus_dot(self):
        u, i, r = planted()
        lr = mfstream.Learner(dim=8, optimizer="sgd", range_link="clamp", rating_range=(1, 5))
        lr.learn(u, i, r)
        mu = lr.info()["mu"]
        uid = {s: k for k, s in enumerate(lr.user_ids)}
        iid = {s: k for k, s in enumerate(lr.item_ids)}
        P, Q, bu, bi = lr.user_factors, lr.item_factors, lr.user_bias, lr.item_bias
        self.assertEqual(P.shape, (60, 8))
        self.assertEqual(Q.shape, (40, 8))
        for a, b in zip(u[:200], i[:200]):
            ur, ir = uid[str(a)], iid[str(b)]
            want = np.clip(mu + bu[ur] + bi[ir] + float(P[ur] @ Q[ir]), 1, 5)
            self.assertAlmostEqual(lr.predict(int(a), int(b)), want, places=4)

    def test_learn__dataframe_equals_sequences(self):
        u, i, r = planted()
        a = mfstream.Learner(dim=8)
        a.learn(list(u), list(i), list(r))
        b = mfstream.Learner(dim=8)
        b.learn(pd.DataFrame({"user": u, "item": i, "rating": r}))
        c = mfstream.Learner(dim=8)
        c.learn([str(x) for x in u], np.array([str(x) for x in i], dtype=object), r)
        a.save(self.path("a.mfs"))
        b.save(self.path("b.mfs"))
        c.save(self.path("c.mfs"))
        data = [self.read(n) for n in ("a.mfs", "b.mfs", "c.mfs")]
        self.assertEqual(data[0], data[1])
        self.assertEqual(data[0], data[2])


    def test_learn__integer_ids_are_their_decimal_strings(self):
        lr = mfstream.Learner(dim=4)
        lr.learn(np.array([7, 3, 7]), np.array([10 ** 15, -2, 0]), [1, 2, 3])
        self.assertEqual(lr.user_ids, ["7", "3"])
        self.assertEqual(lr.item_ids, ["1000000000000000", "-2", "0"])
        lr.learn(pd.Series([3, 9], dtype="uint16"), [b"\xff", "\u00e9"], [4, 5])
        self.assertEqual(lr.user_ids, ["7", "3", "9"])
        self.assertEqual(lr.info()["items"], 5)


class SameAsCli(Base):
    def test_learn__equals_cli_train_save_byte_for_byte(self):
        u, i, r = planted(n=9000)  # more than one 4096-event batch
        tsv = self.write_tsv("ev.tsv", u, i, r)
        self.cli("train", "--dim", "16", "--quiet", "--save", self.path("cli.mfs"), tsv)
        cli = self.read("cli.mfs")
        # the CLI records its reader's position; the same bytes are given here
        pos = mfstream.load(self.path("cli.mfs")).position
        self.assertTrue(pos)
        lr = mfstream.Learner(dim=16)
        lr.learn(pd.DataFrame({"user": u, "item": i, "rating": r}))
        lr.save(self.path("py.mfs"), position=pos)
        self.assertEqual(self.read("py.mfs"), cli)
        # learn_file goes through the same reader: its own position, same file
        lf = mfstream.Learner(dim=16)
        self.assertEqual(lf.learn_file(tsv), len(r))
        lf.save(self.path("pyfile.mfs"))
        self.assertEqual(self.read("pyfile.mfs"), cli)
        # another setting gives another model (the comparison can fail)
        other = mfstream.Learner(dim=16, seed=7)
        other.learn(u, i, r)
        other.save(self.path("other.mfs"), position=pos)
        self.assertNotEqual(self.read("other.mfs"), cli)

    def test_learn_file__skips_and_names_malformed_lines(self):
        p = self.path("bad.tsv")
        with open(p, "w") as f:
            f.write("1\t2\t3\n1\t3\tx\n2\t2\t4\n")
        lr = mfstream.Learner(dim=4)
        self.assertEqual(lr.learn_file(p), 2)
        self.assertEqual(lr.skipped, 1)
        self.assertIn("bad.tsv:2:", lr.bad_records[0])
        with self.assertRaises(FileNotFoundError):
            lr.learn_file(self.path("absent.tsv"))
        junk = self.path("junk.tsv")
        with open(junk, "w") as f:
            f.write("".join("a\tb\tx%d\n" % k for k in range(100)))
        with self.assertWarnsRegex(RuntimeWarning, "nothing learned: all 99 records"):
            self.assertEqual(lr.learn_file(junk), 0)
        self.assertEqual(lr.skipped, 100)  # the first line reads as a header
        self.assertEqual(len(lr.bad_records), 5)


class Queries(Base):
    def setUp(self):
        super().setUp()
        u, i, r = planted()
        self.lr = mfstream.Learner(dim=8)
        self.lr.learn(u, i, r)

    def test_recommend__is_the_top_k_of_predict(self):
        items = self.lr.item_ids
        for user in ("0", "7", "33"):
            rec = self.lr.recommend(user, k=5, include_seen=True)
            scores = self.lr.predict([user] * len(items), items)
            best = [items[j] for j in np.argsort(-scores, kind="stable")[:5]]
            self.assertEqual(set(rec.item), set(best))
            self.assertTrue((np.diff(rec.score) <= 0).all())
            np.testing.assert_allclose(rec.score, np.sort(scores)[::-1][:5], rtol=1e-5)

    def test_recommend__leaves_out_the_history(self):
        seen = self.lr.recommend("0", k=40, include_seen=True)
        unseen = self.lr.recommend("0", k=40)
        self.assertLess(len(unseen), len(seen))

    def test_similar__excludes_the_item_and_ranks_by_cosine(self):
        s = self.lr.similar("3", k=5)
        self.assertNotIn("3", list(s.item))
        Q = self.lr.item_factors
        ids = self.lr.item_ids
        q = Q[ids.index("3")]
        cos = Q @ q / (np.linalg.norm(Q, axis=1) * np.linalg.norm(q))
        cos[ids.index("3")] = -2
        self.assertEqual(list(s.item), [ids[j] for j in np.argsort(-cos)[:5]])

    def test_queries__titles_come_with_the_ids(self):
        self.lr.set_titles({str(k): "film %d" % k for k in range(40)})
        s = self.lr.similar(3, k=2)
        self.assertEqual(list(s.title), ["film " + x for x in s.item])

    def test_unknown_ids__raise_key_error_or_cold_list(self):
        with self.assertRaises(KeyError):
            self.lr.recommend("nobody")
        with self.assertRaises(KeyError):
            self.lr.similar("no such item")
        cold = self.lr.recommend("nobody", k=3, cold=True)
        self.assertEqual(len(cold), 3)


class SaveLoadServe(Base):
    def test_load__zero_copy_views_that_keep_the_model_alive(self):
        u, i, r = planted()
        lr = mfstream.Learner(dim=8)
        lr.learn(u, i, r)
        lr.save(self.path("m.mfs"))
        m = mfstream.load(self.path("m.mfs"))
        self.assertEqual(m.predict("5", "6"), lr.predict("5", "6"))
        q = m.item_factors
        self.assertFalse(q.flags.writeable)
        np.testing.assert_array_equal(q, lr.item_factors)
        np.testing.assert_array_equal(m.user_bias, lr.user_bias)
        with self.assertRaises(ValueError):
            m.close()  # a view is alive
        want = q.copy()
        del m
        os.unlink(self.path("m.mfs"))
        np.testing.assert_array_equal(q, want)  # the view kept the model
        # a learner's tables are copies: learning does not move them under the caller
        f = lr.item_factors
        self.assertTrue(f.flags.writeable and f.flags.owndata)

    def test_learner_load__continues_learning(self):
        u, i, r = planted()
        a = mfstream.Learner(dim=8)
        a.learn(u, i, r)
        a.save(self.path("a.mfs"))
        b = mfstream.Learner.load(self.path("a.mfs"))
        b.learn(u[:100], i[:100], r[:100])
        self.assertEqual(b.info()["events"], len(r) + 100)

    def test_server__on_a_checkpoint_directory(self):
        u, i, r = planted()
        tsv = self.write_tsv("ev.tsv", u, i, r)
        ck = self.path("ck")
        os.mkdir(ck)
        self.cli("train", "--dim", "8", "--quiet", "--checkpoint-dir", ck, tsv)
        with mfstream.Server(ck) as s:
            self.assertEqual(s.info()["events"], len(r))
            rec = s.recommend("1", k=4)
            self.assertEqual(len(rec), 4)
            self.assertFalse(s.refresh())
        with self.assertRaises(FileNotFoundError):
            mfstream.Server(self.path("nothing"))


class BadInput(Base):
    def test_learn__rejects_what_it_cannot_learn(self):
        lr = mfstream.Learner(dim=4)
        with self.assertRaisesRegex(ValueError, "items has 2 entries but ratings has 3"):
            lr.learn(["a", "b", "c"], ["x", "y"], [1, 2, 3])
        with self.assertRaisesRegex(ValueError, r"ratings\[1\] is nan"):
            lr.learn(["a", "b"], ["x", "y"], [1, float("nan")])
        with self.assertRaisesRegex(TypeError, "floating-point IDs"):
            lr.learn(np.array([1.0, 2.0]), ["x", "y"], [1, 2])
        with self.assertRaisesRegex(ValueError, "1 to 255"):
            lr.learn(["a" * 256], ["x"], [1])
        with self.assertRaisesRegex(ValueError, "missing ID"):
            lr.learn(pd.Series(["a", None]), ["x", "y"], [1, 2])
        with self.assertRaisesRegex(KeyError, "lacks column rating"):
            lr.learn(pd.DataFrame({"user": [1], "item": [2]}))
        self.assertEqual(lr.stats()["events"], 0)  # nothing half-learned

    def test_learner__rejects_bad_settings(self):
        with self.assertRaisesRegex(ValueError, "optimizer"):
            mfstream.Learner(optimizer="adam")
        with self.assertRaisesRegex(ValueError, "dim"):
            mfstream.Learner(dim=-1)
        with self.assertRaisesRegex(ValueError, "rating_range"):
            mfstream.Learner(rating_range=5)
        with self.assertRaises(ValueError):
            mfstream.Learner(dim=0)  # the library's check, its reason

    def test_load__corrupt_file_is_refused_with_its_reason(self):
        p = self.path("junk.mfs")
        with open(p, "wb") as f:
            f.write(b"not a model" * 100)
        with self.assertRaises(mfstream.MfsError) as cm:
            mfstream.load(p)
        self.assertIn("junk.mfs", str(cm.exception))

    def test_defaults__are_the_cli_train_defaults(self):
        d = mfstream.defaults()
        self.assertEqual(d["dim"], 384)
        self.assertEqual(d["history"], 128)
        lr = mfstream.Learner()
        self.assertEqual(lr.config()["dim"], 384)


try:
    import matplotlib  # noqa: F401
    HAVE_MPL = True
except ImportError:
    HAVE_MPL = False


@unittest.skipUnless(HAVE_MPL, "needs python3-matplotlib")
class Pictures(Base):
    def test_plot__curve_and_pca_map_are_written(self):
        sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                        "tools"))
        import plot
        u, i, r = planted()
        tsv = self.write_tsv("ev.tsv", u, i, r)
        curve = self.path("c.tsv")
        self.cli("train", "--dim", "8", "--quiet", "--curve", curve, "--curve-every", "500",
                 "--save", self.path("m.mfs"), tsv)
        self.assertEqual(plot.main(["curve", curve, "-o", self.path("c.png")]), 0)
        self.assertEqual(self.read("c.png")[:8], b"\x89PNG\r\n\x1a\n")
        titles = self.path("titles.tsv")
        with open(titles, "w") as f:
            f.write("".join("%d\tfilm %d\n" % (k, k) for k in range(40)))
        self.assertEqual(plot.main(["pca", self.path("m.mfs"), "--titles", titles, "--items",
                                    "10", "-o", self.path("p.svg")]), 0)
        svg = self.read("p.svg")
        self.assertIn(b"<svg", svg[:500])
        self.assertEqual(svg.count(b"film "), 10)  # ten titles drawn
        # a file that is not a curve is refused with its name
        self.assertEqual(plot.main(["curve", tsv, "-o", self.path("x.png")]), 1)


if __name__ == "__main__":
    unittest.main(verbosity=2)
