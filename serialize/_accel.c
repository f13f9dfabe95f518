/* freight.serialize._accel: the binary envelope's per-message fast paths in C.
 *
 * FastPath is the C twin of freight.serialize.fastpath.PyFastPath, whose
 * docstrings are the specification; tests run both.  It holds no state and makes
 * no decision of its own: it reads the tables its ComputeSerializer keeps
 * (learned headers, header caches, the data strategy's body encoders) and calls
 * back into the serializer for everything else.  utf8_buffer is the twin of
 * freight.serialize.binary.py_utf8_buffer, minus its copy of ASCII text.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <limits.h>
#include <string.h>

/* Encoder calls with up to this many arguments (obj included) use the stack. */
#define MAX_STACK_ARGS 8
/* freight.serialize.binary's sizes (a test checks they agree). */
#define SMALL_BODY 4096
#define PREFIX_SIZE 12
#define HEADER_SIZE 32
#define BUFFER_ALIGNMENT 16

typedef struct {
    PyObject_HEAD
    PyObject *strategy;      /* the data strategy */
    PyObject *to_frames;     /* strategy.to_frames */
    PyObject *encoders;      /* dict: type -> (function, *args) */
    PyObject *prefix;        /* bytes: the first 12 header bytes */
    PyObject *meta;          /* bytes: the header's metadata */
    PyObject *code_frames;   /* callable(fn) -> tuple of frames */
    PyObject *encode_failed; /* callable(strategy, exc) -> exception */
    PyObject *known;         /* dict: 12-byte prefix -> (decode, decode_frames,
                                strategy, max_size, max_frames) */
    PyObject *loads_slow;    /* callable(data) */
    PyObject *loads_frames_slow; /* callable(frames) */
    PyObject *decode_failed; /* callable(strategy, exc) -> exception */
} FastPath;

/* With an Exception set: replace it by failed(strategy, exc), raised from exc
 * (as `raise failed(strategy, e) from e` inside `except Exception as e`); if
 * failed returns exc itself, exc propagates unchanged (a bare `raise`).
 * Anything else (KeyboardInterrupt, ...) propagates as it is. */
static void
raise_from(PyObject *failed, PyObject *strategy)
{
    if (!PyErr_ExceptionMatches(PyExc_Exception)) {
        return;
    }
    PyObject *type, *value, *traceback;
    PyErr_Fetch(&type, &value, &traceback);
    PyErr_NormalizeException(&type, &value, &traceback);
    if (traceback != NULL) {
        PyException_SetTraceback(value, traceback);
    }
    PyObject *error = PyObject_CallFunctionObjArgs(failed, strategy, value, NULL);
    if (error == value) {
        Py_DECREF(error);
        PyErr_Restore(type, value, traceback); /* steals all three */
        return;
    }
    if (error != NULL) {
        if (PyExceptionInstance_Check(error)) {
            Py_INCREF(value);
            PyException_SetCause(error, value); /* steals; suppresses context */
            if (error != value) {
                Py_INCREF(value);
                PyException_SetContext(error, value); /* steals */
            }
            /* Restore, not SetObject: that would re-chain the context to an
             * exception the caller is handling. */
            Py_INCREF(Py_TYPE(error));
            Py_INCREF(error);
            PyErr_Restore((PyObject *)Py_TYPE(error), error,
                          PyException_GetTraceback(error));
        }
        else {
            PyErr_SetString(PyExc_TypeError,
                            "freight: a failure callback must return an exception");
        }
        Py_DECREF(error);
    }
    Py_XDECREF(type);
    Py_XDECREF(value);
    Py_XDECREF(traceback);
}

/* b"".join, for frame tuples the serializer assembled. */
static PyObject *join_bytes;

static void put_le(char *out, unsigned long long value, int size);

/* Write the header of a buffer-free message with a size-byte body at out:
 * prefix, counts, meta (binary.buffer_free_header). */
static void
write_header(FastPath *self, char *out, Py_ssize_t size)
{
    Py_ssize_t meta_size = PyBytes_GET_SIZE(self->meta);
    memcpy(out, PyBytes_AS_STRING(self->prefix), PREFIX_SIZE);
    memset(out + PREFIX_SIZE, 0, HEADER_SIZE - PREFIX_SIZE);
    put_le(out + 16, (unsigned long long)size, 8);
    put_le(out + 24, (unsigned long long)meta_size, 4);
    memcpy(out + HEADER_SIZE, PyBytes_AS_STRING(self->meta), (size_t)meta_size);
}

/* That header as bytes (made each time: faster than looking one up). */
static PyObject *
header_for(FastPath *self, Py_ssize_t size)
{
    Py_ssize_t hsize = HEADER_SIZE + PyBytes_GET_SIZE(self->meta);
    PyObject *header = PyBytes_FromStringAndSize(NULL, hsize);
    if (header != NULL) {
        write_header(self, PyBytes_AS_STRING(header), size);
    }
    return header;
}

/* header + body in one allocation. */
static PyObject *
blob(FastPath *self, PyObject *body)
{
    Py_ssize_t size = PyBytes_GET_SIZE(body);
    Py_ssize_t hsize = HEADER_SIZE + PyBytes_GET_SIZE(self->meta);
    PyObject *out = PyBytes_FromStringAndSize(NULL, hsize + size);
    if (out != NULL) {
        write_header(self, PyBytes_AS_STRING(out), size);
        memcpy(PyBytes_AS_STRING(out) + hsize, PyBytes_AS_STRING(body), (size_t)size);
    }
    return out;
}

/* [header, body]. */
static PyObject *
frame_pair(FastPath *self, PyObject *body)
{
    PyObject *header = header_for(self, PyBytes_GET_SIZE(body));
    if (header == NULL) {
        return NULL;
    }
    PyObject *out = PyList_New(2);
    if (out == NULL) {
        Py_DECREF(header);
        return NULL;
    }
    Py_INCREF(body);
    PyList_SET_ITEM(out, 0, header);
    PyList_SET_ITEM(out, 1, body);
    return out;
}

/* encoders[type(obj)](obj, *args) as bytes; NULL without an error set when there
 * is no encoder, it raised an Exception, or it returned something else. */
static PyObject *
direct_body(FastPath *self, PyObject *obj)
{
    PyObject *spec = PyDict_GetItemWithError(self->encoders, (PyObject *)Py_TYPE(obj));
    if (spec == NULL) {
        return NULL;
    }
    if (!PyTuple_Check(spec) || PyTuple_GET_SIZE(spec) < 1) {
        PyErr_SetString(PyExc_TypeError,
                        "freight: an encoder is a tuple (function, *args)");
        return NULL;
    }
    Py_ssize_t nspec = PyTuple_GET_SIZE(spec);
    /* The spec may leave the table while the encoder runs. */
    Py_INCREF(spec);
    PyObject *body;
    if (nspec <= MAX_STACK_ARGS) {
        PyObject *stack[MAX_STACK_ARGS];
        stack[0] = obj;
        for (Py_ssize_t i = 1; i < nspec; i++) {
            stack[i] = PyTuple_GET_ITEM(spec, i);
        }
        body = PyObject_Vectorcall(PyTuple_GET_ITEM(spec, 0), stack, nspec, NULL);
    }
    else {
        PyObject *args = PyTuple_New(nspec);
        body = NULL;
        if (args != NULL) {
            Py_INCREF(obj);
            PyTuple_SET_ITEM(args, 0, obj);
            for (Py_ssize_t i = 1; i < nspec; i++) {
                Py_INCREF(PyTuple_GET_ITEM(spec, i));
                PyTuple_SET_ITEM(args, i, PyTuple_GET_ITEM(spec, i));
            }
            body = PyObject_Call(PyTuple_GET_ITEM(spec, 0), args, NULL);
            Py_DECREF(args);
        }
    }
    Py_DECREF(spec);
    if (body == NULL) {
        if (PyErr_ExceptionMatches(PyExc_Exception)) {
            PyErr_Clear(); /* to_frames encodes again and reports it */
        }
        return NULL;
    }
    if (!PyBytes_CheckExact(body)) {
        Py_DECREF(body);
        return NULL;
    }
    return body;
}

/* strategy.to_frames(obj) as a (body, buffers) tuple; an Exception from it, or
 * a result that is not a pair, raises encode_failed(strategy, exc) from it. */
static PyObject *
checked_pair(FastPath *self, PyObject *obj)
{
    PyObject *frames = PyObject_CallOneArg(self->to_frames, obj);
    if (frames != NULL && !PyTuple_CheckExact(frames)) {
        Py_SETREF(frames, PySequence_Tuple(frames));
    }
    if (frames != NULL && PyTuple_GET_SIZE(frames) != 2) {
        Py_CLEAR(frames);
        PyErr_SetString(PyExc_ValueError, "to_frames must return (body, buffers)");
    }
    if (frames == NULL) {
        raise_from(self->encode_failed, self->strategy);
    }
    return frames;
}

static void
put_le(char *out, unsigned long long value, int size)
{
    for (int i = 0; i < size; i++) {
        out[i] = (char)(value >> (8 * i));
    }
}

static unsigned long long
get_le(const char *in, int size)
{
    unsigned long long value = 0;
    for (int i = size - 1; i >= 0; i--) {
        value = (value << 8) | (unsigned char)in[i];
    }
    return value;
}

/* The size in bytes of a buffer-protocol object; -1 with an error set. */
static Py_ssize_t
buffer_size(PyObject *obj)
{
    if (PyBytes_CheckExact(obj)) {
        return PyBytes_GET_SIZE(obj);
    }
    Py_buffer view;
    if (PyObject_GetBuffer(obj, &view, PyBUF_FULL_RO) < 0) {
        return -1;
    }
    Py_ssize_t size = view.len;
    PyBuffer_Release(&view);
    return size;
}

/* The header of a message with body and buffers (a sequence from PySequence_Fast):
 * as binary.message_header(prefix, body, buffers, meta). */
static PyObject *
buffers_header(FastPath *self, PyObject *body, PyObject *seq)
{
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    PyObject **items = PySequence_Fast_ITEMS(seq);
    Py_ssize_t body_size = buffer_size(body);
    if (body_size < 0) {
        return NULL;
    }
    Py_ssize_t meta_size = PyBytes_GET_SIZE(self->meta);
    Py_ssize_t unpadded = HEADER_SIZE + 8 * n + meta_size + body_size;
    Py_ssize_t pad = (BUFFER_ALIGNMENT - unpadded % BUFFER_ALIGNMENT) % BUFFER_ALIGNMENT;
    Py_ssize_t size = HEADER_SIZE + 8 * n + meta_size + pad;
    PyObject *header = PyBytes_FromStringAndSize(NULL, size);
    if (header == NULL) {
        return NULL;
    }
    char *out = PyBytes_AS_STRING(header);
    memcpy(out, PyBytes_AS_STRING(self->prefix), PREFIX_SIZE);
    put_le(out + 12, (unsigned long long)n, 4);
    put_le(out + 16, (unsigned long long)body_size, 8);
    put_le(out + 24, (unsigned long long)(meta_size + pad), 4);
    memset(out + 28, 0, 4);
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_ssize_t length = buffer_size(items[i]);
        if (length < 0) {
            Py_DECREF(header);
            return NULL;
        }
        put_le(out + HEADER_SIZE + 8 * i, (unsigned long long)length, 8);
    }
    char *meta_out = out + HEADER_SIZE + 8 * n;
    memcpy(meta_out, PyBytes_AS_STRING(self->meta), (size_t)meta_size);
    memset(meta_out + meta_size, ' ', (size_t)pad);
    return header;
}

/* The frames of a message to_frames made, (body, buffers), as a list:
 * [header, body, *buffers]; a body or buffer without the buffer protocol
 * raises encode_failed(strategy, exc) from it. */
static PyObject *
message_frames(FastPath *self, PyObject *body, PyObject *buffers, int has_buffers)
{
    PyObject *out = NULL;
    if (!has_buffers) {
        Py_ssize_t size = buffer_size(body);
        PyObject *header = size < 0 ? NULL : header_for(self, size);
        if (header != NULL) {
            out = PyList_New(2);
            if (out == NULL) {
                Py_DECREF(header);
            }
            else {
                Py_INCREF(body);
                PyList_SET_ITEM(out, 0, header);
                PyList_SET_ITEM(out, 1, body);
            }
        }
    }
    else {
        PyObject *seq = PySequence_Fast(buffers, "to_frames: buffers must be a sequence");
        if (seq != NULL) {
            PyObject *header = buffers_header(self, body, seq);
            Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
            if (header != NULL && (out = PyList_New(n + 2)) != NULL) {
                PyList_SET_ITEM(out, 0, header);
                Py_INCREF(body);
                PyList_SET_ITEM(out, 1, body);
                PyObject **items = PySequence_Fast_ITEMS(seq);
                for (Py_ssize_t i = 0; i < n; i++) {
                    Py_INCREF(items[i]);
                    PyList_SET_ITEM(out, i + 2, items[i]);
                }
            }
            else {
                Py_XDECREF(header);
            }
            Py_DECREF(seq);
        }
    }
    if (out == NULL) {
        raise_from(self->encode_failed, self->strategy);
    }
    return out;
}

/* A frame tuple as one blob or as a list. */
static PyObject *
finish(PyObject *frames, int as_blob)
{
    if (frames == NULL) {
        return NULL;
    }
    PyObject *out = as_blob ? PyObject_CallOneArg(join_bytes, frames)
                            : PySequence_List(frames);
    Py_DECREF(frames);
    return out;
}

/* The message for obj: a blob (as_blob) or a list of frames. */
static PyObject *
encode(FastPath *self, PyObject *obj, int as_blob)
{
    PyObject *body = direct_body(self, obj);
    if (body == NULL && PyErr_Occurred()) {
        return NULL;
    }
    if (body == NULL) {
        if (PyCallable_Check(obj)) {
            return finish(PyObject_CallOneArg(self->code_frames, obj), as_blob);
        }
        PyObject *pair = checked_pair(self, obj);
        if (pair == NULL) {
            return NULL;
        }
        PyObject *buffers = PyTuple_GET_ITEM(pair, 1);
        int has_buffers = PyObject_IsTrue(buffers);
        if (has_buffers < 0) {
            Py_DECREF(pair);
            return NULL;
        }
        body = PyTuple_GET_ITEM(pair, 0);
        if (has_buffers || !PyBytes_CheckExact(body)) {
            PyObject *frames = message_frames(self, body, buffers, has_buffers);
            Py_DECREF(pair);
            if (frames == NULL || !as_blob) {
                return frames;
            }
            PyObject *out = PyObject_CallOneArg(join_bytes, frames);
            Py_DECREF(frames);
            return out;
        }
        Py_INCREF(body);
        Py_DECREF(pair);
    }
    PyObject *out = as_blob ? blob(self, body) : frame_pair(self, body);
    Py_DECREF(body);
    return out;
}

static PyObject *
fast_dumps(FastPath *self, PyObject *obj)
{
    return encode(self, obj, 1);
}

static PyObject *
fast_dumps_frames(FastPath *self, PyObject *obj)
{
    return encode(self, obj, 0);
}

/* obj's memory as a flat memoryview of bytes (format "B"), as
 * binary.byte_view; NULL without an error set when it has none (no buffer
 * protocol, not C-contiguous, or an Exception on the way), NULL with an error
 * set only for something that is not an Exception (KeyboardInterrupt ...). */
static PyObject *
byte_view(PyObject *obj)
{
    PyObject *view = PyMemoryView_FromObject(obj);
    if (view != NULL) {
        Py_buffer *b = PyMemoryView_GET_BUFFER(view);
        if (!PyBuffer_IsContiguous(b, 'C')) {
            Py_CLEAR(view);
        }
        else if (b->ndim != 1 || b->itemsize != 1
                 || (b->format != NULL && strcmp(b->format, "B") != 0)) {
            Py_SETREF(view, PyObject_CallMethod(view, "cast", "s", "B"));
        }
    }
    if (view == NULL && PyErr_Occurred() && PyErr_ExceptionMatches(PyExc_Exception)) {
        PyErr_Clear();
    }
    return view;
}

/* A limit from a learned entry as a long long (a huge one saturates). */
static int
as_limit(PyObject *value, long long *out)
{
    if (!PyLong_Check(value)) {
        PyErr_SetString(PyExc_TypeError, "freight: a malformed learned entry");
        return -1;
    }
    int overflow = 0;
    long long limit = PyLong_AsLongLongAndOverflow(value, &overflow);
    if (limit == -1 && PyErr_Occurred()) {
        return -1;
    }
    *out = overflow > 0 ? LLONG_MAX : (overflow < 0 ? -1 : limit);
    return 0;
}

/* The learned entry for the header prefix at p, checked to be a 5-tuple
 * (decode, decode_frames, strategy, max_size, max_frames): a new reference,
 * since what follows may run code that changes the table; NULL, without an
 * error set, when there is none. */
static PyObject *
learned(FastPath *self, const char *p, long long *max_size, long long *max_frames)
{
    PyObject *key = PyBytes_FromStringAndSize(p, PREFIX_SIZE);
    if (key == NULL) {
        return NULL;
    }
    PyObject *entry = PyDict_GetItemWithError(self->known, key);
    Py_DECREF(key);
    if (entry == NULL) {
        return NULL;
    }
    if (!PyTuple_Check(entry) || PyTuple_GET_SIZE(entry) != 5) {
        PyErr_SetString(PyExc_TypeError, "freight: a malformed learned entry");
        return NULL;
    }
    if (as_limit(PyTuple_GET_ITEM(entry, 3), max_size) < 0
        || as_limit(PyTuple_GET_ITEM(entry, 4), max_frames) < 0) {
        return NULL;
    }
    Py_INCREF(entry);
    return entry;
}

/* The entry's decode(body), or decode_frames(body, buffers) when there are
 * buffers; an Exception raises decode_failed(strategy, exc). */
static PyObject *
run_decoder(FastPath *self, PyObject *entry, PyObject *body, PyObject *buffers)
{
    PyObject *result;
    if (buffers != NULL) {
        PyObject *args[2] = {body, buffers};
        result = PyObject_Vectorcall(PyTuple_GET_ITEM(entry, 1), args, 2, NULL);
    }
    else {
        result = PyObject_CallOneArg(PyTuple_GET_ITEM(entry, 0), body);
    }
    if (result == NULL) {
        raise_from(self->decode_failed, PyTuple_GET_ITEM(entry, 2));
    }
    return result;
}

/* Body and buffers of the blob p[0:size] (data's memory; *view a byte view of
 * it or NULL, made here when slices are needed) whose prefix is learned: 1
 * with *body and *buffers set (new references; *buffers stays NULL without
 * buffers), 0 when its lengths do not add up, -1 with an error set. */
static int
blob_parts(PyObject *data, PyObject **view, const char *p, Py_ssize_t size,
           long long max_size, long long max_frames, PyObject **body,
           PyObject **buffers)
{
    unsigned long long n = get_le(p + 12, 4), body_len = get_le(p + 16, 8);
    unsigned long long meta_len = get_le(p + 24, 4), reserved = get_le(p + 28, 4);
    if (reserved || (long long)n > max_frames || (long long)size > max_size
        || (unsigned long long)(size - HEADER_SIZE) / 8 < n) {
        return 0;
    }
    unsigned long long remaining = (unsigned long long)size - HEADER_SIZE - 8 * n;
    if (meta_len > remaining) {
        return 0;
    }
    remaining -= meta_len;
    if (body_len > remaining) {
        return 0;
    }
    remaining -= body_len;
    for (unsigned long long i = 0; i < n; i++) {
        unsigned long long length = get_le(p + HEADER_SIZE + 8 * i, 8);
        if (length > remaining) {
            return 0;
        }
        remaining -= length;
    }
    if (remaining != 0) {
        return 0;
    }
    Py_ssize_t start = (Py_ssize_t)(HEADER_SIZE + 8 * n + meta_len);
    Py_ssize_t end = start + (Py_ssize_t)body_len;
    if ((n > 0 || body_len > SMALL_BODY) && *view == NULL) {
        *view = byte_view(data);
        if (*view == NULL) {
            return PyErr_Occurred() ? -1 : 0;
        }
    }
    *body = body_len <= SMALL_BODY
                ? PyBytes_FromStringAndSize(p + start, (Py_ssize_t)body_len)
                : PySequence_GetSlice(*view, start, end);
    if (*body == NULL) {
        return -1;
    }
    if (n == 0) {
        return 1;
    }
    *buffers = PyList_New((Py_ssize_t)n);
    if (*buffers == NULL) {
        return -1;
    }
    for (unsigned long long i = 0; i < n; i++) {
        Py_ssize_t length = (Py_ssize_t)get_le(p + HEADER_SIZE + 8 * i, 8);
        PyObject *slice = PySequence_GetSlice(*view, end, end + length);
        if (slice == NULL) {
            return -1;
        }
        PyList_SET_ITEM(*buffers, (Py_ssize_t)i, slice);
        end += length;
    }
    return 1;
}

static PyObject *
fast_loads(FastPath *self, PyObject *data)
{
    PyObject *view = NULL, *entry = NULL, *body = NULL, *buffers = NULL;
    PyObject *result = NULL;
    const char *p;
    Py_ssize_t size;
    long long max_size, max_frames;
    if (PyBytes_CheckExact(data)) {
        p = PyBytes_AS_STRING(data);
        size = PyBytes_GET_SIZE(data);
    }
    else {
        view = byte_view(data);
        if (view == NULL) {
            if (PyErr_Occurred()) {
                return NULL;
            }
            goto slow;
        }
        p = PyMemoryView_GET_BUFFER(view)->buf;
        size = PyMemoryView_GET_BUFFER(view)->len;
    }
    if (size < HEADER_SIZE) {
        goto slow;
    }
    entry = learned(self, p, &max_size, &max_frames);
    if (entry == NULL) {
        if (PyErr_Occurred()) {
            goto done;
        }
        goto slow;
    }
    int found = blob_parts(data, &view, p, size, max_size, max_frames, &body, &buffers);
    if (found < 0) {
        goto done;
    }
    if (found > 0) {
        result = run_decoder(self, entry, body, buffers);
        goto done;
    }
slow:
    result = PyObject_CallOneArg(self->loads_slow, data);
done:
    Py_XDECREF(view);
    Py_XDECREF(entry);
    Py_XDECREF(body);
    Py_XDECREF(buffers);
    return result;
}

/* The memory of frame (any buffer): *p and *size, with *view set to a byte view
 * holding it unless frame is bytes: 1; 0 if it has none; -1 with an error. */
static int
frame_memory(PyObject *frame, PyObject **view, const char **p, Py_ssize_t *size)
{
    if (PyBytes_CheckExact(frame)) {
        *p = PyBytes_AS_STRING(frame);
        *size = PyBytes_GET_SIZE(frame);
        return 1;
    }
    *view = byte_view(frame);
    if (*view == NULL) {
        return PyErr_Occurred() ? -1 : 0;
    }
    *p = PyMemoryView_GET_BUFFER(*view)->buf;
    *size = PyMemoryView_GET_BUFFER(*view)->len;
    return 1;
}

static PyObject *
fast_loads_frames(FastPath *self, PyObject *frames)
{
    PyObject *items = NULL, *header_view = NULL, *entry = NULL, *body = NULL;
    PyObject *buffers = NULL, *result = NULL;
    long long max_size, max_frames;
    const char *p;
    Py_ssize_t hsize;
    if (!PyList_CheckExact(frames) && !PyTuple_CheckExact(frames)) {
        goto slow;
    }
    /* A tuple of its own: the list may change while buffers are exported. */
    items = PySequence_Tuple(frames);
    if (items == NULL) {
        return NULL;
    }
    Py_ssize_t count = PyTuple_GET_SIZE(items);
    if (count < 2) {
        goto slow;
    }
    int found = frame_memory(PyTuple_GET_ITEM(items, 0), &header_view, &p, &hsize);
    if (found <= 0) {
        goto fail_or_slow;
    }
    if (hsize < HEADER_SIZE) {
        goto slow;
    }
    entry = learned(self, p, &max_size, &max_frames);
    if (entry == NULL) {
        goto fail_or_slow;
    }
    unsigned long long n = get_le(p + 12, 4), body_len = get_le(p + 16, 8);
    unsigned long long meta_len = get_le(p + 24, 4), reserved = get_le(p + 28, 4);
    if (reserved || (long long)n > max_frames || (unsigned long long)count != n + 2
        || (unsigned long long)hsize != HEADER_SIZE + 8 * n + meta_len) {
        goto slow;
    }
    PyObject *frame = PyTuple_GET_ITEM(items, 1);
    Py_ssize_t blen;
    if (PyBytes_CheckExact(frame)) {
        Py_INCREF(frame);
        body = frame;
        blen = PyBytes_GET_SIZE(frame);
    }
    else {
        body = byte_view(frame);
        if (body == NULL) {
            goto fail_or_slow;
        }
        blen = PyMemoryView_GET_BUFFER(body)->len;
        if (blen <= SMALL_BODY) {
            Py_SETREF(body, PyBytes_FromStringAndSize(
                                PyMemoryView_GET_BUFFER(body)->buf, blen));
            if (body == NULL) {
                goto done;
            }
        }
    }
    if ((unsigned long long)blen != body_len) {
        goto slow;
    }
    unsigned long long total = (unsigned long long)hsize + body_len;
    if (n > 0) {
        buffers = PyList_New((Py_ssize_t)n);
        if (buffers == NULL) {
            goto done;
        }
        for (Py_ssize_t i = 0; i < (Py_ssize_t)n; i++) {
            PyObject *view = byte_view(PyTuple_GET_ITEM(items, i + 2));
            if (view == NULL) {
                goto fail_or_slow;
            }
            PyList_SET_ITEM(buffers, i, view);
            unsigned long long length = (unsigned long long)PyMemoryView_GET_BUFFER(view)->len;
            if (length != get_le(p + HEADER_SIZE + 8 * i, 8)) {
                goto slow;
            }
            total += length;
        }
    }
    if (max_size < 0 || total > (unsigned long long)max_size) {
        goto slow;
    }
    result = run_decoder(self, entry, body, buffers);
    goto done;
fail_or_slow:
    if (PyErr_Occurred()) {
        goto done;
    }
slow:
    result = PyObject_CallOneArg(self->loads_frames_slow, frames);
done:
    Py_XDECREF(items);
    Py_XDECREF(header_view);
    Py_XDECREF(entry);
    Py_XDECREF(body);
    Py_XDECREF(buffers);
    return result;
}

/* The constructor's arguments, in order; each is kept in the field of its name. */
#define ARGUMENT_FIELDS(X)                                                          \
    X(strategy) X(encoders) X(prefix) X(meta)                                       \
    X(code_frames) X(encode_failed) X(known) X(loads_slow) X(loads_frames_slow)     \
    X(decode_failed)
#define ALL_FIELDS(X) ARGUMENT_FIELDS(X) X(to_frames)

static int
fast_init(FastPath *self, PyObject *args, PyObject *kwds)
{
#define NAME(field) #field,
    static char *names[] = {ARGUMENT_FIELDS(NAME) NULL};
#undef NAME
#define DECLARE(field) PyObject *field;
    ARGUMENT_FIELDS(DECLARE)
#undef DECLARE
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OO!O!O!OOO!OOO:FastPath", names,
                                     &strategy, &PyDict_Type, &encoders,
                                     &PyBytes_Type, &prefix, &PyBytes_Type, &meta,
                                     &code_frames, &encode_failed, &PyDict_Type,
                                     &known, &loads_slow, &loads_frames_slow,
                                     &decode_failed)) {
        return -1;
    }
    if (PyBytes_GET_SIZE(prefix) != PREFIX_SIZE) {
        PyErr_SetString(PyExc_ValueError, "FastPath: prefix must be 12 bytes");
        return -1;
    }
    PyObject *to_frames = PyObject_GetAttrString(strategy, "to_frames");
    if (to_frames == NULL) {
        return -1;
    }
#define KEEP(field) Py_INCREF(field); Py_XSETREF(self->field, field);
    ARGUMENT_FIELDS(KEEP)
#undef KEEP
    Py_XSETREF(self->to_frames, to_frames);
    return 0;
}

static int
fast_traverse(FastPath *self, visitproc visit, void *arg)
{
#define VISIT(field) Py_VISIT(self->field);
    ALL_FIELDS(VISIT)
#undef VISIT
    return 0;
}

static int
fast_clear(FastPath *self)
{
#define CLEAR(field) Py_CLEAR(self->field);
    ALL_FIELDS(CLEAR)
#undef CLEAR
    return 0;
}

static void
fast_dealloc(FastPath *self)
{
    PyObject_GC_UnTrack(self);
    fast_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *
checked(FastPath *self, PyObject *(*method)(FastPath *, PyObject *), PyObject *arg)
{
    if (self->known == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "freight: FastPath not initialised");
        return NULL;
    }
    return method(self, arg);
}

static PyObject *
dumps_method(PyObject *self, PyObject *obj)
{
    return checked((FastPath *)self, fast_dumps, obj);
}

static PyObject *
loads_method(PyObject *self, PyObject *data)
{
    return checked((FastPath *)self, fast_loads, data);
}

static PyObject *
dumps_frames_method(PyObject *self, PyObject *obj)
{
    return checked((FastPath *)self, fast_dumps_frames, obj);
}

static PyObject *
loads_frames_method(PyObject *self, PyObject *frames)
{
    return checked((FastPath *)self, fast_loads_frames, frames);
}

static PyMethodDef fast_methods[] = {
    {"dumps", dumps_method, METH_O, "As PyFastPath.dumps."},
    {"loads", loads_method, METH_O, "As PyFastPath.loads."},
    {"dumps_frames", dumps_frames_method, METH_O, "As PyFastPath.dumps_frames."},
    {"loads_frames", loads_frames_method, METH_O, "As PyFastPath.loads_frames."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject FastPathType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "freight.serialize._accel.FastPath",
    .tp_basicsize = sizeof(FastPath),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "The binary envelope's fast paths over a serializer's tables.",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)fast_init,
    .tp_dealloc = (destructor)fast_dealloc,
    .tp_traverse = (traverseproc)fast_traverse,
    .tp_clear = (inquiry)fast_clear,
    .tp_methods = fast_methods,
};

/* -- utf8_buffer: a str's UTF-8 as a buffer --------------------------------------
 *
 * An ASCII str's characters are its UTF-8 encoding, one byte each, stored in the
 * str object itself; StrBuffer exports that memory read-only (keeping the str
 * alive), so a large str goes into a message's frames without being encoded
 * into a copy first. */

typedef struct {
    PyObject_HEAD
    PyObject *text; /* an exact, ASCII str */
} StrBuffer;

static int
strbuffer_getbuffer(StrBuffer *self, Py_buffer *view, int flags)
{
    return PyBuffer_FillInfo(view, (PyObject *)self, PyUnicode_DATA(self->text),
                             PyUnicode_GET_LENGTH(self->text), 1, flags);
}

static void
strbuffer_dealloc(StrBuffer *self)
{
    Py_XDECREF(self->text);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyBufferProcs strbuffer_as_buffer = {
    .bf_getbuffer = (getbufferproc)strbuffer_getbuffer,
};

static PyTypeObject StrBufferType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "freight.serialize._accel.StrBuffer",
    .tp_basicsize = sizeof(StrBuffer),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "The read-only memory of an ASCII str (see utf8_buffer).",
    .tp_dealloc = (destructor)strbuffer_dealloc,
    .tp_as_buffer = &strbuffer_as_buffer,
};

static PyObject *
utf8_buffer(PyObject *module, PyObject *text)
{
    if (!PyUnicode_Check(text)) {
        PyErr_Format(PyExc_TypeError, "utf8_buffer() takes a str, got %.200s",
                     Py_TYPE(text)->tp_name);
        return NULL;
    }
#if PY_VERSION_HEX < 0x030C0000
    if (PyUnicode_READY(text) < 0) { /* a legacy str made by the old API */
        return NULL;
    }
#endif
    if (!PyUnicode_CheckExact(text) || !PyUnicode_IS_ASCII(text)) {
        return PyUnicode_AsEncodedString(text, "utf-8", "surrogatepass");
    }
    StrBuffer *owner = PyObject_New(StrBuffer, &StrBufferType);
    if (owner == NULL) {
        return NULL;
    }
    Py_INCREF(text);
    owner->text = text;
    PyObject *view = PyMemoryView_FromObject((PyObject *)owner);
    Py_DECREF(owner);
    return view;
}

static PyMethodDef accel_functions[] = {
    {"utf8_buffer", utf8_buffer, METH_O,
     "As freight.serialize.binary.py_utf8_buffer, without the copy for an ASCII "
     "str: a read-only memoryview of its own memory."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef accel_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "freight.serialize._accel",
    .m_doc = "C twin of freight.serialize.fastpath.",
    .m_size = -1,
    .m_methods = accel_functions,
};

PyMODINIT_FUNC
PyInit__accel(void)
{
    if (PyType_Ready(&FastPathType) < 0 || PyType_Ready(&StrBufferType) < 0) {
        return NULL;
    }
    PyObject *empty = PyBytes_FromStringAndSize(NULL, 0);
    if (empty == NULL) {
        return NULL;
    }
    Py_XSETREF(join_bytes, PyObject_GetAttrString(empty, "join"));
    Py_DECREF(empty);
    if (join_bytes == NULL) {
        return NULL;
    }
    PyObject *module = PyModule_Create(&accel_module);
    if (module == NULL) {
        return NULL;
    }
    if (PyModule_AddIntConstant(module, "SMALL_BODY", SMALL_BODY) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    Py_INCREF(&FastPathType);
    if (PyModule_AddObject(module, "FastPath", (PyObject *)&FastPathType) < 0) {
        Py_DECREF(&FastPathType);
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
