"""Running trained models outside training: ``gnnu-export`` (TorchScript / ONNX files with
metadata and a parity check, :mod:`gnnu.deploy.export`) and ``gnnu-predict`` (scores for events
with or without truth, :mod:`gnnu.deploy.predict`); :mod:`gnnu.deploy.model` loads a checkpoint
with the record of how its inputs are made."""
