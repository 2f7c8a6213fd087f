"""Training: ``fit(config)``, one epoch, optimisers and schedules, checkpoints, DDP, evaluation;
the architecture search (:mod:`omnireid.engine.nas`); the reproduction
(:mod:`omnireid.engine.reproduce`).

Submodules are imported on first use so that ``import omnireid`` stays light.
"""

from __future__ import annotations

from omnireid._lazy import lazy_attributes

_LAZY = {
    "fit": "omnireid.engine.fit",
    "FitResult": "omnireid.engine.fit",
    "seed_everything": "omnireid.engine.fit",
    "train_one_epoch": "omnireid.engine.train",
    "EpochStats": "omnireid.engine.train",
    "NonFiniteLossError": "omnireid.engine.train",
    "build_optimizer": "omnireid.engine.optim",
    "lr_factor": "omnireid.engine.optim",
    "EpochLR": "omnireid.engine.optim",
    "set_trainable": "omnireid.engine.optim",
    "atomic_torch_save": "omnireid.engine.checkpoint",
    "load_checkpoint": "omnireid.engine.checkpoint",
    "evaluate": "omnireid.engine.evaluate",
    "ModelEvaluation": "omnireid.engine.evaluate",
    "init_distributed": "omnireid.engine.ddp",
    "NasResult": "omnireid.engine.nas",
    "ReproducePlan": "omnireid.engine.reproduce",
}


__getattr__, __dir__ = lazy_attributes(__name__, _LAZY, globals())


__all__ = list(_LAZY)
