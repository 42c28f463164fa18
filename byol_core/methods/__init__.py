"""Learning methods: the one training loop (:mod:`.loop`) and what runs in it.

BYOL (:mod:`.byol`), SimCLR (:mod:`.simclr`), supervised training and fine-tuning, the linear probe,
kNN evaluation and the seed-free floors; with the small primitives they share (networks, losses,
EMA, schedules, optimisers). Knows nothing of run folders: :mod:`byol_core.lab` wires these to runs.
"""
