"""Models: GNNs (:mod:`gnnu.models.gnn`), CNNs (:mod:`gnnu.models.cnn`), shared heads and the registry.

Build any model from its YAML by name::

    from gnnu.models import create_model
    model = create_model("configs/models/edgeconv.yaml", in_features=F)
    out = model(batch)          # dict: logits [B, C] per task, regression values [B]

Model families register themselves on import (:data:`gnnu.models.registry.FAMILIES`).
"""

from .cost import count_parameters, flops_per_event
from .heads import HeadsConfig, MultiTaskHead, decode_target, encode_target
from .registry import (ModelConfig, create_model, list_models, load_model_config, model_inputs,
                       register_model)

__all__ = ["create_model", "list_models", "register_model", "model_inputs", "load_model_config", "ModelConfig",
           "HeadsConfig", "MultiTaskHead", "encode_target", "decode_target",
           "count_parameters", "flops_per_event"]
