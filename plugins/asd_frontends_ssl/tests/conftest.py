"""Tiny random BEATs/EAT checkpoints in the official formats and tiny training data; no test touches
the network."""
import os

os.environ["HF_HUB_OFFLINE"] = "1"  # before transformers/huggingface_hub read it

from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

import asdcore  # noqa: E402
from asdcore import TrainData, TrainingConfig  # noqa: E402
from asdcore.testing import only_plugins  # noqa: E402

SECONDS = 0.6

BEATS_TINY = {"encoder_layers": 2, "encoder_embed_dim": 64, "encoder_ffn_embed_dim": 128,
              "encoder_attention_heads": 4, "embed_dim": 32, "conv_pos": 16, "conv_pos_groups": 4}
EAT_TINY = {"depth": 2, "embed_dim": 64, "num_heads": 4, "max_length": 64}


@pytest.fixture(autouse=True)
def only_this_plugin():
    """Only the core, this plugin and the toy components are loaded."""
    with only_plugins("asd_frontends_ssl"):
        yield


@pytest.fixture
def registry():
    """The process-wide registry: the core, this plugin (through its entry point) and the toys."""
    return asdcore.get_registry()


@pytest.fixture(scope="session")
def beats_checkpoint(tmp_path_factory):
    from asd_frontends_ssl.beats import write_random_checkpoint

    return str(write_random_checkpoint(tmp_path_factory.mktemp("beats") / "beats.pt", BEATS_TINY))


@pytest.fixture(scope="session")
def eat_checkpoint(tmp_path_factory):
    from asd_frontends_ssl.eat import write_random_checkpoint

    path = tmp_path_factory.mktemp("eat") / "eat.pt"
    write_random_checkpoint(path, EAT_TINY)
    return str(path)


class SoftmaxLoss(asdcore.Loss, torch.nn.Module):
    def __init__(self, params, *, embedding_dim, num_classes):
        torch.nn.Module.__init__(self)
        asdcore.Loss.__init__(self, params, embedding_dim=embedding_dim, num_classes=num_classes)
        self.head = torch.nn.Linear(embedding_dim, num_classes)

    def forward(self, embedding, target):
        return -(target * torch.log_softmax(self.head(embedding), -1)).sum(-1).mean()


@pytest.fixture
def train_data():
    """``make(workdir, epochs)``: TrainData of 8 noise clips of 0.6 s in 2 classes, a softmax loss, batch 4."""

    def make(workdir: Path, epochs: int, n: int = 8) -> TrainData:
        workdir.mkdir(parents=True, exist_ok=True)
        clips = [asdcore.Clip(Path(f"clip{i}.wav"), "fan", "train", 0, i % 2, 0) for i in range(n)]

        def load(clip):
            rng = np.random.default_rng(int(clip.path.stem[4:]))
            return (0.1 * rng.normal(size=int(16000 * SECONDS))).astype(np.float32)

        return TrainData(
            clips=clips, load=load, clip_samples=int(16000 * SECONDS), labels=np.arange(n) % 2, num_classes=2,
            training=TrainingConfig(epochs=epochs, batch_size=4, lr=1e-3, warmup_steps=2, num_workers=0),
            make_loss=lambda d, c: SoftmaxLoss(asdcore.Params(), embedding_dim=d, num_classes=c),
            augmentations=[], device=torch.device("cpu"), seed=0, workdir=workdir,
        )

    return make
