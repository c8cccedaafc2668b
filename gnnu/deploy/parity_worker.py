"""Run an exported gnnu model without gnnu: the fresh process of ``gnnu-export --verify``.

Usage: ``python -I parity_worker.py FORMAT FILE INPUTS.npz OUTPUTS.npz INPUT_NAMES_JSON``.
Reads the inputs of each call (``"<call>/<name>"`` arrays), runs the TorchScript file
(``torch.jit.load``) or the ONNX file (onnxruntime, CPU) on each, writes ``"<call>/<output>"``
arrays, and prints one JSON line: the output names the file's metadata lists and whether gnnu
was imported (it must not be: this checks that the file stands alone). Imports numpy, json and
torch or onnxruntime only.
"""

import json
import sys

import numpy as np


def main(fmt, path, inputs, outputs, names):
    names = json.loads(names)
    data = np.load(inputs)
    calls = sorted({int(k.split("/")[0]) for k in data.files})
    results = {}
    if fmt == "torchscript":
        import torch

        extra = {"gnnu.json": ""}
        model = torch.jit.load(path, map_location="cpu", _extra_files=extra)
        model.eval()
        meta = json.loads(extra["gnnu.json"])
        with torch.inference_mode():
            for c in calls:
                out = model(*[torch.from_numpy(data[f"{c}/{n}"]) for n in names])
                for j, t in enumerate(out):
                    results[f"{c}/{j}"] = t.numpy()
    else:
        import onnxruntime as ort

        session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        meta = json.loads(session.get_modelmeta().custom_metadata_map["gnnu"])
        for c in calls:
            out = session.run(None, {n: data[f"{c}/{n}"] for n in names})
            for j, t in enumerate(out):
                results[f"{c}/{j}"] = np.asarray(t)
    np.savez(outputs, **results)
    print(json.dumps({"outputs": [o["name"] for o in meta["outputs"]],
                      "gnnu_imported": "gnnu" in sys.modules}))


if __name__ == "__main__":
    main(*sys.argv[1:6])
