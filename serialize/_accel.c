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
#include <string.h>

/* Encoder calls with up to this many arguments (obj included) use the stack. */
#define MAX_STACK_ARGS 8

typedef struct {
    PyObject_HEAD
    PyObject *strategy;      /* the data strategy */
    PyObject *to_frames;     /* strategy.to_frames */
    PyObject *encoders;      /* dict: type -> (function, *args) */
    PyObject *heads;         /* dict: int -> bytes */
    PyObject *make_header;   /* callable(size) -> bytes */
    PyObject *assemble;      /* callable(body, buffers) -> tuple of frames */
    PyObject *code_frames;   /* callable(fn) -> tuple of frames */
    PyObject *encode_failed; /* callable(strategy, exc) -> exception */
    PyObject *known;         /* dict: int -> (head, small, decode, strategy) */
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

/* The header of a buffer-free message with a size-byte body: from heads, or
 * made by make_header. */
static PyObject *
header_for(FastPath *self, Py_ssize_t size)
{
    PyObject *key = PyLong_FromSsize_t(size);
    if (key == NULL) {
        return NULL;
    }
    PyObject *header = PyDict_GetItemWithError(self->heads, key);
    if (header != NULL) {
        Py_INCREF(header);
    }
    else if (!PyErr_Occurred()) {
        header = PyObject_CallOneArg(self->make_header, key);
    }
    Py_DECREF(key);
    if (header != NULL && !PyBytes_CheckExact(header)) {
        PyErr_SetString(PyExc_TypeError, "freight: a message header must be bytes");
        Py_CLEAR(header);
    }
    return header;
}

/* header + body in one allocation. */
static PyObject *
blob(FastPath *self, PyObject *body)
{
    Py_ssize_t size = PyBytes_GET_SIZE(body);
    PyObject *header = header_for(self, size);
    if (header == NULL) {
        return NULL;
    }
    Py_ssize_t hsize = PyBytes_GET_SIZE(header);
    PyObject *out = PyBytes_FromStringAndSize(NULL, hsize + size);
    if (out != NULL) {
        memcpy(PyBytes_AS_STRING(out), PyBytes_AS_STRING(header), (size_t)hsize);
        memcpy(PyBytes_AS_STRING(out) + hsize, PyBytes_AS_STRING(body), (size_t)size);
    }
    Py_DECREF(header);
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
            PyObject *frames = PyObject_CallFunctionObjArgs(
                self->assemble, body, buffers, NULL);
            Py_DECREF(pair);
            return finish(frames, as_blob);
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

/* data[start:] as bytes (small) or as a memoryview of data. */
static PyObject *
body_of(PyObject *data, Py_ssize_t start, int small)
{
    Py_ssize_t end = PyBytes_GET_SIZE(data);
    if (small) {
        return PyBytes_FromStringAndSize(PyBytes_AS_STRING(data) + start, end - start);
    }
    PyObject *view = PyMemoryView_FromObject(data);
    if (view == NULL) {
        return NULL;
    }
    PyObject *slice = PySequence_GetSlice(view, start, end);
    Py_DECREF(view);
    return slice;
}

/* The learned entry for a message of size bytes, checked to be a 4-tuple
 * (head, small, decode, strategy) with a bytes head: a new reference, since
 * what follows may run code that changes the table; NULL, without an error set,
 * when there is none. */
static PyObject *
learned(FastPath *self, Py_ssize_t size)
{
    PyObject *key = PyLong_FromSsize_t(size);
    if (key == NULL) {
        return NULL;
    }
    PyObject *entry = PyDict_GetItemWithError(self->known, key);
    Py_DECREF(key);
    if (entry == NULL) {
        return NULL;
    }
    if (!PyTuple_Check(entry) || PyTuple_GET_SIZE(entry) != 4
        || !PyBytes_CheckExact(PyTuple_GET_ITEM(entry, 0))) {
        PyErr_SetString(PyExc_TypeError, "freight: a malformed learned header");
        return NULL;
    }
    Py_INCREF(entry);
    return entry;
}

/* The entry's decode(body); an Exception raises decode_failed(strategy, exc). */
static PyObject *
decode_with(FastPath *self, PyObject *entry, PyObject *body)
{
    PyObject *result = PyObject_CallOneArg(PyTuple_GET_ITEM(entry, 2), body);
    if (result == NULL) {
        raise_from(self->decode_failed, PyTuple_GET_ITEM(entry, 3));
    }
    return result;
}

static PyObject *
fast_loads(FastPath *self, PyObject *data)
{
    if (!PyBytes_CheckExact(data)) {
        return PyObject_CallOneArg(self->loads_slow, data);
    }
    PyObject *entry = learned(self, PyBytes_GET_SIZE(data));
    if (entry == NULL) {
        return PyErr_Occurred() ? NULL : PyObject_CallOneArg(self->loads_slow, data);
    }
    PyObject *result;
    PyObject *head = PyTuple_GET_ITEM(entry, 0);
    Py_ssize_t start = PyBytes_GET_SIZE(head);
    if (start > PyBytes_GET_SIZE(data)
        || memcmp(PyBytes_AS_STRING(data), PyBytes_AS_STRING(head), (size_t)start)) {
        result = PyObject_CallOneArg(self->loads_slow, data);
    }
    else {
        PyObject *body = body_of(data, start, PyTuple_GET_ITEM(entry, 1) == Py_True);
        result = body == NULL ? NULL : decode_with(self, entry, body);
        Py_XDECREF(body);
    }
    Py_DECREF(entry);
    return result;
}

static PyObject *
fast_loads_frames(FastPath *self, PyObject *frames)
{
    if (!PyList_CheckExact(frames) || PyList_GET_SIZE(frames) != 2) {
        return PyObject_CallOneArg(self->loads_frames_slow, frames);
    }
    PyObject *header = PyList_GET_ITEM(frames, 0);
    PyObject *body = PyList_GET_ITEM(frames, 1);
    if (!PyBytes_CheckExact(header) || !PyBytes_CheckExact(body)) {
        return PyObject_CallOneArg(self->loads_frames_slow, frames);
    }
    Py_ssize_t hsize = PyBytes_GET_SIZE(header);
    PyObject *entry = learned(self, hsize + PyBytes_GET_SIZE(body));
    if (entry == NULL) {
        return PyErr_Occurred() ? NULL
                                : PyObject_CallOneArg(self->loads_frames_slow, frames);
    }
    PyObject *result;
    PyObject *head = PyTuple_GET_ITEM(entry, 0);
    if (PyBytes_GET_SIZE(head) != hsize
        || memcmp(PyBytes_AS_STRING(header), PyBytes_AS_STRING(head), (size_t)hsize)) {
        result = PyObject_CallOneArg(self->loads_frames_slow, frames);
    }
    else {
        /* The body may leave its list while decode runs. */
        Py_INCREF(body);
        result = decode_with(self, entry, body);
        Py_DECREF(body);
    }
    Py_DECREF(entry);
    return result;
}

/* The constructor's arguments, in order; each is kept in the field of its name. */
#define ARGUMENT_FIELDS(X)                                                          \
    X(strategy) X(encoders) X(heads) X(make_header) X(assemble) X(code_frames)      \
    X(encode_failed) X(known) X(loads_slow) X(loads_frames_slow) X(decode_failed)
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
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OO!O!OOOOO!OOO:FastPath", names,
                                     &strategy, &PyDict_Type, &encoders,
                                     &PyDict_Type, &heads, &make_header, &assemble,
                                     &code_frames, &encode_failed, &PyDict_Type,
                                     &known, &loads_slow, &loads_frames_slow,
                                     &decode_failed)) {
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
    Py_INCREF(&FastPathType);
    if (PyModule_AddObject(module, "FastPath", (PyObject *)&FastPathType) < 0) {
        Py_DECREF(&FastPathType);
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
