"""Named hyperparameter presets (after DeepMind's BYOL configs): start points, overridable with --set."""

from __future__ import annotations

from collections.abc import Callable

from .config import (
    AugmentConfig,
    BYOLConfig,
    ConfigError,
    DataConfig,
    EvalConfig,
    ExperimentConfig,
    ModelConfig,
    OptimConfig,
    SupervisedConfig,
    ViewAugmentConfig,
    with_overrides,
)

# Every preset holds out this share of each class of the training split for validation.
VAL_FRACTION = 0.1


def byol_paper_augment(image_size: int = 32, backend: str = "fast") -> AugmentConfig:
    """The BYOL paper's asymmetric views (Grill et al. 2020, Table 6).

    Both views: random resized crop (0.08-1), flip 0.5, colour jitter 0.4/0.4/0.2/0.1 with p 0.8,
    grayscale 0.2. View 1: blur p 1.0, no solarize. View 2: blur p 0.1, solarize p 0.2.
    """
    return AugmentConfig(image_size=image_size, backend=backend,
                         view1=ViewAugmentConfig(blur_p=1.0, solarize_p=0.0),
                         view2=ViewAugmentConfig(blur_p=0.1, solarize_p=0.2))


def byol_paper() -> ExperimentConfig:
    """The paper's recipe to start from: its views (Table 6) on the built-in digits at 32 px with a
    ResNet18 (small-image stem), BYOL for 50 epochs. Meant for a GPU; slow on a CPU.
    """
    return ExperimentConfig(name="byol-paper", data=DataConfig(val_fraction=VAL_FRACTION), augment=byol_paper_augment(32))


def seed_stl10() -> ExperimentConfig:
    """The original write-up's GPU experiment: BYOL for 50 epochs on STL10's train and unlabeled
    images (105k) at 96 px with a ResNet18, then supervised stages for 25 epochs on its 5k labelled
    images, scored on its 8k test images. Downloads STL10; a GPU job.
    """
    return ExperimentConfig(
        name="seed-stl10",
        data=DataConfig(name="stl10", val_fraction=VAL_FRACTION),
        augment=byol_paper_augment(96),
        model=ModelConfig(backbone="resnet18", small_stem=False),
        byol=BYOLConfig(tau_base=0.99, optim=OptimConfig(optimizer="adam", lr=1e-4, epochs=50, batch_size=256),
                        knn_every_epochs=5),
        supervised=SupervisedConfig(optim=OptimConfig(optimizer="adam", lr=1e-4, epochs=25, batch_size=256)),
    )


def cpu_quick() -> ExperimentConfig:
    """As much BYOL as ~5 minutes on 2 CPU cores (with bf16) can learn: all of Fashion-MNIST (54k
    training images at 28 px) seen 5 times by a width-32 convnet. Without bf16 it takes longer
    (``model.width=16`` is the lighter choice there).
    """
    gray = {"saturation": 0.0, "hue": 0.0, "grayscale_p": 0.0, "crop_scale_min": 0.2}
    return ExperimentConfig(
        name="cpu-quick",
        data=DataConfig(name="fashion-mnist", val_fraction=VAL_FRACTION),
        augment=AugmentConfig(image_size=28,
                              view1=ViewAugmentConfig(blur_p=0.5, solarize_p=0.0, **gray),
                              view2=ViewAugmentConfig(blur_p=0.1, solarize_p=0.2, **gray)),
        model=ModelConfig(backbone="small-cnn", width=32, projector_hidden=1024, projector_out=128,
                          predictor_hidden=1024),
        byol=BYOLConfig(tau_base=0.99, optim=OptimConfig(optimizer="adam", lr=3e-3, weight_decay=1e-6,
                                                         epochs=5, batch_size=64, warmup_epochs=0.5),
                        knn_every_epochs=5),
        supervised=SupervisedConfig(optim=OptimConfig(optimizer="adam", lr=1e-3, epochs=10, batch_size=64,
                                                      min_steps=300)),
        eval=EvalConfig(knn_k=20),
    )


def fmnist_30min() -> ExperimentConfig:
    """A half-hour CPU budget on all of Fashion-MNIST: cpu-quick for 27 epochs with milder crops (60-100%
    of the image), 22-26 minutes of pretraining on 2 cores with bf16 as measured; the README's headline comparison.
    On CPUs without bf16 use ``model.width=16, byol.optim.epochs=18`` to stay near 30 minutes.
    """
    milder_crops = {"augment.view1.crop_scale_min": 0.6, "augment.view2.crop_scale_min": 0.6}
    return with_overrides(cpu_quick(), {"name": "fmnist-30min", "byol.optim.epochs": 27,
                                        "byol.knn_every_epochs": 3, **milder_crops})


def digits_quick() -> ExperimentConfig:
    """The dashboard's default: the built-in digits (shown at 16 px) with 5% of the labels, on a width-16
    convnet with digit-safe views (no flips: a mirrored 2 is no 2) and kNN with k = 5 (a few labels a
    class); about two minutes on 2 CPU cores.
    """
    digit_views = {"flip_p": 0.0, "crop_scale_min": 0.4, "crop_ratio_min": 0.8, "crop_ratio_max": 1.25}
    return ExperimentConfig(
        name="digits-quick",
        data=DataConfig(name="digits", val_fraction=VAL_FRACTION, label_fraction=0.05),
        augment=AugmentConfig(image_size=16,
                              view1=ViewAugmentConfig(blur_p=1.0, solarize_p=0.0, **digit_views),
                              view2=ViewAugmentConfig(blur_p=0.1, solarize_p=0.2, **digit_views)),
        model=ModelConfig(backbone="small-cnn", width=16, projector_hidden=512, projector_out=128,
                          predictor_hidden=512),
        byol=BYOLConfig(optim=OptimConfig(lr=2e-3, epochs=60, batch_size=64), knn_every_epochs=10),
        supervised=SupervisedConfig(optim=OptimConfig(lr=1e-3, epochs=10, batch_size=64, min_steps=300),
                                    linear_optim=OptimConfig(lr=1e-2, epochs=200, batch_size=1024),
                                    crop_scale_min=0.4, flip_p=0.0),
        eval=EvalConfig(knn_k=5, batch_size=512),
    )


def cifar10_cpu() -> ExperimentConfig:
    """A CPU starting point for CIFAR-10: 20k training images at 32 px, the paper's colour views, a
    width-32 convnet for 30 epochs (over twice the images cpu-quick sees, so well over its ~5 minutes).
    Not yet measured on real CIFAR-10; on a GPU start from byol-paper (ResNet18) instead.
    """
    crop = {"crop_scale_min": 0.2}
    return ExperimentConfig(
        name="cifar10-cpu",
        data=DataConfig(name="cifar10", val_fraction=VAL_FRACTION, max_train_images=20_000, max_test_images=5_000),
        augment=AugmentConfig(image_size=32, view1=ViewAugmentConfig(blur_p=0.5, solarize_p=0.0, **crop),
                              view2=ViewAugmentConfig(blur_p=0.1, solarize_p=0.2, **crop)),
        model=ModelConfig(backbone="small-cnn", width=32, projector_hidden=1024, projector_out=128,
                          predictor_hidden=1024),
        byol=BYOLConfig(optim=OptimConfig(optimizer="adam", lr=2e-3, weight_decay=1e-6, epochs=30, batch_size=128,
                                          warmup_epochs=1.0), knn_every_epochs=5),
        supervised=SupervisedConfig(optim=OptimConfig(optimizer="adam", lr=1e-3, epochs=15, batch_size=128,
                                                      min_steps=300)),
        eval=EvalConfig(knn_k=20),
    )


def folder_quick() -> ExperimentConfig:
    """Your own photos (a folder or an upload, tens to thousands of images): 64 px views with the paper's
    colour distortion on a width-32 convnet, at least 600 steps since folders are small, kNN with k = 5.
    Its data set (digits) is a stand-in: the Data page supplies the folder.
    """
    return ExperimentConfig(
        name="folder-quick",
        data=DataConfig(val_fraction=VAL_FRACTION),
        augment=AugmentConfig(image_size=64, view1=ViewAugmentConfig(blur_p=1.0, solarize_p=0.0, crop_scale_min=0.2),
                              view2=ViewAugmentConfig(blur_p=0.1, solarize_p=0.2, crop_scale_min=0.2)),
        model=ModelConfig(backbone="small-cnn", width=32, projector_hidden=1024, projector_out=128,
                          predictor_hidden=1024),
        byol=BYOLConfig(optim=OptimConfig(optimizer="adam", lr=1e-3, weight_decay=1e-6, epochs=50, batch_size=32,
                                          min_steps=600), knn_every_epochs=10),
        supervised=SupervisedConfig(optim=OptimConfig(optimizer="adam", lr=1e-3, epochs=30, batch_size=32,
                                                      min_steps=300)),
        eval=EvalConfig(knn_k=5),
    )


def tiny() -> ExperimentConfig:
    """Seconds-long runs on 256 digits with a width-8 convnet: for tests and smoke checks."""
    return ExperimentConfig(
        name="tiny",
        data=DataConfig(name="digits", val_fraction=VAL_FRACTION, max_train_images=256, max_test_images=128),
        augment=AugmentConfig(image_size=16,
                              view1=ViewAugmentConfig(blur_p=1.0, solarize_p=0.0, hue=0.0, saturation=0.0),
                              view2=ViewAugmentConfig(blur_p=0.1, solarize_p=0.2, hue=0.0, saturation=0.0)),
        model=ModelConfig(backbone="small-cnn", width=8, projector_hidden=64, projector_out=32,
                          predictor_hidden=64),
        byol=BYOLConfig(optim=OptimConfig(lr=1e-3, epochs=2, batch_size=64)),
        supervised=SupervisedConfig(optim=OptimConfig(lr=1e-3, epochs=2, batch_size=64, min_steps=24),
                                    linear_optim=OptimConfig(lr=1e-2, epochs=5, batch_size=256)),
        eval=EvalConfig(knn_k=5, batch_size=256),
    )


PRESETS: dict[str, Callable[[], ExperimentConfig]] = {
    "byol-paper": byol_paper,
    "seed-stl10": seed_stl10,
    "cpu-quick": cpu_quick,
    "fmnist-30min": fmnist_30min,
    "digits-quick": digits_quick,
    "cifar10-cpu": cifar10_cpu,
    "folder-quick": folder_quick,
    "tiny": tiny,
}


def get_preset(name: str) -> ExperimentConfig:
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}.")
    return PRESETS[name]()


# The preset tuned for each data set (its views suit the images: no flips for digits, for one); a data set
# without one starts from the paper's.
TUNED_PRESETS = {"digits": "digits-quick", "fashion-mnist": "cpu-quick", "cifar10": "cifar10-cpu",
                 "stl10": "seed-stl10", "folder": "folder-quick"}
FALLBACK_PRESET = "byol-paper"


def preset_for(dataset: str) -> str:
    """The name of the preset to start from on ``dataset``: the one tuned for it, else the paper's."""
    return TUNED_PRESETS.get(dataset, FALLBACK_PRESET)
