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
    """Paper augmentations on the built-in digits set with a small ResNet18: a sane default."""
    return ExperimentConfig(name="byol-paper", data=DataConfig(val_fraction=VAL_FRACTION), augment=byol_paper_augment(32))


def seed_stl10() -> ExperimentConfig:
    """The original write-up: STL10, ResNet18 at 96 px, Adam 1e-4, BYOL 50 epochs, supervised 25.

    BYOL sees STL10's train and unlabeled splits (105k images); the supervised stages use the
    5k labelled training images and report accuracy on the 8k test images.
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
    """Tuned to learn as much as possible in ~5 minutes on 2 CPU cores: one pass over all of Fashion-MNIST
    (54k training images after validation, 10k test, 28 px) five times on a width-32 convnet.

    ~51 s per epoch (4.2-4.3 minutes) on 2 Xeon cores with bf16 (longer without bf16).
    Measured with benchmarks/accuracy_vs_minutes.py over 3 seeds (test, paired 95% intervals): BYOL kNN
    beats raw-pixel kNN by +1.5 ± 0.4 points with 600 labels and +1.2 ± 0.7 with 5,400, and the same
    network at random init by +6.4 ± 2.7 and +3.5 ± 1.1; with all labels +0.1 over raw pixels (85.6 vs
    85.5%). Its linear probe only ties supervised from scratch (80.5 vs 80.6% with 600 labels). What
    mattered: every image once rather than 9k images 45 times (45 epochs of 9k images at width 16 lost
    to raw-pixel kNN at 1% and 100% of labels), small batches (more updates per image), Adam at 3e-3,
    bf16 on CPUs that have it.
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
    """All of Fashion-MNIST (54k training images after validation, 10k test) with cpu-quick's views on a
    width-32 convnet for 27 epochs, but with milder crops (60-100% of the image): ~22 minutes of
    pretraining on 2 Xeon cores with bf16 (~1,050 images per second).

    Measured with benchmarks/accuracy_vs_minutes.py over 3 seeds (test, mean ± 95% CI half-width, probe
    weight decay picked on validation; benchmarks/measured/fmnist-30min.json): linear probe 84.7% ± 0.7
    with 600 labels against 80.6% ± 1.3 from scratch (paired +4.2 ± 1.5), 89.8% ± 0.7 with all labels;
    BYOL kNN 88.6% ± 0.4. The crop scale was picked on validation (600-label probe at epoch 27):
    0.2 -> 83.8%, 0.4 -> 84.3%, 0.6 -> 84.6%; at 28 px a crop of 20% of the image keeps too little of a
    garment to predict the other view from. What did not move the 600-label probe: its own settings
    (weight decay, logistic regression's C, 100 more epochs, augmented probe inputs), a width-48
    network, the EMA target encoder instead of the online one, L2- or square-root-scaled features.
    On CPUs without bf16 (~570 images per second at width 16) keep to 30 minutes with
    ``model.width=16, byol.optim.epochs=18`` (measured with 0.2 crops: 80.6% ± 0.7 with 540 labels).
    """
    milder_crops = {"augment.view1.crop_scale_min": 0.6, "augment.view2.crop_scale_min": 0.6}
    return with_overrides(cpu_quick(), {"name": "fmnist-30min", "byol.optim.epochs": 27,
                                        "byol.knn_every_epochs": 3, **milder_crops})


def digits_quick() -> ExperimentConfig:
    """The built-in digits with 5% of labels, about two minutes on 2 CPU cores.

    Digit-safe views (no flips: a mirrored 2 is no 2; crops keep 40-100% of the image); kNN votes
    with k = 5, since 5% of the labels is about 6 per class. Measured with `sweep --seeds 3`
    (359 test images): every BYOL method is within the noise of supervised from scratch at 5, 10
    and 100% of the labels (probe 89.4% ± 3.5 against 90.2% ± 2.4 at 5%); not re-tuned since the
    blur became visible (blur_sigma_max 1.0 did not help).
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
    """CIFAR-10 on a CPU: the paper's colour views at 32 px on a width-32 convnet, 20k training images.

    Derived from cpu-quick (small convnet, small batches, Adam) with the colour distortion that
    natural photos need (jitter, grayscale, solarize). Not yet measured on real CIFAR-10 here (this
    machine cannot download it); on a GPU use byol-paper (ResNet18).
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
    """A folder of your own photos (tens to thousands of images): 64 px views, many steps per image.

    Folders are small, so training is bounded by steps (at least 600) rather than epochs, kNN
    votes with k = 5 (a few labels per class), and the views keep the paper's colour distortion.
    Its own data set is the built-in digits, a stand-in: the Data page supplies the folder.
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
    """Seconds-long runs on the built-in digits set: for tests and smoke checks."""
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
