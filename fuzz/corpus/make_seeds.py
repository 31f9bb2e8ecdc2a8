#!/usr/bin/env python3
"""Writes the fuzzers' seed corpora (small files) into fuzz/corpus/<target>/.
Pure standard library; deterministic. Usage: python3 fuzz/corpus/make_seeds.py"""
import collections
import io
import json
import os
import pickle
import struct
import sys
import types
import zipfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def write(target, name, data):
    os.makedirs(os.path.join(HERE, target), exist_ok=True)
    with open(os.path.join(HERE, target, name), 'wb') as f:
        f.write(data)


def fake_module(name, **attrs):
    m = types.ModuleType(name)
    for k, v in attrs.items():
        v.__module__, v.__qualname__ = name, k
        setattr(m, k, v)
    sys.modules[name] = m
    return m


def _rebuild_tensor_v2(*a):
    raise RuntimeError('stand-in')


class FloatStorage:
    pass


fake_module('torch')
fake_module('torch._utils', _rebuild_tensor_v2=_rebuild_tensor_v2)
sys.modules['torch'].FloatStorage = FloatStorage
FloatStorage.__module__, FloatStorage.__qualname__ = 'torch', 'FloatStorage'


class Tensor:
    def __init__(self, key, numel, offset, size, stride):
        self.key, self.numel, self.args = key, numel, (offset, size, stride)

    def __reduce__(self):
        return (_rebuild_tensor_v2, (Storage(self.key, self.numel),) + self.args + (False, collections.OrderedDict()))


class Storage:
    def __init__(self, key, numel):
        self.key, self.numel = key, numel


class TorchPickler(pickle.Pickler):
    def persistent_id(self, obj):
        if isinstance(obj, Storage):
            return ('storage', FloatStorage, obj.key, 'cpu', obj.numel)
        return None


def torch_zip(tensors, storages, compress=zipfile.ZIP_STORED):
    buf = io.BytesIO()
    p = io.BytesIO()
    TorchPickler(p, protocol=2).dump(collections.OrderedDict(tensors))
    with zipfile.ZipFile(buf, 'w', compress) as z:
        for name, data in [('archive/data.pkl', p.getvalue())] + [('archive/data/' + k, v) for k, v in storages]:
            info = zipfile.ZipInfo(name, (1980, 1, 1, 0, 0, 0))
            info.compress_type = compress
            z.writestr(info, data)
        info = zipfile.ZipInfo('archive/version', (1980, 1, 1, 0, 0, 0))
        z.writestr(info, b'3\n')
    return buf.getvalue(), p.getvalue()


def main():
    floats = struct.pack('<8f', *[0.5 * i for i in range(8)])
    pt, pkl = torch_zip([('w', Tensor('0', 8, 0, (2, 3), (3, 1))), ('b', Tensor('0', 8, 6, (2,), (1,))),
                         ('t', Tensor('1', 4, 1, (3,), (1,)))], [('0', floats), ('1', floats[:16])])
    write('torch', 'tiny.pt', pt)
    write('torch', 'tiny_deflate.pt', torch_zip([('w', Tensor('0', 8, 0, (8,), (1,)))], [('0', floats)],
                                                zipfile.ZIP_DEFLATED)[0])
    write('pickle', 'torch_data.pkl', pkl)
    write('zip', 'tiny.pt', pt)
    for proto in range(6):
        obj = {'a': [1, -2, 3.5, None, True, (1, 2, 3)], 'b': b'\x00\xff' * 3, 'long': 2 ** 62,
               'neg': -(2 ** 40), 'set': {1, 2}, 'fs': frozenset([3]), 'u': 'h\u00e9\u20ac', 'ba': bytearray(b'xy'),
               'od': collections.OrderedDict([('k', 1)])}
        write('pickle', 'proto%d.pkl' % proto, pickle.dumps(obj, protocol=proto))
    small = os.path.join(ROOT, 'tests/fixtures/corrupt/dalia_missing_key/S1/S1.pkl')
    with open(small, 'rb') as f:
        data = f.read()
    write('pickle', 'dalia_like_head.pkl', data[:3000])
    for name, comp in [('stored.zip', zipfile.ZIP_STORED), ('deflate.zip', zipfile.ZIP_DEFLATED)]:
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, 'w', comp) as z:
            z.comment = b'seed'
            for n, d in [('a.txt', b'hello ' * 20), ('dir/b.bin', bytes(range(64)))]:
                z.writestr(zipfile.ZipInfo(n, (1980, 1, 1, 0, 0, 0)), d, comp)
        write('zip', name, buf.getvalue())
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, 'w', zipfile.ZIP_STORED) as z:
        with z.open(zipfile.ZipInfo('big/x', (1980, 1, 1, 0, 0, 0)), 'w', force_zip64=True) as f:
            f.write(b'zip64 ' * 10)
    write('zip', 'zip64_entry.zip', buf.getvalue())

    def st(tensors, meta=None):
        header, data, off = {}, b'', 0
        if meta:
            header['__metadata__'] = meta
        for name, dtype, shape, raw in tensors:
            header[name] = {'dtype': dtype, 'shape': shape, 'data_offsets': [off, off + len(raw)]}
            data += raw
            off += len(raw)
        h = json.dumps(header, separators=(',', ':')).encode()
        h += b' ' * ((8 - len(h) % 8) % 8)
        return struct.pack('<Q', len(h)) + h + data
    write('safetensors', 'two.safetensors', st([('a', 'F32', [2, 2], floats[:16]), ('b', 'I64', [1], b'\x07' + b'\x00' * 7)],
                                                {'format': 'pt'}))
    write('safetensors', 'scalar_empty.safetensors', st([('s', 'F64', [], b'\x00' * 8), ('e', 'U8', [0], b'')]))

    # csv_recording: first byte = rate selector (16 + b % 64 Hz; bit 6: average PPG1 and PPG2).
    import math
    rows = ['%.3f,%.4f,%.4f,%.4f,%.3f,1.0' % (i / 16, math.sin(2 * math.pi * 1.5 * i / 16), 0.1 * math.sin(i / 5),
                                              0.2 * math.sin(2 * math.pi * 2.2 * i / 16), 0.05) for i in range(20 * 16)]
    write('csv_recording', 'ppg2_16hz.csv', bytes([0]) + ('time,ppg1,ppg2,acc_x,acc_y,acc_z\n' + '\n'.join(rows) + '\n').encode())
    plain = ['%d,0.1,0.2,0.98' % (i % 9) for i in range(9 * 20)]
    write('csv_recording', 'plain_20hz.csv', bytes([4 | 64]) + ('ppg,accx,accy,accz\n' + '\n'.join(plain) + '\n').encode())
    write('csv_recording', 'labels.txt', bytes([0]) + b'# heart rates\n80\n81.5\n83\n\n84\n85\n86\n87\n')
    # windows_json: the input of predict --windows.
    write('windows_json', 'one_window.json', json.dumps({'input_shape': [1, 1, 4, 256],
                                                          'input': [round(math.sin(i / 9), 3) for i in range(1024)]}).encode())
    write('windows_json', 'bad_shape.json', b'{"input_shape": [1.5, 1, 4, 256], "input": []}')


if __name__ == '__main__':
    main()
