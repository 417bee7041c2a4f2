/* RFC 9162 leaf and node hashing in bulk, for the log's writer (ledger/log.py).
 *
 * leaf_hashes(entries) -> [SHA-256(0x00 || e) for e in entries]
 * pair_hashes(nodes)   -> [SHA-256(0x01 || nodes[i] || nodes[i+1]) for i in 0, 2, 4, ...]
 * bundle(entries)      -> b"".join(len(e).to_bytes(2, "big") + e for e in entries)
 *
 * Exactly what the pure-Python fallbacks in ledger/log.py compute (a test compares them); this
 * only saves the interpreter's cost per hash. The GIL is held: inputs are Python objects.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#define OPENSSL_SUPPRESS_DEPRECATED /* the SHA256_* calls: OpenSSL 3's EVP path costs ~1 us per hash */
#include <openssl/sha.h>
#include <string.h>

static int digest2(unsigned char prefix, const char *a, Py_ssize_t na, const char *b, Py_ssize_t nb,
                   unsigned char *out) {
    SHA256_CTX ctx;
    if (SHA256_Init(&ctx) != 1) return -1;
    if (SHA256_Update(&ctx, &prefix, 1) != 1) return -1;
    if (SHA256_Update(&ctx, a, (size_t)na) != 1) return -1;
    if (nb && SHA256_Update(&ctx, b, (size_t)nb) != 1) return -1;
    if (SHA256_Final(out, &ctx) != 1) return -1;
    return 0;
}

static PyObject *hash_list(PyObject *seq_in, int pairs) {
    PyObject *seq = PySequence_Fast(seq_in, "expected a sequence of bytes");
    if (!seq) return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    Py_ssize_t count = pairs ? n / 2 : n;
    PyObject **items = PySequence_Fast_ITEMS(seq);
    PyObject *out = PyList_New(count);
    if (!out) goto fail;
    for (Py_ssize_t i = 0; i < count; i++) {
        unsigned char md[32];
        char *a, *b = NULL;
        Py_ssize_t na, nb = 0;
        PyObject *x = items[pairs ? 2 * i : i];
        if (PyBytes_AsStringAndSize(x, &a, &na) < 0) goto fail;
        if (pairs) {
            if (PyBytes_AsStringAndSize(items[2 * i + 1], &b, &nb) < 0) goto fail;
            if (na != 32 || nb != 32) {
                PyErr_SetString(PyExc_ValueError, "node hashes are 32 bytes");
                goto fail;
            }
        }
        if (digest2(pairs ? 0x01 : 0x00, a, na, b, nb, md) < 0) {
            PyErr_SetString(PyExc_RuntimeError, "SHA-256 failed");
            goto fail;
        }
        PyObject *h = PyBytes_FromStringAndSize((const char *)md, 32);
        if (!h) goto fail;
        PyList_SET_ITEM(out, i, h);
    }
    Py_DECREF(seq);
    return out;
fail:
    Py_XDECREF(out);
    Py_DECREF(seq);
    return NULL;
}

/* bundle(entries) -> the C2SP entry-bundle encoding: each entry after its big-endian uint16 length. */
static PyObject *bundle(PyObject *self, PyObject *arg) {
    PyObject *seq = PySequence_Fast(arg, "expected a sequence of bytes");
    if (!seq) return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq), total = 0;
    PyObject **items = PySequence_Fast_ITEMS(seq);
    for (Py_ssize_t i = 0; i < n; i++) {
        if (!PyBytes_Check(items[i])) { Py_DECREF(seq); PyErr_SetString(PyExc_TypeError, "entries are bytes"); return NULL; }
        Py_ssize_t len = PyBytes_GET_SIZE(items[i]);
        if (len > 0xFFFF) { Py_DECREF(seq); PyErr_SetString(PyExc_ValueError, "an entry is at most 65535 bytes"); return NULL; }
        total += 2 + len;
    }
    PyObject *out = PyBytes_FromStringAndSize(NULL, total);
    if (!out) { Py_DECREF(seq); return NULL; }
    unsigned char *p = (unsigned char *)PyBytes_AS_STRING(out);
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_ssize_t len = PyBytes_GET_SIZE(items[i]);
        *p++ = (unsigned char)(len >> 8);
        *p++ = (unsigned char)(len & 0xFF);
        memcpy(p, PyBytes_AS_STRING(items[i]), (size_t)len);
        p += len;
    }
    Py_DECREF(seq);
    return out;
}

static PyObject *leaf_hashes(PyObject *self, PyObject *arg) { return hash_list(arg, 0); }
static PyObject *pair_hashes(PyObject *self, PyObject *arg) { return hash_list(arg, 1); }

static PyMethodDef methods[] = {
    {"leaf_hashes", leaf_hashes, METH_O, "RFC 9162 leaf hashes of a sequence of entries."},
    {"pair_hashes", pair_hashes, METH_O, "RFC 9162 node hashes of consecutive pairs of 32-byte hashes."},
    {"bundle", bundle, METH_O, "C2SP entry-bundle encoding of a sequence of entries."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_hashing", NULL, -1, methods};

PyMODINIT_FUNC PyInit__hashing(void) { return PyModule_Create(&module); }
