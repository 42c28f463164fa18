"""Augmentations on the device: per-sample random parameters as batched tensor ops.

:mod:`.ops` holds the primitives, :mod:`.views` the paper's two asymmetric views (Kornia as the
tested reference) and the evaluation transform, :mod:`.fast` the fused fast path.
"""
