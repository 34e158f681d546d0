"""Tensor files without extra packages: safetensors (an 8-byte little-endian header length, a JSON
header of {name: {dtype, shape, data_offsets}} plus optional __metadata__, then the raw data),
the fixtures' headerless .bin files, and atomic writes (temporary file, fsync, rename)."""
import json
import os
import struct
import tempfile
from collections import OrderedDict

import numpy as np
import torch

_DTYPES = {
    'F64': np.float64, 'F32': np.float32, 'F16': np.float16, 'I64': np.int64, 'I32': np.int32,
    'I16': np.int16, 'I8': np.int8, 'U8': np.uint8, 'BOOL': np.bool_,
}
_CODES = {np.dtype(v): k for k, v in _DTYPES.items()}
MAX_HEADER = 100 << 20


def read_safetensors(path):
    """(OrderedDict name -> numpy array in file order, metadata dict)."""
    with open(path, 'rb') as f:
        data = f.read()
    if len(data) < 8:
        raise ValueError(f'{path}: too short for a safetensors file')
    (n,) = struct.unpack('<Q', data[:8])
    if n > MAX_HEADER or 8 + n > len(data):
        raise ValueError(f'{path}: header length {n} does not fit the file ({len(data)} bytes)')
    header = json.loads(data[8:8 + n])
    meta = header.pop('__metadata__', {}) or {}
    body = memoryview(data)[8 + n:]
    out = OrderedDict()
    for name, info in sorted(header.items(), key=lambda kv: kv[1]['data_offsets'][0]):
        if info['dtype'] not in _DTYPES:
            raise ValueError(f'{path}: {name} has unsupported dtype {info["dtype"]}')
        start, end = info['data_offsets']
        dtype = np.dtype(_DTYPES[info['dtype']]).newbyteorder('<')
        shape = tuple(info['shape'])
        if end - start != int(np.prod(shape, dtype=np.int64)) * dtype.itemsize or end > len(body):
            raise ValueError(f'{path}: {name} offsets {start}..{end} do not match shape {shape}')
        out[name] = np.frombuffer(body[start:end], dtype=dtype).reshape(shape).copy()
    return out, meta


def load_state_dict(path):
    """A safetensors file as {name: torch.Tensor} (and its metadata)."""
    arrays, meta = read_safetensors(path)
    return OrderedDict((k, torch.from_numpy(v)) for k, v in arrays.items()), meta


def write_atomic(path, data):
    """Writes bytes beside `path`, syncs, then renames over it: a reader never sees half a file."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f'.{os.path.basename(path)}.', suffix='.tmp', dir=directory)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the file the permissions open() would
    try:
        with os.fdopen(fd, 'wb') as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def safetensors_bytes(tensors, metadata=None):
    """tensors: {name: torch.Tensor | numpy array}, written in the given order."""
    header = {}
    chunks = []
    offset = 0
    for name, t in tensors.items():
        a = t.detach().cpu().contiguous().numpy() if isinstance(t, torch.Tensor) else np.ascontiguousarray(t)
        a = a.astype(a.dtype.newbyteorder('<'), copy=False)
        code = _CODES.get(np.dtype(a.dtype.type))
        if code is None:
            raise ValueError(f'{name}: dtype {a.dtype} has no safetensors code here')
        raw = a.tobytes()
        header[name] = {'dtype': code, 'shape': list(a.shape), 'data_offsets': [offset, offset + len(raw)]}
        chunks.append(raw)
        offset += len(raw)
    if metadata:
        header['__metadata__'] = {str(k): str(v) for k, v in metadata.items()}
    text = json.dumps(header, separators=(',', ':')).encode()
    text += b' ' * (-len(text) % 8)  # keep the data 8-byte aligned
    return struct.pack('<Q', len(text)) + text + b''.join(chunks)


def write_safetensors(path, tensors, metadata=None):
    write_atomic(path, safetensors_bytes(tensors, metadata))


def read_bin(path, shape, dtype=np.float32):
    """A fixture .bin: raw little-endian C-order data with no header."""
    a = np.fromfile(path, dtype=np.dtype(dtype).newbyteorder('<'))
    if a.size != int(np.prod(shape)):
        raise ValueError(f'{path}: {a.size} values, expected shape {shape}')
    return torch.from_numpy(a.reshape(shape).astype(dtype))


def torch_save(obj, path):
    """torch.save through a buffer (the zip's top folder is then 'archive'), written atomically."""
    import io
    buf = io.BytesIO()
    torch.save(obj, buf)
    write_atomic(path, buf.getvalue())


def load_weights(path):
    """A state dict from .safetensors, or from a .pth holding a bare state dict or one under
    'state_dict' (mmseg/mmcv) or 'model' (torchvision references, official SwiftFormer).
    Returns (state, extra): extra is the .pth's other top-level entries or the safetensors metadata."""
    if path.endswith('.safetensors'):
        return load_state_dict(path)
    obj = torch.load(path, map_location='cpu')
    if isinstance(obj, dict):
        for key in ('state_dict', 'model'):
            if key in obj and isinstance(obj[key], dict):
                return OrderedDict(obj[key]), {k: v for k, v in obj.items() if k != key}
        return OrderedDict(obj), {}
    raise ValueError(f'{path}: not a state dict or a checkpoint dict')


def write_json(path, obj, indent=2):
    write_atomic(path, (json.dumps(obj, indent=indent) + '\n').encode())


def _graph_ops(graph):
    """Operator types of an ONNX graph and of the subgraphs of its Loop / If nodes."""
    ops = set()
    for n in graph.node:
        ops.add(n.op_type)
        for a in n.attribute:
            if a.g.node:
                ops |= _graph_ops(a.g)
            for g in a.graphs:
                ops |= _graph_ops(g)
    return ops


def onnx_summary(model):
    """Inputs and outputs with their dims (names for symbolic ones), node count and operator types."""
    dims = lambda v: [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]  # noqa: E731
    return {'inputs': {v.name: dims(v) for v in model.graph.input}, 'outputs': {v.name: dims(v) for v in model.graph.output},
            'nodes': len(model.graph.node), 'ops': sorted(_graph_ops(model.graph))}


def finish_onnx_export(path, model, record):
    """Checks the (edited) ONNX model, writes it back, and writes <stem>.export.json: `record` plus the
    model's inputs, outputs and operators. Returns the record."""
    import onnx
    onnx.checker.check_model(model)
    write_atomic(path, model.SerializeToString())
    record = {'onnx': path, **record, **onnx_summary(model), 'torch': torch.__version__}
    write_json(os.path.splitext(path)[0] + '.export.json', record)
    print(json.dumps(record, indent=2))
    return record
