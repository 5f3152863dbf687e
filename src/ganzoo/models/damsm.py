"""DAMSM encoders of AttnGAN (Xu et al., CVPR 2018; taoxugit/AttnGAN code/model.py:75-268).

- `TextEncoder` (RNN_ENCODER): Embedding(n_words, 300), dropout 0.5, a one-layer bidirectional
  LSTM with 128 units per direction. Word features (N, 256, T) are the LSTM outputs; the
  sentence feature (N, 256) is the two final hidden states. n_words 5,450 (CUB): 2,075,320
  parameters. Padded captions are packed, so padding changes neither feature.
- `ImageEncoder` (CNN_ENCODER): the input upsampled (bilinear) to `image_size` (299), the
  Inception-v3 stem to Mixed_6e -> 768 x 17 x 17 -> Conv1x1 (no bias) -> 256 region features;
  Mixed_7a..7c -> average pool 8 -> Linear(2048 -> 256) global feature. Trainable with a frozen
  ImageNet backbone: 721,152 (22,506,720 with the Inception layers). The Inception layers are
  torchvision's `inception_v3` architecture built locally (no download); their ImageNet weights
  come from a file through `load_backbone` (ganzoo.core.weights, key `inception_v3`).
  `train_backbone=True` trains them too (from scratch on data=synthetic).

`image_size` other than 299 is for small tests (>= 75: Inception-v3's smallest input).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence
from torchvision.models import inception_v3

from ganzoo.core.errors import ConfigError

_STEM = (
    "Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "maxpool1", "Conv2d_3b_1x1",
    "Conv2d_4a_3x3", "maxpool2", "Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b",
    "Mixed_6c", "Mixed_6d", "Mixed_6e",
)  # fmt: skip
_TOP = ("Mixed_7a", "Mixed_7b", "Mixed_7c")


class TextEncoder(nn.Module):
    """RNN_ENCODER: captions (N, T) long, lengths (N,) -> words (N, 2h, T'), sentence (N, 2h)."""

    def __init__(
        self,
        n_words: int,  # vocabulary size incl. the padding id 0 (CUB 5,450; COCO 27,297)
        embedding_dim: int = 256,  # TEXT.EMBEDDING_DIM: word / sentence feature size (2 x hidden)
        word_dim: int = 300,  # ninput: word embedding size
        drop_prob: float = 0.5,  # dropout on the word embeddings
    ) -> None:
        super().__init__()
        if n_words < 2 or embedding_dim % 2:
            raise ConfigError(
                f"TextEncoder needs n_words >= 2 and an even embedding_dim; got {n_words}, "
                f"{embedding_dim}"
            )
        self.n_words, self.embedding_dim = n_words, embedding_dim
        self.encoder = nn.Embedding(n_words, word_dim)
        self.drop = nn.Dropout(drop_prob)
        self.rnn = nn.LSTM(
            word_dim, embedding_dim // 2, num_layers=1, batch_first=True, bidirectional=True
        )
        nn.init.uniform_(self.encoder.weight, -0.1, 0.1)  # RNN_ENCODER.init_weights

    def forward(self, captions: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        emb = self.drop(self.encoder(captions))  # (N, T, 300)
        lengths = lengths.clamp(min=1)
        if emb.device.type == "meta":  # shapes only (ganzoo.info): packing needs real lengths
            output, (hidden, _) = self.rnn(emb)
        else:
            packed = pack_padded_sequence(
                emb, lengths.cpu(), batch_first=True, enforce_sorted=False
            )
            out_packed, (hidden, _) = self.rnn(packed)
            output, _ = pad_packed_sequence(out_packed, batch_first=True)
        words = output.transpose(1, 2)  # (N, 256, T') with T' = max length of the batch
        sentence = hidden.transpose(0, 1).reshape(-1, self.embedding_dim)
        return words, sentence


class ImageEncoder(nn.Module):
    """CNN_ENCODER: images (N, 3, H, W) in [-1, 1] -> regions (N, 256, 17, 17), global (N, 256).

    The images enter Inception as they are (the official code does not normalise them)."""

    def __init__(
        self,
        embedding_dim: int = 256,  # nef: region and global feature size
        image_size: int = 299,  # the bilinear resize before Inception-v3
        train_backbone: bool = False,  # False: frozen ImageNet layers (official)
    ) -> None:
        super().__init__()
        if image_size < 75:
            raise ConfigError(
                f"ImageEncoder image_size must be >= 75 (Inception-v3); got {image_size}"
            )
        self.embedding_dim, self.image_size = embedding_dim, image_size
        net = inception_v3(weights=None, aux_logits=False, init_weights=not _meta())
        self.backbone = nn.ModuleDict({name: getattr(net, name) for name in _STEM + _TOP})
        for p in self.backbone.parameters():
            p.requires_grad_(train_backbone)
        self.emb_features = nn.Conv2d(768, embedding_dim, 1, bias=False)
        self.emb_cnn_code = nn.Linear(2048, embedding_dim)
        nn.init.uniform_(self.emb_features.weight, -0.1, 0.1)  # CNN_ENCODER.init_trainable_weights
        nn.init.uniform_(self.emb_cnn_code.weight, -0.1, 0.1)

    def load_backbone(self, state: Mapping[str, Tensor]) -> None:
        """Inception-v3 ImageNet weights (torchvision's key names); fc and AuxLogits unused."""
        own = self.backbone.state_dict()
        missing = [k for k in own if k not in state]
        if missing:
            raise ConfigError(
                f"the Inception-v3 weights lack {missing[0]} (and {len(missing) - 1} more)"
            )
        self.backbone.load_state_dict({k: state[k] for k in own})

    def forward(self, images: Tensor) -> tuple[Tensor, Tensor]:
        x = F.interpolate(
            images, size=(self.image_size, self.image_size), mode="bilinear", align_corners=False
        )
        for name in _STEM:
            x = self.backbone[name](x)
        regions = x  # (N, 768, 17, 17)
        for name in _TOP:
            x = self.backbone[name](x)
        x = F.avg_pool2d(x, kernel_size=x.shape[-1]).flatten(1)  # avg_pool2d(8) at 299
        return self.emb_features(regions), self.emb_cnn_code(x)


class DAMSM(nn.Module):
    """The two DAMSM encoders trained together (pretrain_DAMSM.py)."""

    def __init__(self, text_encoder: TextEncoder, image_encoder: ImageEncoder) -> None:
        super().__init__()
        if text_encoder.embedding_dim != image_encoder.embedding_dim:
            raise ConfigError(
                f"DAMSM text and image embedding sizes differ: {text_encoder.embedding_dim} vs "
                f"{image_encoder.embedding_dim}"
            )
        self.text_encoder = text_encoder
        self.image_encoder = image_encoder

    def forward(
        self, images: Tensor, captions: Tensor, lengths: Tensor
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """(regions, image code, words, sentence)."""
        regions, code = self.image_encoder(images)
        words, sentence = self.text_encoder(captions, lengths)
        return regions, code, words, sentence


def _meta() -> bool:
    return torch.empty(0).device.type == "meta"
