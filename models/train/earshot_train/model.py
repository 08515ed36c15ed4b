"""The networks: edge (shipped), direct (baseline without bottleneck), reference (paper's VGG).

All take a log spectrogram [batch, frames, bands] straight from the front end;
per-band normalisation is part of the network so the daemon cannot forget it.
"""

from __future__ import annotations

import torch
from torch import nn

N_MID = 7
N_EMO = 8


class BandNorm(nn.Module):
    """(x - mean) / std per band, statistics from the training clips (fixed buffers)."""

    def __init__(self, n_bands: int):
        super().__init__()
        self.register_buffer("mean", torch.zeros(n_bands))
        self.register_buffer("std", torch.ones(n_bands))

    def forward(self, x):
        return (x - self.mean) / self.std


def dilated(c_in: int, channels, dilations, emb: int, dropout: float) -> nn.Sequential:
    """Unpadded dilated convolutions over time (kernel 3), then a 1x1 to `emb` channels."""
    layers = []
    for c, d in zip(channels, dilations):
        layers += [nn.Conv1d(c_in, c, 3, dilation=d, bias=False), nn.BatchNorm1d(c), nn.ReLU(), nn.Dropout(dropout)]
        c_in = c
    layers += [nn.Conv1d(c_in, emb, 1, bias=False), nn.BatchNorm1d(emb), nn.ReLU()]
    return nn.Sequential(*layers)


class TimeEncoder(nn.Module):
    """Dilated 1-D convolutions over time, frequency bands as channels, no time padding.

    Without padding every output frame depends only on a fixed span of input
    frames (the receptive field), so a stream can compute only the new frames'
    embeddings and reuse the rest: exactly what the daemon does.
    """

    def __init__(self, n_bands: int, channels=(96, 96, 96, 128, 128), dilations=(1, 2, 4, 8, 16),
                 emb: int = 128, dropout: float = 0.1):
        super().__init__()
        self.norm = BandNorm(n_bands)
        self.convs = dilated(n_bands, channels, dilations, emb, dropout)
        self.receptive_field = 1 + 2 * sum(dilations)
        self.emb = emb

    def forward(self, spec):  # [B, T, bands] -> [B, emb, T - rf + 1]
        return self.convs(self.norm(spec).transpose(1, 2))


def chroma_matrix(n_bands: int) -> torch.Tensor:
    """[n_bands, 12]: the mean of the bands between 100 Hz and 2 kHz of each pitch class (A = 0),
    minus the mean over the 12, so that a frame's chroma says which pitch classes stand out,
    whatever its level (front end version 2's bands, centres on the 24-per-octave grid)."""
    import numpy as np

    from .frontend import FRAME_SIZE, SAMPLE_RATE, filterbank_bins

    centres = filterbank_bins()[1:n_bands + 1] * SAMPLE_RATE / FRAME_SIZE
    m = np.zeros((n_bands, 12))
    for b, f in enumerate(centres):
        if 100.0 <= f <= 2000.0:
            m[b, int(round(12 * np.log2(f / 440.0))) % 12] = 1.0
    m /= np.maximum(m.sum(axis=0, keepdims=True), 1.0)
    m -= m.mean(axis=1, keepdims=True)
    return torch.tensor(m, dtype=torch.float32)


class PlaneEncoder(nn.Module):
    """2-D convolutions over (time, frequency) first, then TimeEncoder's dilated 1-D layers.

    The 2-D layers see a few bands at a time, so one detector serves every pitch
    (what makes the paper's VGG strong on little data); they are unpadded in time
    and pool only over frequency, so the whole network still streams frame by frame.
    """

    def __init__(self, n_bands: int, planes=(16, 32, 48), dilations=(1, 2, 4, 8, 16), emb: int = 128,
                 channels=(128, 128), dropout: float = 0.1, pools=(1, 3, 3), chroma: int = 0):
        super().__init__()
        self.norm = BandNorm(n_bands)
        d = dilations
        first = nn.Conv2d(1, planes[0], (3, 7), stride=(1, 2), padding=(0, 3), dilation=(d[0], 1), bias=False)
        if len(planes) == 3:
            # `pools`: frequency max-pool after each layer (1: none); pooling after the first layer
            # too halves what the two dearer layers cost per reading (issue 20's Pi 4 budget)
            p1, p2, p3 = planes

            def pool(k):
                return [nn.MaxPool2d((1, k))] if k > 1 else []

            self.planes = nn.Sequential(
                first, nn.BatchNorm2d(p1), nn.ReLU(), *pool(pools[0]),
                nn.Conv2d(p1, p2, 3, padding=(0, 1), dilation=(d[1], 1), bias=False), nn.BatchNorm2d(p2), nn.ReLU(),
                *pool(pools[1]),
                nn.Conv2d(p2, p3, 3, padding=(0, 1), dilation=(d[2], 1), bias=False), nn.BatchNorm2d(p3), nn.ReLU(),
                *pool(pools[2]),
            )
            f = (n_bands - 1) // 2 + 1  # bands left after the stride, then after each pool
            for k in pools:
                f //= k
        elif len(planes) == 2:
            # two wide 2-D layers on few positions: stride 3 and a pool before the second layer
            p1, p2 = planes
            self.planes = nn.Sequential(
                nn.Conv2d(1, p1, (3, 7), stride=(1, 3), padding=(0, 3), dilation=(d[0], 1), bias=False),
                nn.BatchNorm2d(p1), nn.ReLU(), nn.MaxPool2d((1, 3)),
                nn.Conv2d(p1, p2, 3, padding=(0, 1), dilation=(d[1], 1), bias=False), nn.BatchNorm2d(p2), nn.ReLU(),
                nn.MaxPool2d((1, 3)),
            )
            f = ((n_bands - 1) // 3 + 1) // 3 // 3
        elif len(planes) == 1:
            # one 2-D layer, then bands x channels as the 1-D layers' channels: large matmuls and
            # little packing, what tract's int8 kernels want (bench/int8-archs.md)
            self.planes = nn.Sequential(first, nn.BatchNorm2d(planes[0]), nn.ReLU(), nn.MaxPool2d((1, 3)))
            f = ((n_bands - 1) // 2 + 1) // 3
        else:
            raise ValueError(f"planes {planes}: one, two or three 2-D layers")
        # `chroma` > 0: a branch of that many channels over the 12 pitch classes of each frame,
        # beside the 2-D layers (which pool pitch away): mode and key, for minorness and valence.
        # Its one convolution spans the 2-D layers' frames, so both come out equally long.
        self.chroma = None
        if chroma:
            self.register_buffer("pitch_classes", chroma_matrix(n_bands))
            span = 1 + 2 * sum(d[:len(planes)])
            self.chroma = nn.Sequential(nn.Conv1d(12, chroma, span, bias=False), nn.BatchNorm1d(chroma), nn.ReLU())
        self.convs = dilated(planes[-1] * f + chroma, channels, d[len(planes):], emb, dropout)
        self.receptive_field = 1 + 2 * sum(d)
        self.emb = emb

    def forward(self, spec):  # [B, T, bands] -> [B, emb, T - rf + 1]
        n = self.norm(spec)
        x = self.planes(n.unsqueeze(1))  # [B, planes, T', f]
        x = x.permute(0, 1, 3, 2).flatten(1, 2)  # [B, planes * f, T']
        if self.chroma is not None:
            x = torch.cat([x, self.chroma((n @ self.pitch_classes).transpose(1, 2))], dim=1)
        return self.convs(x)


class Members(nn.Module):
    """Several TimeEncoders side by side on one spectrogram, embeddings concatenated.

    Each member is trained with its own loss (`Edge.member_outputs`), so their
    errors average out like an ensemble's; the concatenation makes the whole
    ensemble one network with one embedding, which the daemon streams as any other.
    """

    def __init__(self, n_bands: int, members: int, kind=None, **enc):
        super().__init__()
        self.members = nn.ModuleList((kind or TimeEncoder)(n_bands, **enc) for _ in range(members))
        self.norm = BandNorm(n_bands)  # shared: normalised once
        for m in self.members:
            m.norm = nn.Identity()
        self.receptive_field = self.members[0].receptive_field
        self.emb = members * self.members[0].emb

    def forward(self, spec):  # [B, T, bands] -> [B, members * emb, T - rf + 1]
        x = self.norm(spec)
        return torch.cat([m(x) for m in self.members], dim=1)


class Edge(nn.Module):
    """Audio -> 7 mid-level -> 8 emotions; the last layer is exactly linear (the explanation)."""

    bottleneck = True

    def __init__(self, n_bands: int, dropout_head: float = 0.3, members: int = 1, plane: bool = False,
                 mid_act: str = "linear", **enc):
        super().__init__()
        if mid_act not in ("linear", "sigmoid"):
            raise ValueError(f"mid_act {mid_act!r}: expected linear or sigmoid")
        self.mid_act = mid_act
        kind = PlaneEncoder if plane else TimeEncoder
        self.encoder = kind(n_bands, **enc) if members == 1 else Members(n_bands, members, kind, **enc)
        self.members = members
        self.drop = nn.Dropout(dropout_head)
        self.mid = nn.Linear(self.encoder.emb, N_MID)
        self.emo = nn.Linear(N_MID, N_EMO)

    def embed(self, spec):
        return self.encoder(spec).transpose(1, 2)  # [B, T', emb]

    def head(self, pooled):
        """Mean embedding -> mid-level; with sigmoid, inside 0..1 (the targets are quantiles)."""
        mid = self.mid(pooled)
        return torch.sigmoid(mid) if self.mid_act == "sigmoid" else mid

    def forward(self, spec):
        e = self.embed(spec)
        mid = self.head(self.drop(e.mean(dim=1)))
        return mid, self.emo(mid), e

    def member_outputs(self, spec):
        """Each member's own (mid [M, B, 7], emotions [M, B, 8]) and the embedding [B, T', emb];
        the mean over members of mid and emotions is `forward`'s output.

        Member k reads its slice of the mid layer, scaled by M, so that the mean over
        members is exactly the full layer on the concatenated embedding.
        """
        emb = self.embed(spec)
        e = self.drop(emb.mean(dim=1))
        k = self.members
        w = self.mid.weight.reshape(N_MID, k, -1)  # [7, M, emb]
        parts = e.reshape(len(e), k, -1)  # [B, M, emb]
        mid = k * torch.einsum("bme,ome->mbo", parts, w) + self.mid.bias
        return mid, self.emo(mid), emb


class Direct(nn.Module):
    """Same encoder, emotions straight from the pooled embedding: what the explanation costs."""

    bottleneck = False

    def __init__(self, n_bands: int, dropout_head: float = 0.3, plane: bool = False, **enc):
        super().__init__()
        self.encoder = (PlaneEncoder if plane else TimeEncoder)(n_bands, **enc)
        self.drop = nn.Dropout(dropout_head)
        self.emo = nn.Linear(self.encoder.emb, N_EMO)

    def forward(self, spec):
        e = self.encoder(spec).transpose(1, 2)
        return None, self.emo(self.drop(e.mean(dim=1))), e


def _block(c_in, c_out, k=3, stride=1):
    return [nn.Conv2d(c_in, c_out, k, stride=stride, padding=k // 2, bias=False), nn.BatchNorm2d(c_out), nn.ReLU()]


class Reference(nn.Module):
    """The paper's VGG-style network (Chowdhury et al. 2019), joint mid-level + emotions."""

    bottleneck = True

    def __init__(self, n_bands: int):
        super().__init__()
        self.norm = BandNorm(n_bands)
        self.features = nn.Sequential(
            *_block(1, 64, 5, 2), *_block(64, 64), nn.MaxPool2d(2), nn.Dropout(0.3),
            *_block(64, 128), *_block(128, 128), nn.MaxPool2d(2), nn.Dropout(0.3),
            *_block(128, 256), *_block(256, 256), *_block(256, 384), *_block(384, 512),
            *_block(512, 256, 1),
        )
        self.mid = nn.Linear(256, N_MID)
        self.emo = nn.Linear(N_MID, N_EMO)
        self.receptive_field = 1  # padded 2-D convolutions: any length works

    def forward(self, spec):
        x = self.features(self.norm(spec).unsqueeze(1))
        mid = self.mid(x.mean(dim=(2, 3)))
        return mid, self.emo(mid), None


ARCHS = {"edge": Edge, "direct": Direct, "reference": Reference}


def count_macs(model: nn.Module, frames: int, n_bands: int) -> int:
    """Multiply-accumulates of one forward pass on [1, frames, n_bands] (convs and linears)."""
    total = 0

    def conv_hook(m, _inp, out):
        nonlocal total
        k = int(torch.tensor(m.kernel_size).prod())
        total += out.numel() * k * m.in_channels // m.groups

    def lin_hook(m, _inp, out):
        nonlocal total
        total += out.numel() * m.in_features

    hooks = []
    for m in model.modules():
        if isinstance(m, (nn.Conv1d, nn.Conv2d)):
            hooks.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.Linear):
            hooks.append(m.register_forward_hook(lin_hook))
    was = model.training
    model.eval()
    with torch.no_grad():
        model(torch.zeros(1, frames, n_bands))
    model.train(was)
    for h in hooks:
        h.remove()
    return total


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """Folds every BatchNorm into the convolution before it (eval only); returns the model."""
    for seq in [m for m in model.modules() if isinstance(m, nn.Sequential)]:
        mods = list(seq)
        for i in range(len(mods) - 1):
            conv, bn = mods[i], mods[i + 1]
            if isinstance(conv, (nn.Conv1d, nn.Conv2d)) and isinstance(bn, (nn.BatchNorm1d, nn.BatchNorm2d)):
                scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
                shape = (-1,) + (1,) * (conv.weight.dim() - 1)
                conv.weight.data = conv.weight.data * scale.reshape(shape)
                bias = conv.bias.data if conv.bias is not None else torch.zeros_like(bn.running_mean)
                conv.bias = nn.Parameter((bias - bn.running_mean) * scale + bn.bias)
                seq[i + 1] = nn.Identity()
    return model
