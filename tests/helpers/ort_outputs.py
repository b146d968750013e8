"""Run ONNX files in ONNX Runtime and save every output: `python ort_outputs.py OUT.npz INPUT.npy A.onnx ...`
(INPUT.npz instead: its arrays fed by name, for models with several inputs).

Only NumPy, ONNX Runtime and karuku.cpu (stdlib) are imported, so it starts fast under an emulator
(`qemu-x86_64 -cpu Haswell`, an AVX2-only CPU); it prints the int8 target karuku detects there.
"""

import sys

import numpy as np
import onnxruntime as ort

from karuku.cpu import detect

out, x_path, *models = sys.argv[1:]
loaded = np.load(x_path)
named = dict(loaded) if x_path.endswith(".npz") else None
saved = {}
for i, path in enumerate(models):
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    feed = named if named is not None else {sess.get_inputs()[0].name: loaded}
    for o, v in zip(sess.get_outputs(), sess.run(None, feed)):
        saved[f"{i}/{o.name}"] = v
np.savez(out, **saved)
print(detect().target)
