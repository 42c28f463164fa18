"""Learning methods: the one training loop (:mod:`.loop`) and what runs in it.

BYOL (:mod:`.byol`) and SimCLR (:mod:`.simclr`) with what they share (:mod:`.pretraining`), supervised
training and fine-tuning (:mod:`.supervised`), the linear probe (:mod:`.probe`), kNN evaluation
(:mod:`.evaluation`) and the seed-free floors; with the small primitives they share (networks, losses,
EMA, schedules, optimisers). Knows nothing of run folders: :mod:`byol_core.lab` wires these to runs.
"""
