"""ctypes declarations of include/mfstream.h (the part the module uses).

The library is found, in order, at:
  1. $MFSTREAM_LIBRARY (a path to libmfstream.so*);
  2. the build tree this package sits in: <repo>/build/release/libmfstream.so
     (python/mfstream/ -> <repo>);
  3. the library `cmake --install` put beside the installed package
     (<prefix>/<libdir>/libmfstream.so.<soversion>, from _install.py, which the
     install step writes);
  4. the dynamic linker's search path (libmfstream.so.<soversion>).
"""
import ctypes
import os

# Struct layouts mirror include/mfstream.h field by field (same order and C
# types, so ctypes gives them the C alignment). Public structs do not grow
# (issue 16: new settings are setters), so these stay in step with the header.


class Diag(ctypes.Structure):
    _fields_ = [("code", ctypes.c_int), ("os_errno", ctypes.c_int),
                ("path", ctypes.c_char * 512), ("line", ctypes.c_uint64),
                ("offset", ctypes.c_uint64), ("reason", ctypes.c_char * 256)]


class Event(ctypes.Structure):
    _fields_ = [("user", ctypes.c_void_p), ("item", ctypes.c_void_p),
                ("user_len", ctypes.c_uint32), ("item_len", ctypes.c_uint32),
                ("rating", ctypes.c_float), ("time", ctypes.c_int64)]


class Config(ctypes.Structure):
    _fields_ = [("dim", ctypes.c_uint32), ("max_users", ctypes.c_uint64),
                ("max_items", ctypes.c_uint64), ("optimizer", ctypes.c_int),
                ("lr", ctypes.c_float), ("lr_bias", ctypes.c_float),
                ("l2", ctypes.c_float), ("l2_bias", ctypes.c_float),
                ("init_std", ctypes.c_float), ("lo", ctypes.c_float), ("hi", ctypes.c_float),
                ("link", ctypes.c_int), ("range_margin", ctypes.c_float),
                ("seed", ctypes.c_uint64), ("kernel", ctypes.c_char_p),
                ("ids", ctypes.c_int), ("evict", ctypes.c_int),
                ("min_count", ctypes.c_uint32), ("user_hashes", ctypes.c_uint32),
                ("replay_lr", ctypes.c_float), ("replay_lr_bias", ctypes.c_float),
                ("replay_l2", ctypes.c_float), ("replay_l2_bias", ctypes.c_float),
                ("freq_alpha", ctypes.c_float), ("freq_alpha_bias", ctypes.c_float),
                ("history", ctypes.c_uint32)]


class LearnStats(ctypes.Structure):
    _fields_ = [("events", ctypes.c_uint64), ("unplaced", ctypes.c_uint64),
                ("sq_err", ctypes.c_double), ("abs_err", ctypes.c_double),
                ("unadmitted", ctypes.c_uint64), ("out_of_range", ctypes.c_uint64)]


class Scored(ctypes.Structure):
    _fields_ = [("row", ctypes.c_uint32), ("score", ctypes.c_float)]


class ModelInfo(ctypes.Structure):
    _fields_ = [("dim", ctypes.c_uint32), ("users", ctypes.c_uint64), ("items", ctypes.c_uint64),
                ("user_rows", ctypes.c_uint64), ("item_rows", ctypes.c_uint64),
                ("user_evictions", ctypes.c_uint64), ("item_evictions", ctypes.c_uint64),
                ("ids", ctypes.c_int), ("evict", ctypes.c_int),
                ("min_count", ctypes.c_uint32), ("user_hashes", ctypes.c_uint32),
                ("max_users", ctypes.c_uint64), ("max_items", ctypes.c_uint64),
                ("events", ctypes.c_uint64), ("mu", ctypes.c_double),
                ("lo", ctypes.c_float), ("hi", ctypes.c_float),
                ("optimizer", ctypes.c_int), ("link", ctypes.c_int),
                ("seed", ctypes.c_uint64), ("kernel", ctypes.c_char_p),
                ("history", ctypes.c_uint32), ("counts", ctypes.c_int)]


class SaveOpts(ctypes.Structure):
    _fields_ = [("compress", ctypes.c_int), ("position", ctypes.c_void_p),
                ("position_len", ctypes.c_size_t)]


BAD_RECORD_FN = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.POINTER(Diag))


class SourceConfig(ctypes.Structure):
    _fields_ = [("format", ctypes.c_int), ("fields", ctypes.c_char_p),
                ("batch", ctypes.c_size_t), ("on_bad", BAD_RECORD_FN),
                ("on_bad_ctx", ctypes.c_void_p)]


class SourceConfig2(ctypes.Structure):
    _fields_ = [("io", ctypes.c_int), ("follow", ctypes.c_int), ("queue", ctypes.c_uint),
                ("chunk", ctypes.c_size_t), ("depth", ctypes.c_uint),
                ("poll_ms", ctypes.c_uint)]


class SourceStats(ctypes.Structure):
    _fields_ = [("events", ctypes.c_uint64), ("skipped", ctypes.c_uint64),
                ("bytes", ctypes.c_uint64), ("files", ctypes.c_uint64)]


class ServerInfo(ctypes.Structure):
    _fields_ = [("events", ctypes.c_uint64), ("refreshes", ctypes.c_uint64),
                ("retired_pinned", ctypes.c_uint64), ("path", ctypes.c_char * 4096)]


USERS, ITEMS = 0, 1
KNOWN_USER, KNOWN_ITEM = 1, 2
QUERY_INCLUDE_SEEN, QUERY_MIN_EVENTS = 1, 2
E_NOMEM, E_INVAL, E_IO, E_PARSE, E_CORRUPT = 1, 2, 3, 4, 5
E_UNSUPPORTED, E_NOTFOUND, E_RANGE, E_AGAIN = 8, 9, 10, 12
ID_MAX = 255

_P = ctypes.c_void_p
_I = ctypes.c_int
_SZ = ctypes.c_size_t
_U32 = ctypes.c_uint32
_I64 = ctypes.c_int64
_CP = ctypes.c_char_p
_PDIAG = ctypes.POINTER(Diag)

# name: (restype, argtypes)
_SIGNATURES = {
    "mfs_error_name": (_CP, [_I]),
    "mfs_diag_format": (_I, [_PDIAG, ctypes.c_char_p, _SZ]),
    "mfs_config_default": (None, [ctypes.POINTER(Config)]),
    "mfs_model_create": (_I, [ctypes.POINTER(_P), ctypes.POINTER(Config), _PDIAG]),
    "mfs_model_free": (None, [_P]),
    "mfs_model_learn": (_I64, [_P, _P, _SZ, ctypes.POINTER(LearnStats)]),
    "mfs_model_set_range": (_I, [_P, ctypes.c_float, ctypes.c_float]),
    "mfs_model_set_threads": (_I, [_P, ctypes.c_uint]),
    "mfs_ratings_range": (_I, [_P, _SZ, ctypes.POINTER(ctypes.c_float),
                               ctypes.POINTER(ctypes.c_float), ctypes.POINTER(ctypes.c_float)]),
    "mfs_model_config_get": (_I, [_P, ctypes.POINTER(Config)]),
    "mfs_model_predict": (_I, [_P, _CP, _SZ, _CP, _SZ, ctypes.POINTER(ctypes.c_float)]),
    "mfs_model_row": (_I, [_P, _I, _U32, ctypes.POINTER(ctypes.c_void_p),
                           ctypes.POINTER(_SZ), ctypes.POINTER(ctypes.c_float)]),
    "mfs_model_find": (_I64, [_P, _I, _CP, _SZ]),
    "mfs_model_row_events": (_I64, [_P, _I, _U32]),
    "mfs_model_info_get": (_I, [_P, ctypes.POINTER(ModelInfo)]),
    "mfs_model_table": (_I64, [_P, _I, ctypes.POINTER(_P), ctypes.POINTER(_SZ),
                               ctypes.POINTER(_P)]),
    "mfs_model_save": (_I, [_P, _CP, ctypes.POINTER(SaveOpts), _PDIAG]),
    "mfs_model_load": (_I, [ctypes.POINTER(_P), _CP, _CP, _PDIAG]),
    "mfs_model_position": (_P, [_P, ctypes.POINTER(_SZ)]),
    "mfs_query_create": (_I, [ctypes.POINTER(_P)]),
    "mfs_query_set": (_I, [_P, _I, _I64]),
    "mfs_query_free": (None, [_P]),
    "mfs_source_config_default": (None, [ctypes.POINTER(SourceConfig)]),
    "mfs_source_config2_default": (None, [ctypes.POINTER(SourceConfig2)]),
    "mfs_source_open2": (_I, [ctypes.POINTER(_P), ctypes.POINTER(_CP), _SZ,
                              ctypes.POINTER(SourceConfig), ctypes.POINTER(SourceConfig2),
                              _PDIAG]),
    "mfs_source_next": (_I, [_P, ctypes.POINTER(_P), _PDIAG]),
    "mfs_source_skip_file": (None, [_P]),
    "mfs_source_stats_get": (None, [_P, ctypes.POINTER(SourceStats)]),
    "mfs_source_position": (_I, [_P, _P, _SZ]),
    "mfs_source_free": (None, [_P]),
    "mfs_format_parse": (_I, [_CP]),
    "mfs_server_open": (_I, [ctypes.POINTER(_P), _CP, _CP, _P, _P, _PDIAG]),
    "mfs_server_refresh": (_I, [_P, _PDIAG]),
    "mfs_server_acquire": (_P, [_P]),
    "mfs_server_release": (None, [_P, _P]),
    "mfs_server_info_get": (_I, [_P, ctypes.POINTER(ServerInfo)]),
    "mfs_server_free": (None, [_P]),
    "mfs_view_model": (_P, [_P]),
    "mfs_view_recommend_with": (_I, [_P, _P, _CP, _SZ, _SZ, ctypes.POINTER(Scored)]),
    "mfs_view_similar_with": (_I, [_P, _P, _CP, _SZ, _SZ, ctypes.POINTER(Scored)]),
    "mfs_titles_load": (_I, [ctypes.POINTER(_P), _CP, _PDIAG]),
    "mfs_titles_get": (_CP, [_P, _CP, _SZ]),
    "mfs_titles_free": (None, [_P]),
}


def _candidates():
    env = os.environ.get("MFSTREAM_LIBRARY")
    if env:
        return [env]
    here = os.path.dirname(os.path.abspath(__file__))
    out = [os.path.join(here, "..", "..", "build", "release", "libmfstream.so")]
    try:
        from . import _install  # written by `cmake --install`
        out.append(_install.LIBRARY)
        out.append(os.path.basename(_install.LIBRARY))
    except ImportError:
        out.append("libmfstream.so")
    return out


def _load():
    tried = []
    for path in _candidates():
        if os.sep in path and not os.path.exists(path):
            tried.append(path + " (absent)")
            continue
        try:
            lib = ctypes.CDLL(path)
        except OSError as e:
            tried.append("%s (%s)" % (path, e))
            continue
        for name, (res, args) in _SIGNATURES.items():
            try:
                fn = getattr(lib, name)
            except AttributeError:
                raise ImportError("%s lacks %s: it is older than this module (rebuild it)"
                                  % (path, name)) from None
            fn.restype = res
            fn.argtypes = args
        return lib, path
    raise ImportError("libmfstream not found; tried: " + "; ".join(tried) +
                      ". Build it (cmake --build --preset release) or set MFSTREAM_LIBRARY")


lib, path = _load()
