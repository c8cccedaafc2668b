"""Training and inference: config (:mod:`.config`), data (:mod:`.data`), the LightningModule
(:mod:`.module`), callbacks (:mod:`.callbacks`), checkpoints (:mod:`.checkpoint`), the
``gnnu-train`` run (:mod:`.run`), the ``gnnu-eval`` inference (:mod:`.inference`) and the
re-timing of compared models for ``gnnu-compare --remeasure`` (:mod:`.remeasure`).

Lightning and the dataset are imported lazily by the modules that need them; import
``gnnu.train.run.train`` or ``gnnu.train.inference.evaluate_checkpoint`` directly.
"""
