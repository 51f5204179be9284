"""mfstream for Python: learn, query and serve mfstream models from NumPy and pandas.

A thin ctypes layer over libmfstream (include/mfstream.h); nothing is computed
here that the library computes. The models are the CLI's: the same events,
settings and order give the same model file, byte for byte, as
`mfstream train ... --save`.

    import mfstream
    lr = mfstream.Learner(dim=64)              # the CLI's train defaults otherwise
    lr.learn(df.user, df.item, df.rating)      # or lr.learn(df), or lr.learn_file(path)
    lr.predict("42", "50")                     # a float; arrays give arrays
    lr.recommend("42", k=10)                   # a DataFrame: item, score[, title]
    lr.similar("50", k=5)
    lr.save("model.mfs"); m = mfstream.load("model.mfs")
    mfstream.Server("ckpts").recommend("42")   # the newest checkpoint of a directory

IDs are byte strings, as in files: str is UTF-8 encoded, integers are written
in decimal ("1" as u.data has it), bytes are taken as they are. Floating-point
IDs are refused (1.0 would become "1.0", not the file's "1").

Factor and bias tables (user_factors, item_factors, user_bias, item_bias) are
zero-copy, read-only NumPy views on a Model (loaded with mfstream.load: it
never changes, and the arrays keep it alive), and copies on a Learner, whose
next learn call may move its tables.
"""
import ctypes
import errno
import math
import os
import shutil
import tempfile
import time
import warnings

import numpy as np

from . import _lib
from ._lib import lib

__all__ = ["Learner", "Model", "Server", "MfsError", "load", "defaults", "library_path"]

library_path = _lib.path
_BATCH = 4096  # the CLI reader's batch: --rating-range auto reads the first one


class MfsError(RuntimeError):
    """A failure of the library: .code is the MFS_E_* code (positive), .name its
    name ("MFS_E_IO"), str() the library's message (file:line: reason)."""

    def __init__(self, code, message=""):
        code = abs(int(code))
        self.code = code
        self.name = lib.mfs_error_name(code).decode()
        super().__init__(message or self.name)


def _diag_message(d):
    buf = ctypes.create_string_buffer(1024)
    lib.mfs_diag_format(ctypes.byref(d), buf, len(buf))
    return buf.value.decode("utf-8", "replace")


def _check(rc, d=None, what=""):
    if rc >= 0:
        return rc
    msg = _diag_message(d) if d is not None and (d.reason or d.path) else ""
    name = lib.mfs_error_name(int(rc)).decode()
    text = "%s: %s" % (what, msg or name) if what else (msg or name)
    if -rc == _lib.E_INVAL:
        raise ValueError(text)
    if -rc == _lib.E_NOTFOUND:
        if d is not None and d.path:
            raise FileNotFoundError(errno.ENOENT, text)
        raise KeyError(text)
    if -rc == _lib.E_NOMEM:
        raise MemoryError(text)
    raise MfsError(-rc, text)


def _id_bytes(x):
    if isinstance(x, bytes):
        b = x
    elif isinstance(x, str):
        b = x.encode("utf-8")
    elif isinstance(x, (int, np.integer)) and not isinstance(x, bool):
        b = str(int(x)).encode()
    else:
        raise TypeError("an ID must be str, bytes or an integer, got %r" % (x,))
    if not 1 <= len(b) <= _lib.ID_MAX:
        raise ValueError("ID %r is %d bytes: IDs have 1 to %d" % (x, len(b), _lib.ID_MAX))
    return b


def _ids_column(values, what):
    """IDs -> (buffer, pointer per event, length per event): the distinct IDs
    are encoded once, and each event points at its ID in the buffer."""
    try:
        import pandas as pd
    except ImportError:
        pd = None
    if pd is not None and isinstance(values, (pd.Series, pd.Index)):
        arr = values.to_numpy()
    elif isinstance(values, np.ndarray):
        arr = values
    else:  # a list may mix str, bytes and ints: each is taken as it is
        arr = np.empty(len(values), dtype=object)
        arr[:] = list(values)
    if arr.ndim != 1:
        raise ValueError("%s: one ID per event (a 1-d sequence), got shape %s" % (what, arr.shape))
    if arr.dtype.kind == "f":
        raise TypeError("%s: floating-point IDs (%s) are refused: 1.0 would be the ID \"1.0\"; "
                        "convert them to integers or strings" % (what, arr.dtype))
    if arr.dtype.kind == "b":
        raise TypeError("%s: boolean IDs are refused" % what)
    if arr.dtype.kind in "iu" and len(arr) and 0 <= int(arr.min()) and \
            int(arr.max()) < 8 * len(arr) + (1 << 20):
        # small non-negative integers (MovieLens, gen): a table, no hashing
        present = np.zeros(int(arr.max()) + 1, dtype=bool)
        present[arr] = True
        uniq = np.flatnonzero(present)
        codes = (np.cumsum(present) - 1)[arr]
    elif pd is not None:
        codes, uniq = pd.factorize(arr, sort=False)
        if (codes < 0).any():
            i = int(np.flatnonzero(codes < 0)[0])
            raise ValueError("%s[%d]: missing ID (%r)" % (what, i, arr[i]))
    else:
        uniq, codes = np.unique(arr, return_inverse=True)
    if np.asarray(uniq).dtype.kind in "iu":
        enc = [str(u).encode() for u in np.asarray(uniq).tolist()]  # decimal, as files have them
    else:
        enc = [_id_bytes(u.item() if isinstance(u, np.generic) else u) for u in uniq]
    lens = np.fromiter((len(b) for b in enc), dtype=np.uint32, count=len(enc))
    offs = np.zeros(len(enc), dtype=np.uint64)
    if len(enc) > 1:
        np.cumsum(lens[:-1], out=offs[1:])
    buf = ctypes.create_string_buffer(b"".join(enc), int(lens.sum()) + 1)
    base = ctypes.addressof(buf)
    return buf, (offs + np.uint64(base))[codes], lens[codes]


_EVENT_DTYPE = np.dtype({"names": ["user", "item", "user_len", "item_len", "rating", "time"],
                         "formats": [np.uint64, np.uint64, np.uint32, np.uint32, np.float32,
                                     np.int64],
                         "offsets": [_lib.Event.user.offset, _lib.Event.item.offset,
                                     _lib.Event.user_len.offset, _lib.Event.item_len.offset,
                                     _lib.Event.rating.offset, _lib.Event.time.offset],
                         "itemsize": ctypes.sizeof(_lib.Event)})


def defaults():
    """The library's model defaults (those of `mfstream train`), as a dict."""
    c = _lib.Config()
    lib.mfs_config_default(ctypes.byref(c))
    return {f: getattr(c, f) for f, _ in _lib.Config._fields_ if f != "kernel"}


_CURVE_COLUMNS = ["events", "prequential_rmse", "prequential_mae", "window_rmse",
                  "window_mae", "events_per_s", "seconds"]


class _Titles:
    """Item titles: a file mfs_titles_load reads (u.item, movies.csv, id<TAB>title)
    or a mapping (dict, pandas Series) from item ID to title."""

    def __init__(self, titles):
        self._t = None
        self._map = None
        if isinstance(titles, (str, os.PathLike)):
            t = ctypes.c_void_p()
            d = _lib.Diag()
            _check(lib.mfs_titles_load(ctypes.byref(t), os.fsencode(titles), ctypes.byref(d)), d)
            self._t = t
        else:
            self._map = {(_id_bytes(k)): v for k, v in dict(titles).items()}

    def get(self, idb):
        if self._t is not None:
            s = lib.mfs_titles_get(self._t, idb, len(idb))
            return None if s is None else s.decode("utf-8")
        return self._map.get(idb)

    def __del__(self):
        if getattr(self, "_t", None) is not None:
            lib.mfs_titles_free(self._t)
            self._t = None


def _scored_frame(model_ptr, sc, n, titles, extra=None):
    import pandas as pd
    ids, scores, ttl = [], [], []
    idp = ctypes.c_void_p()
    ln = ctypes.c_size_t()
    for j in range(n):
        lib.mfs_model_row(model_ptr, _lib.ITEMS, sc[j].row, ctypes.byref(idp), ctypes.byref(ln),
                          None)
        idb = ctypes.string_at(idp.value, ln.value)
        ids.append(idb.decode("utf-8", "replace"))
        scores.append(sc[j].score)
        if titles is not None:
            ttl.append(titles.get(idb))
    cols = {"item": ids, "score": np.array(scores, dtype=np.float32)}
    if titles is not None:
        cols["title"] = ttl
    return pd.DataFrame(cols)


def _make_query(include_seen=False, min_events=0):
    q = ctypes.c_void_p()
    _check(lib.mfs_query_create(ctypes.byref(q)))
    if include_seen:
        _check(lib.mfs_query_set(q, _lib.QUERY_INCLUDE_SEEN, 1))
    if min_events:
        _check(lib.mfs_query_set(q, _lib.QUERY_MIN_EVENTS, int(min_events)), what="min_events")
    return q


class Server:
    """Serving on a path: a model file, or a checkpoint directory (its newest
    valid state: the newest whole checkpoint with its deltas). Queries go
    through the serving scan (mfs_view_*: the int8 pre-scan, then the exact
    top-K from the float rows). refresh() swaps in a newer model when there
    is one. titles: a title file or a mapping, added to answers."""

    def __init__(self, path, titles=None, kernel=None):
        self._s = None
        s = ctypes.c_void_p()
        d = _lib.Diag()
        _check(lib.mfs_server_open(ctypes.byref(s), os.fsencode(path),
                                   kernel.encode() if kernel else None, None, None,
                                   ctypes.byref(d)), d)
        self._s = s
        self.path = os.fspath(path)
        self.titles = None if titles is None else _Titles(titles)

    def close(self):
        if self._s is not None:
            lib.mfs_server_free(self._s)
            self._s = None

    def __del__(self):
        self.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _live(self):
        if self._s is None:
            raise ValueError("the server is closed")
        return self._s

    def refresh(self):
        """Swap in a newer model of the path if there is one: True if swapped."""
        d = _lib.Diag()
        return _check(lib.mfs_server_refresh(self._live(), ctypes.byref(d)), d) == 1

    def info(self):
        """events (lifetime events of the model serving), refreshes, path."""
        i = _lib.ServerInfo()
        _check(lib.mfs_server_info_get(self._live(), ctypes.byref(i)))
        return {"events": i.events, "refreshes": i.refreshes, "path": i.path.decode()}

    def _query(self, fn, side, idv, k, q_args, what, cold):
        s = self._live()
        idb = _id_bytes(idv)
        k = int(k)
        if k < 1:
            raise ValueError("k must be at least 1, got %d" % k)
        q = _make_query(**q_args)
        v = lib.mfs_server_acquire(s)
        try:
            m = lib.mfs_view_model(v)
            if lib.mfs_model_find(m, side, idb, len(idb)) < 0 and not cold:
                raise KeyError("%s %r is not in the model%s" % (
                    what, idv, " (recommend(..., cold=True) ranks the items by mu + b_item)"
                    if side == _lib.USERS else ""))
            sc = (_lib.Scored * k)()
            n = fn(v, q, idb, len(idb), k, sc)
            _check(n, what="%s %r" % (what, idv))
            return _scored_frame(m, sc, n, self.titles)
        finally:
            lib.mfs_server_release(s, v)
            lib.mfs_query_free(q)

    def recommend(self, user, k=10, include_seen=False, min_events=0, cold=False):
        """The k items with the highest predicted rating for user, best first, as a
        DataFrame (item, score[, title]). The user's history (its most recent
        events' items) is left out unless include_seen. An unknown user raises
        KeyError, unless cold=True: then the items with the highest mu + b_item."""
        return self._query(lib.mfs_view_recommend_with, _lib.USERS, user, k,
                           {"include_seen": include_seen, "min_events": min_events}, "user", cold)

    def similar(self, item, k=10, min_events=0):
        """The k items nearest item by cosine of their factor rows (the item itself
        left out), as a DataFrame (item, score[, title]). KeyError for an unknown item."""
        return self._query(lib.mfs_view_similar_with, _lib.ITEMS, item, k,
                           {"min_events": min_events}, "item", False)

    def predict(self, user, item):
        """Predicted rating(s), as Model.predict, from the model serving now."""
        s = self._live()
        v = lib.mfs_server_acquire(s)
        try:
            return _predict(lib.mfs_view_model(v), user, item)
        finally:
            lib.mfs_server_release(s, v)


def _predict(m, user, item):
    scalar = np.ndim(user) == 0 and np.ndim(item) == 0
    users, items = np.broadcast_arrays(np.asarray(user, dtype=object),
                                       np.asarray(item, dtype=object))
    out = np.empty(users.shape, dtype=np.float32)
    f = ctypes.c_float()
    fo = out.reshape(-1)
    for j, (u, i) in enumerate(zip(users.reshape(-1), items.reshape(-1))):
        ub, ib = _id_bytes(u), _id_bytes(i)
        _check(lib.mfs_model_predict(m, ub, len(ub), ib, len(ib), ctypes.byref(f)))
        fo[j] = f.value
    return float(out.reshape(-1)[0]) if scalar else out


class Model:
    """A model loaded from a file (mfstream.load): read only. Its tables are
    zero-copy NumPy views, valid as long as any of them or the Model lives
    (files are replaced by rename, never rewritten in place, so the mapped
    file stays whole)."""

    _copy_tables = False

    def __init__(self, _ptr=None):
        self._m = _ptr
        self._server = None
        self._server_dir = None
        self.titles = None

    # --- life -----------------------------------------------------------
    def _live(self):
        if self._m is None:
            raise ValueError("the model is closed")
        return self._m

    def _drop_server(self):
        if self._server is not None:
            self._server.close()
            self._server = None
        if self._server_dir is not None:
            shutil.rmtree(self._server_dir, ignore_errors=True)
            self._server_dir = None

    def close(self):
        """Free the model now (else when it is garbage-collected). Views taken
        from a Model keep it alive, so close() with views alive is refused."""
        if getattr(self, "_views", 0):
            raise ValueError("NumPy views of this model are alive; drop them first")
        self._drop_server()
        if self._m is not None:
            lib.mfs_model_free(self._m)
            self._m = None

    def __del__(self):
        self._drop_server()
        if getattr(self, "_m", None) is not None:
            lib.mfs_model_free(self._m)
            self._m = None

    # --- facts ----------------------------------------------------------
    def info(self):
        """A dict of mfs_model_info: dim, users, items, events, mu, lo, hi, kernel, ..."""
        i = _lib.ModelInfo()
        _check(lib.mfs_model_info_get(self._live(), ctypes.byref(i)))
        out = {f: getattr(i, f) for f, _ in _lib.ModelInfo._fields_}
        out["kernel"] = out["kernel"].decode() if out["kernel"] else None
        return out

    def config(self):
        """The model's settings (mfs_config) as a dict."""
        c = _lib.Config()
        _check(lib.mfs_model_config_get(self._live(), ctypes.byref(c)))
        return {f: getattr(c, f) for f, _ in _lib.Config._fields_ if f != "kernel"}

    @property
    def position(self):
        """The reader position the model was saved with (bytes), or None."""
        n = ctypes.c_size_t()
        p = lib.mfs_model_position(self._live(), ctypes.byref(n))
        return ctypes.string_at(p, n.value) if p else None

    # --- IDs and tables ---------------------------------------------------
    def _ids(self, side):
        m = self._live()
        n = _check(lib.mfs_model_table(m, side, None, None, None))
        idp = ctypes.c_void_p()
        ln = ctypes.c_size_t()
        out = []
        for r in range(n):
            if lib.mfs_model_row(m, side, r, ctypes.byref(idp), ctypes.byref(ln), None) < 0:
                out.append(None)  # hashed mode: a row no ID holds
            else:
                out.append(ctypes.string_at(idp.value, ln.value).decode("utf-8", "replace"))
        return out

    @property
    def user_ids(self):
        """The ID of each user row (None for a row not in use), as a list of str."""
        return self._ids(_lib.USERS)

    @property
    def item_ids(self):
        """The ID of each item row, as user_ids."""
        return self._ids(_lib.ITEMS)

    def _table(self, side, which):
        m = self._live()
        rows = ctypes.c_void_p()
        stride = ctypes.c_size_t()
        bias = ctypes.c_void_p()
        n = _check(lib.mfs_model_table(m, side, ctypes.byref(rows), ctypes.byref(stride),
                                       ctypes.byref(bias)))
        dim = self.info()["dim"]
        if which == "bias":
            addr, count, shape, strides = bias.value, n, (n,), (4,)
        else:
            addr, count = rows.value, n * stride.value
            shape, strides = (n, dim), (stride.value * 4, 4)
        if n == 0 or not addr:
            return np.zeros(shape, dtype=np.float32)
        carr = (ctypes.c_float * count).from_address(addr)
        if self._copy_tables:
            flat = np.ctypeslib.as_array(carr)
            return np.array(np.lib.stride_tricks.as_strided(flat, shape, strides), copy=True)
        carr._owner = _ViewOwner(self)  # the array keeps the model alive
        flat = np.frombuffer(carr, dtype=np.float32)
        v = np.lib.stride_tricks.as_strided(flat, shape, strides, writeable=False)
        return v

    @property
    def user_factors(self):
        """users x dim float32: row r is user row r's factors (user_ids[r])."""
        return self._table(_lib.USERS, "rows")

    @property
    def item_factors(self):
        """items x dim float32: row r is item row r's factors (item_ids[r])."""
        return self._table(_lib.ITEMS, "rows")

    @property
    def user_bias(self):
        return self._table(_lib.USERS, "bias")

    @property
    def item_bias(self):
        return self._table(_lib.ITEMS, "bias")

    def item_events(self):
        """Events each item row learned in the first pass (its support), an int64
        array (-1 for rows not in use); None when the model keeps no counts."""
        m = self._live()
        n = _check(lib.mfs_model_table(m, _lib.ITEMS, None, None, None))
        out = np.empty(n, dtype=np.int64)
        for r in range(n):
            c = lib.mfs_model_row_events(m, _lib.ITEMS, r)
            if c == -_lib.E_UNSUPPORTED:
                return None
            out[r] = c if c >= 0 else -1
        return out

    def items_frame(self, titles=None):
        """A DataFrame of the items: item, bias, events[, title], by row."""
        import pandas as pd
        t = _Titles(titles) if titles is not None else self.titles
        ids = self.item_ids
        df = pd.DataFrame({"item": ids, "bias": np.array(self.item_bias, copy=True)})
        ev = self.item_events()
        if ev is not None:
            df["events"] = ev
        if t is not None:
            df["title"] = [None if i is None else t.get(i.encode("utf-8")) for i in ids]
        return df

    # --- queries ----------------------------------------------------------
    def predict(self, user, item):
        """The predicted rating of (user, item): a float for scalars, a float32
        array for sequences (broadcast against each other). An ID the model does
        not know contributes nothing (a cold user gets mu + b_item), as the
        library documents; no error."""
        return _predict(self._live(), user, item)

    def _serving(self):
        """A Server on this model: a copy saved to a private temporary directory
        (servers load their model from a path), made once per model state."""
        if self._server is None:
            self._server_dir = tempfile.mkdtemp(prefix="mfstream-")
            p = os.path.join(self._server_dir, "model.mfs")
            self.save(p)
            self._server = Server(p)
            self._server.titles = self.titles
        return self._server

    def recommend(self, user, k=10, include_seen=False, min_events=0, cold=False):
        """Server.recommend on this model (through the serving scan)."""
        return self._serving().recommend(user, k, include_seen, min_events, cold)

    def similar(self, item, k=10, min_events=0):
        """Server.similar on this model (through the serving scan)."""
        return self._serving().similar(item, k, min_events)

    def set_titles(self, titles):
        """Titles for the answers of recommend and similar (a file or a mapping)."""
        self.titles = None if titles is None else _Titles(titles)
        if self._server is not None:
            self._server.titles = self.titles

    def save(self, path, compress=0, position=None):
        """Write the model to path atomically (mfs_model_save). position: reader
        position bytes to record (default: the one the model has, e.g. from
        learn_file or the file it was loaded from)."""
        d = _lib.Diag()
        opts = _lib.SaveOpts(int(compress), None, 0)
        if position is None and getattr(self, "_file_position", None) is not None:
            position = self._file_position
        if position is not None:
            pbuf = ctypes.create_string_buffer(bytes(position), len(position))
            opts.position = ctypes.addressof(pbuf)
            opts.position_len = len(position)
        _check(lib.mfs_model_save(self._live(), os.fsencode(path), ctypes.byref(opts),
                                  ctypes.byref(d)), d)


class _ViewOwner:
    """Held by every NumPy view of a Model: counts them, keeps the model alive."""

    def __init__(self, model):
        self.model = model
        model._views = getattr(model, "_views", 0) + 1

    def __del__(self):
        self.model._views -= 1


def load(path, kernel=None, titles=None):
    """Load a model file (mfs_model_load) as a read-only Model."""
    m = ctypes.c_void_p()
    d = _lib.Diag()
    _check(lib.mfs_model_load(ctypes.byref(m), os.fsencode(path),
                              kernel.encode() if kernel else None, ctypes.byref(d)), d)
    mod = Model(m)
    if titles is not None:
        mod.set_titles(titles)
    return mod


_OPTIMIZERS = {"sgd": 0, "adagrad": 1}
_LINKS = {"clamp": 0, "sigmoid": 1}
_IDMODES = {"exact": 0, "hashed": 1}


class Learner(Model):
    """A model that learns: one SGD step per event, in order, test-then-train.

    Settings are those of `mfstream train` and default to its defaults (from
    the library, so they cannot drift): dim, optimizer ("adagrad" | "sgd"),
    lr, lr_bias, l2, l2_bias, init_std, rating_range ("auto" or (lo, hi)),
    range_link ("sigmoid" | "clamp"), range_margin, max_users, max_items,
    history, ids ("exact" | "hashed"), evict, min_count, hashes, seed,
    freq_alpha, freq_alpha_bias, kernel. rating_range "auto" takes the range
    of the first batch learned (its first 4096 events), as train does.

    curve_every: every this many events, learn records a point of the
    prequential curve (metrics()): running and windowed RMSE and MAE,
    events/s; the same columns as `train --curve`.
    """

    _copy_tables = True

    def __init__(self, dim=None, *, optimizer=None, lr=None, lr_bias=None, l2=None,
                 l2_bias=None, init_std=None, rating_range="auto", range_link=None,
                 range_margin=None, max_users=None, max_items=None, history=None, ids=None,
                 evict=None, min_count=None, hashes=None, seed=None, freq_alpha=None,
                 freq_alpha_bias=None, kernel=None, curve_every=10000, titles=None):
        super().__init__()
        c = _lib.Config()
        lib.mfs_config_default(ctypes.byref(c))
        for name, val in (("dim", dim), ("lr", lr), ("lr_bias", lr_bias), ("l2", l2),
                          ("l2_bias", l2_bias), ("init_std", init_std),
                          ("range_margin", range_margin), ("max_users", max_users),
                          ("max_items", max_items), ("history", history),
                          ("min_count", min_count), ("user_hashes", hashes), ("seed", seed),
                          ("freq_alpha", freq_alpha), ("freq_alpha_bias", freq_alpha_bias)):
            if val is not None:
                if isinstance(val, float) and not math.isfinite(val):
                    raise ValueError("%s: must be finite, got %r" % (name, val))
                if name in ("dim", "max_users", "max_items", "history", "min_count",
                            "user_hashes", "seed") and (int(val) != val or val < 0):
                    raise ValueError("%s: must be a whole number >= 0, got %r" % (name, val))
                setattr(c, name, val)
        for name, val, table, field in (("optimizer", optimizer, _OPTIMIZERS, "optimizer"),
                                        ("range_link", range_link, _LINKS, "link"),
                                        ("ids", ids, _IDMODES, "ids")):
            if val is not None:
                if val not in table:
                    raise ValueError("%s: must be %s, got %r" % (name, " or ".join(table), val))
                setattr(c, field, table[val])
        if evict is not None:
            c.evict = 1 if evict else 0
        self._range_auto = rating_range == "auto"
        if not self._range_auto:
            try:
                lo, hi = rating_range
            except (TypeError, ValueError):
                raise ValueError("rating_range: \"auto\" or (lo, hi), got %r"
                                 % (rating_range,)) from None
            c.lo, c.hi = float(lo), float(hi)
        self._kernel = kernel.encode() if kernel else None
        c.kernel = self._kernel
        m = ctypes.c_void_p()
        d = _lib.Diag()
        _check(lib.mfs_model_create(ctypes.byref(m), ctypes.byref(c), ctypes.byref(d)), d)
        self._m = m
        self._init_learning(curve_every)
        if titles is not None:
            self.set_titles(titles)

    def _init_learning(self, curve_every):
        if int(curve_every) < 1:
            raise ValueError("curve_every must be at least 1, got %r" % (curve_every,))
        self.curve_every = int(curve_every)
        self._st = _lib.LearnStats()
        self._curve = []
        self._last = (0, 0.0, 0.0, None)  # events, sq_err, abs_err, time at the last point
        self._seconds = 0.0
        self._file_position = None
        self.skipped = 0
        self.bad_records = []

    @classmethod
    def load(cls, path, kernel=None, curve_every=10000):
        """Load a model file or a checkpoint's model to learn on from it."""
        m = ctypes.c_void_p()
        d = _lib.Diag()
        _check(lib.mfs_model_load(ctypes.byref(m), os.fsencode(path),
                                  kernel.encode() if kernel else None, ctypes.byref(d)), d)
        self = cls.__new__(cls)
        Model.__init__(self, m)
        self._range_auto = False
        self._init_learning(curve_every)
        return self

    # --- learning ---------------------------------------------------------
    def _learn_events(self, evp, n, base=0):
        """Learn n mfs_events at address evp, cut at the curve's points."""
        st = self._st
        done = 0
        while done < n:
            seen = st.events + st.unplaced
            k = min(n - done, self.curve_every - seen % self.curve_every)
            t0 = time.perf_counter()
            r = lib.mfs_model_learn(self._m, evp + done * _EVENT_DTYPE.itemsize, k,
                                    ctypes.byref(st))
            self._seconds += time.perf_counter() - t0
            if r < 0:
                _check(r, what="learning stopped after %d events of this call"
                       % (base + done))
            done += k
            if (st.events + st.unplaced) % self.curve_every == 0:
                self._point()

    def _point(self):
        st = self._st
        ev0, sq0, ab0, t0 = self._last
        w = st.events - ev0
        now = self._seconds
        if w == 0:
            return
        self._curve.append((st.events, math.sqrt(st.sq_err / st.events),
                            st.abs_err / st.events, math.sqrt((st.sq_err - sq0) / w),
                            (st.abs_err - ab0) / w,
                            w / (now - (t0 or 0.0)) if now > (t0 or 0.0) else float("nan"),
                            now))
        self._last = (st.events, st.sq_err, st.abs_err, now)

    def _range_from(self, evp, n):
        """rating_range "auto": the range of the first batch (as train)."""
        if not self._range_auto:
            return
        self._range_auto = False
        lo, hi, step = ctypes.c_float(), ctypes.c_float(), ctypes.c_float()
        if lib.mfs_ratings_range(evp, n, ctypes.byref(lo), ctypes.byref(hi),
                                 ctypes.byref(step)) < 0:
            return
        lo, hi = lo.value, hi.value
        if lo == hi:
            i = self.info()
            lo, hi = min(lo, i["lo"]), max(hi, i["hi"])
        _check(lib.mfs_model_set_range(self._m, lo, hi), what="rating range")

    def learn(self, users, items=None, ratings=None, times=None):
        """Learn events in order: learn(users, items, ratings) from sequences or
        NumPy arrays of equal length, or learn(df) from a DataFrame with columns
        user, item, rating (and time). Returns the number of events learned
        (events with a new ID and a full table are not: stats()["unplaced"])."""
        if items is None and ratings is None and hasattr(users, "columns"):
            df = users
            missing = [c for c in ("user", "item", "rating") if c not in df.columns]
            if missing:
                raise KeyError("the DataFrame lacks column%s %s (it has %s)" % (
                    "s" if len(missing) > 1 else "", ", ".join(missing),
                    ", ".join(map(str, df.columns))))
            users, items, ratings = df["user"], df["item"], df["rating"]
            times = df["time"] if "time" in df.columns else None
        if items is None or ratings is None:
            raise TypeError("learn(users, items, ratings) or learn(DataFrame)")
        r = np.asarray(ratings, dtype=np.float64)
        n = len(r)
        for what, seq in (("users", users), ("items", items), ("times", times)):
            if seq is not None and len(seq) != n:
                raise ValueError("%s has %d entries but ratings has %d: one per event"
                                 % (what, len(seq), n))
        if r.ndim != 1:
            raise ValueError("ratings: one per event (a 1-d sequence), got shape %s" % (r.shape,))
        bad = ~np.isfinite(r)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ValueError("ratings[%d] is %r: ratings must be finite numbers" % (i, r[i]))
        if n == 0:
            return 0
        ubuf, uptr, ulen = _ids_column(users, "users")
        ibuf, iptr, ilen = _ids_column(items, "items")
        ev = np.empty(n, dtype=_EVENT_DTYPE)
        ev["user"], ev["item"] = uptr, iptr
        ev["user_len"], ev["item_len"] = ulen, ilen
        ev["rating"] = r
        ev["time"] = 0 if times is None else np.asarray(times, dtype=np.int64)
        self._drop_server()
        before = self._st.events
        evp = ev.ctypes.data
        self._range_from(evp, min(n, _BATCH))
        self._learn_events(evp, n)
        del ubuf, ibuf  # the IDs are borrowed until here
        return self._st.events - before

    def learn_file(self, *paths, format="auto", fields=None, on_error="skip-file"):
        """Learn files, directories or "-" through the library's reader
        (mfs_source, as train: any format, zstd/gzip, a reader thread).
        Malformed records are skipped and counted (self.skipped; the first five
        in self.bad_records, as "file:line: reason"). A file that cannot be
        read: on_error "skip-file" warns and goes on, "stop" raises MfsError.
        Returns the number of events learned. The reader's end position is
        recorded, so save() writes what `train FILE --save` writes."""
        if on_error not in ("skip-file", "stop"):
            raise ValueError("on_error: skip-file or stop, got %r" % (on_error,))
        if not paths:
            raise TypeError("learn_file needs at least one path")
        fmt = lib.mfs_format_parse(format.encode())
        if fmt < 0:
            raise ValueError("format: auto, tsv, csv, dat, jsonl or ssv, got %r" % (format,))
        sc = _lib.SourceConfig()
        lib.mfs_source_config_default(ctypes.byref(sc))
        sc.format = fmt
        fb = fields.encode() if fields else None
        sc.fields = fb
        bad = []

        def on_bad(_ctx, dp):  # the reader thread's call: keep the first five only
            if len(bad) < 5:
                bad.append(_diag_message(dp.contents))
        cb = _lib.BAD_RECORD_FN(on_bad)
        sc.on_bad = cb
        c2 = _lib.SourceConfig2()
        lib.mfs_source_config2_default(ctypes.byref(c2))
        c2.queue = 4  # as train: read and parse on a second core
        enc = [os.fsencode(p) for p in paths]
        arr = (ctypes.c_char_p * len(enc))(*enc)
        src = ctypes.c_void_p()
        d = _lib.Diag()
        _check(lib.mfs_source_open2(ctypes.byref(src), arr, len(enc), ctypes.byref(sc),
                                    ctypes.byref(c2), ctypes.byref(d)), d)
        self._drop_server()
        before = self._st.events
        try:
            evp = ctypes.c_void_p()
            while True:
                n = lib.mfs_source_next(src, ctypes.byref(evp), ctypes.byref(d))
                if n == 0:
                    break
                if n < 0:
                    if on_error == "stop":
                        _check(n, d)
                    warnings.warn(_diag_message(d), RuntimeWarning, stacklevel=2)
                    lib.mfs_source_skip_file(src)
                    continue
                self._range_from(evp.value, n)
                self._learn_events(evp.value, n)
            ss = _lib.SourceStats()
            lib.mfs_source_stats_get(src, ctypes.byref(ss))
            self.skipped += ss.skipped
            self.bad_records.extend(bad[:max(0, 5 - len(self.bad_records))])
            if ss.skipped and self._st.events == before:
                warnings.warn("nothing learned: all %d records were malformed; the first: %s"
                              % (ss.skipped, bad[0] if bad else "?"), RuntimeWarning,
                              stacklevel=2)
            ln = lib.mfs_source_position(src, None, 0)
            if ln > 0:
                buf = ctypes.create_string_buffer(ln)
                if lib.mfs_source_position(src, buf, ln) == ln:
                    self._file_position = buf.raw
        finally:
            lib.mfs_source_free(src)
        return self._st.events - before

    # --- results ----------------------------------------------------------
    def stats(self):
        """Running totals over every learn call: events, unplaced, out_of_range,
        unadmitted, prequential_rmse, prequential_mae, seconds, events_per_s."""
        st = self._st
        n = st.events
        return {"events": n, "unplaced": st.unplaced, "out_of_range": st.out_of_range,
                "unadmitted": st.unadmitted,
                "prequential_rmse": math.sqrt(st.sq_err / n) if n else float("nan"),
                "prequential_mae": st.abs_err / n if n else float("nan"),
                "seconds": self._seconds,
                "events_per_s": n / self._seconds if self._seconds > 0 else float("nan")}

    def metrics(self):
        """The prequential curve as a DataFrame, one row per curve_every events
        (and the events since the last one, if any): events, prequential_rmse and
        _mae (running), window_rmse and _mae (the events since the previous row),
        events_per_s (of that window, in the library's learn calls), seconds."""
        import pandas as pd
        rows = list(self._curve)
        st = self._st
        if st.events > self._last[0]:
            saved = (self._curve, self._last)
            self._curve = []
            self._point()
            rows += self._curve
            self._curve, self._last = saved
        return pd.DataFrame(rows, columns=_CURVE_COLUMNS)
