"""Studies: stages that run other stages many times and hold their table (the seed experiment, the
label-efficiency sweep, the colour ablation). Importing the package registers them, after the lab's own stages.
"""

from ..lab.stages import register
from .ablation import ABLATION
from .experiment import EXPERIMENT
from .sweep import SWEEP

for _study in (SWEEP, ABLATION, EXPERIMENT):
    register(_study)
