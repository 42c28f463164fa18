"""Which encoder a source names: a run's trained encoder, or a seeded random init of a reference run's network."""

from __future__ import annotations

import threading

import torch

from ...config import ExperimentConfig
from ...lab.run_store import Run, RunStore
from ...lab.stages import get_stage, stage_of_record
from ...methods.networks import Encoder, build_encoder
from ...presets import get_preset

RANDOM_INIT = "random-init"
# A random init without a reference run uses this preset's architecture and data.
DEFAULT_REFERENCE_PRESET = "byol-paper"

# torch's default CPU generator is process-wide; building under this lock and fork_rng keeps
# two builds from interleaving and leaves the caller's (e.g. a training thread's) RNG state as it was.
_RNG_LOCK = threading.Lock()


def _seeded_encoder(cfg: ExperimentConfig) -> Encoder:
    """``build_encoder`` with ``torch.manual_seed(cfg.seed)``: the same init runner.evaluate uses."""
    with _RNG_LOCK, torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        return build_encoder(cfg.model)


def _get_run(store: RunStore, run_id: str, role: str = "source") -> Run:
    if not run_id or "/" in run_id or "\\" in run_id or run_id.startswith("."):
        raise ValueError(f"{role} {run_id!r} is not a run id; pick a run from {store.root}/ "
                         f"or use {RANDOM_INIT!r}.")
    try:
        return store.get(run_id)
    except FileNotFoundError as exc:
        raise FileNotFoundError(f"{exc} Pick an existing run as {role}, or use {RANDOM_INIT!r} "
                                "for a randomly initialised encoder.") from exc


def reference_config(store: RunStore, reference_run: str | None) -> ExperimentConfig:
    """The config a random init is built from: ``reference_run``'s, or the byol-paper preset's when None."""
    if reference_run is None:
        return get_preset(DEFAULT_REFERENCE_PRESET)
    cfg, _, _ = _get_run(store, reference_run, role="reference_run").read_config()
    return cfg


def run_with_encoder(store: RunStore, source: str) -> tuple[Run, ExperimentConfig]:
    """The run ``source`` and its config; an error that says why when it has no ``encoder.pt``."""
    run = _get_run(store, source)
    cfg, kind, _ = run.read_config()
    if not run.encoder_path.is_file():
        stage = stage_of_record(run.read_record())
        if stage is None or not get_stage(stage).exports_encoder:
            raise ValueError(f"run {source} is an {kind!r} run, which has no encoder of its own; "
                             "choose a pretraining or supervised run (or the run it evaluated).")
        state = run.read_status().get("state", "unknown")
        raise FileNotFoundError(f"run {source} ({kind}, {state}) has no encoder yet ({run.encoder_path}); "
                                "wait for it to finish, stop it (a stopped run exports its encoder) "
                                "or resume it.")
    return run, cfg


def encoder_from_source(store: RunStore, source: str,
                        reference_run: str | None = None) -> tuple[Encoder, ExperimentConfig]:
    """The encoder named by ``source`` (in eval mode, on the CPU) and the config it belongs to.

    ``source`` is a run id (any run with an ``encoder.pt``: byol, supervised, linear) or
    ``RANDOM_INIT``: the architecture and data of ``reference_run`` (or, when that is None, of
    the ``byol-paper`` preset) with random weights drawn after ``torch.manual_seed(cfg.seed)``,
    the same random init ``runner.evaluate`` scores. ``reference_run`` is ignored for runs.
    """
    if source == RANDOM_INIT:
        cfg = reference_config(store, reference_run)
        encoder = _seeded_encoder(cfg)
    else:
        run, cfg = run_with_encoder(store, source)
        state = run.load_encoder()
        encoder = _seeded_encoder(cfg)  # seeded only so building never disturbs anyone's RNG stream
        try:
            encoder.model.load_state_dict(state)
        except RuntimeError as exc:
            raise ValueError(f"run {source}'s encoder.pt does not fit its config's model "
                             f"({cfg.model.backbone}): {exc}") from exc
    return encoder.eval(), cfg
