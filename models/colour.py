"""Keeping the photo's colours (Gatys, Bethge, Hertzmann & Shechtman 2016, "Preserving Color
in Neural Artistic Style Transfer"), applied to a stylised output and the photo it came from.
Images are float tensors (3, H, W) or (B, 3, H, W), RGB, 0..255.

- `preserve_luminance`: luminance-only transfer. The luminance Y comes from the stylised
  image, the chroma from the photo. The colour space is full-range YCbCr of ITU-R BT.601 (what
  JPEG stores): Y = 0.299 R + 0.587 G + 0.114 B. Gatys et al. use YIQ; its Y is the same and its
  two chroma axes span the same plane (both are zero exactly on the grey axis), so the image
  with a given Y and the photo's chroma is the same in either space: photo + t * (1, 1, 1) per
  pixel. Where the stylised Y would take that pixel outside 0..255, Y is clamped to the range
  in which it stays inside (never empty: the photo's own Y is in it), so the chroma is kept
  exactly and only the luminance is clipped; the result needs no further clipping.
- `match_histogram`: the colour-histogram variant, done on the output: an affine map
  x -> A (x - mu_out) + mu_photo with A = C_photo^(1/2) C_out^(-1/2) (symmetric square roots,
  the "image analogies" choice in Gatys et al.), so the output's colour mean and covariance
  become the photo's; then clamped to 0..255.

The paper applies both around training (style image recoloured, or luminance-only networks);
a trained feed-forward network's output can only be changed after the fact, which is what
these do: every network and decoder gets them.
"""

from __future__ import annotations

import torch

# Full-range BT.601 (JFIF): rows give Y, Cb - 128, Cr - 128 from R, G, B.
RGB_TO_YCBCR = torch.tensor([[0.299, 0.587, 0.114],
                             [-0.168735892, -0.331264108, 0.5],
                             [0.5, -0.418687589, -0.081312411]], dtype=torch.float64)
# A tiny ridge on the covariances: a flat (single-colour) output or photo has a singular one.
COVARIANCE_EPS = 1e-3


def _batched(x: torch.Tensor) -> tuple[torch.Tensor, bool]:
    if x.dim() == 3 and x.shape[0] == 3:
        return x[None], True
    if x.dim() != 4 or x.shape[1] != 3:
        raise ValueError(f"expected an RGB image (3, H, W) or batch (B, 3, H, W), got shape {tuple(x.shape)}")
    return x, False


def _check_pair(stylised: torch.Tensor, photo: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, bool]:
    s, single = _batched(stylised)
    p, _ = _batched(photo)
    if s.shape != p.shape:
        raise ValueError(f"the stylised image {tuple(stylised.shape)} and the photo {tuple(photo.shape)} differ in shape")
    return s, p, single


def _mix(m: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """A 3x3 colour matrix applied to every pixel of (B, 3, H, W)."""
    return torch.einsum("ij,bjhw->bihw", m.to(x.dtype), x)


def to_ycbcr(rgb: torch.Tensor) -> torch.Tensor:
    """(…, 3, H, W) RGB 0..255 -> Y 0..255, Cb and Cr centred on 128 (JPEG's 8-bit levels)."""
    x, single = _batched(rgb)
    y = _mix(RGB_TO_YCBCR, x.double())
    y[:, 1:] += 128
    return (y[0] if single else y).to(rgb.dtype)


def preserve_luminance(stylised: torch.Tensor, photo: torch.Tensor) -> torch.Tensor:
    """The stylised image's luminance with the photo's chroma (see the module's docstring)."""
    s, p, single = _check_pair(stylised, photo)
    sd, pd = s.double(), p.double()
    y_out = _mix(RGB_TO_YCBCR[:1], sd)  # (B, 1, H, W)
    y_photo = _mix(RGB_TO_YCBCR[:1], pd)
    offsets = pd - y_photo  # RGB = Y + offset(chroma): the photo's chroma as per-channel offsets
    lo = (-offsets).amax(dim=1, keepdim=True)  # Y >= -offset_c for every channel c
    hi = (255 - offsets).amin(dim=1, keepdim=True)
    y = torch.minimum(torch.maximum(y_out, lo), hi)
    out = y + offsets
    return (out[0] if single else out).to(stylised.dtype)


def _sqrtm(c: torch.Tensor, inverse: bool = False) -> torch.Tensor:
    vals, vecs = torch.linalg.eigh(c)
    vals = vals.clamp_min(COVARIANCE_EPS)
    return vecs @ torch.diag_embed(vals.rsqrt() if inverse else vals.sqrt()) @ vecs.transpose(-1, -2)


def colour_stats(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, 3, H, W) -> per image, the colour mean (B, 3) and covariance (B, 3, 3), fp64."""
    flat = x.double().flatten(2)  # (B, 3, N)
    mean = flat.mean(dim=2)
    centred = flat - mean[..., None]
    return mean, centred @ centred.transpose(1, 2) / flat.shape[2]


def match_histogram(stylised: torch.Tensor, photo: torch.Tensor) -> torch.Tensor:
    """The stylised image recoloured to the photo's colour mean and covariance, 0..255."""
    s, p, single = _check_pair(stylised, photo)
    mu_s, cov_s = colour_stats(s)
    mu_p, cov_p = colour_stats(p)
    eye = torch.eye(3, dtype=torch.float64)
    a = _sqrtm(cov_p + COVARIANCE_EPS * eye) @ _sqrtm(cov_s + COVARIANCE_EPS * eye, inverse=True)  # (B, 3, 3)
    centred = s.double() - mu_s[..., None, None]
    out = torch.einsum("bij,bjhw->bihw", a, centred) + mu_p[..., None, None]
    out = out.clamp(0, 255)
    return (out[0] if single else out).to(stylised.dtype)


def apply_colors(stylised: torch.Tensor, photo: torch.Tensor, colors: str) -> torch.Tensor:
    """One of models/stylize_options.py's COLOR_MODES."""
    if colors == "style":
        return stylised
    if colors == "luminance":
        return preserve_luminance(stylised, photo)
    if colors == "histogram":
        return match_histogram(stylised, photo)
    from models.stylize_options import check_colors

    check_colors(colors)  # raises with the valid names
    raise AssertionError(colors)
