"""Run ONNX files in ONNX Runtime and save every output: `python ort_outputs.py OUT.npz INPUT.npy A.onnx ...`.

Only NumPy, ONNX Runtime and karuku.cpu (stdlib) are imported, so it starts fast under an emulator
(`qemu-x86_64 -cpu Haswell`, an AVX2-only CPU); it prints the int8 target karuku detects there.
"""

import sys

import numpy as np
import onnxruntime as ort

from karuku.cpu import detect

out, x_path, *models = sys.argv[1:]
x = np.load(x_path)
saved = {}
for i, path in enumerate(models):
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    for o, v in zip(sess.get_outputs(), sess.run(None, {sess.get_inputs()[0].name: x})):
        saved[f"{i}/{o.name}"] = v
np.savez(out, **saved)
print(detect().target)
