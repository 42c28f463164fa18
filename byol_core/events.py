"""The metric events: what a training loop tells its callbacks and ``metrics.jsonl`` stores, one JSON object a line.

Each event is a plain dict whose ``"kind"`` says what happened; the constants below are the kinds and the
TypedDicts the fields each kind carries. (A *run's* kind, in config.json and status.json, is another thing:
the stage that made the run.) A stage adds its own metrics to step and epoch events (``loss``, ``lr``,
``tau``, ``val_knn_accuracy``, ...), so a reader ``.get``s a field a stage may not send. The lowest layer:
imports nothing of byol_core, so every wing can build and read events.
"""

from collections.abc import Callable
from typing import Any, Final, Literal, TypedDict

START: Final = "start"    # a loop (or a study) begins, or resumes at ``step``
STEP: Final = "step"      # step metrics averaged over ``runtime.log_every`` steps; a study's progress
EPOCH: Final = "epoch"    # an epoch ended: its number and the evaluation's fields
NOTE: Final = "note"      # something the person must know, in ``message``
RESUME: Final = "resume"  # a run resumed from its checkpoint; ``message`` says what was dropped
EVAL: Final = "eval"      # a kNN evaluation's accuracy
ROW: Final = "row"        # one row of a study's table
KINDS: Final = (START, STEP, EPOCH, NOTE, RESUME, EVAL, ROW)
MESSAGE_KINDS: Final = (NOTE, RESUME)  # the events that carry a message for the person

Callback = Callable[[dict[str, Any]], None]  # receives every event, in order


class _Start(TypedDict):
    kind: Literal["start"]
    stage: str  # the loop's stage name (byol, linear, ...) or the study's
    step: int   # 0, or the checkpoint's step on a resume
    total_steps: int


class StartEvent(_Start, total=False):
    """A loop's start (every field but ``doing``; ``processes`` only under torchrun) or a study's (``doing``)."""

    steps_per_epoch: int
    batch_size: int  # the global batch
    device: str
    num_images: int
    processes: int
    doing: str  # a study's word on what it is doing now


class _Step(TypedDict):
    kind: Literal["step"]
    stage: str
    step: int
    total_steps: int


class StepEvent(_Step, total=False):
    """A loop's step metrics, averaged since the last step event (the fields its stage sends), or a study's progress."""

    epoch: float  # step / steps_per_epoch
    lr: float
    loss: float
    img_per_s: float
    tau: float                 # BYOL's EMA decay
    collapse_std: float        # self-supervised methods' collapse monitor
    collapse_reference: float  # 1 / sqrt(d): the spread of healthy projections
    doing: str


class _Epoch(TypedDict):
    kind: Literal["epoch"]
    stage: str
    epoch: int
    step: int
    total_steps: int


class EpochEvent(_Epoch, total=False):
    """The end of an epoch and, when one was due, the evaluation's fields."""

    val_knn_accuracy: float  # pretraining's evaluation
    val_accuracy: float      # supervised training's and the linear probe's
    weight_decay: float      # the linear probe's kept head
    loss: float              # the linear probe's, once per epoch


class NoteEvent(TypedDict):
    kind: Literal["note"]
    message: str


class ResumeEvent(TypedDict):
    kind: Literal["resume"]
    step: int
    message: str


class EvalEvent(TypedDict):
    kind: Literal["eval"]
    knn_accuracy: float


class RowEvent(TypedDict):
    """One row of a study's table; its fields (method, seed, accuracy, ...) are the study's own."""

    kind: Literal["row"]


Event = StartEvent | StepEvent | EpochEvent | NoteEvent | ResumeEvent | EvalEvent | RowEvent

__all__ = ["EPOCH", "EVAL", "KINDS", "MESSAGE_KINDS", "NOTE", "RESUME", "ROW", "START", "STEP", "Callback",
           "EpochEvent", "EvalEvent", "Event", "NoteEvent", "ResumeEvent", "RowEvent", "StartEvent", "StepEvent"]
