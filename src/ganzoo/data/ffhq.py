"""FFHQ (Flickr-Faces-HQ) as StyleGAN2 reads it: an image folder of PNGs.

Layout (the official release, NVlabs/ffhq-dataset):

    <root>/00000/00000.png ... <root>/69000/69999.png   (images1024x1024 or thumbnails128x128)

All 70,000 images are the training set, and FID is computed against them (StyleGAN2);
every split reads them all. StyleGAN2 config F trains with `--mirror=1` (x-flips double
the dataset) and resizes with dataset_tool's lanczos filter when the resolution is
below 1024.
"""

from __future__ import annotations

from typing import ClassVar

from ganzoo.data.files import require_some
from ganzoo.data.image_folder import ImageFolder

LAYOUT = "<root>/<00000..69000>/<00000..69999>.png (FFHQ images1024x1024)"


class FFHQ(ImageFolder):
    """FFHQ faces: an ImageFolder of PNGs (see ImageFolder for the arguments).

    Sample: image (3, H, W) float in [-1, 1].
    """

    name: ClassVar[str] = "ffhq"
    layout: ClassVar[str] = LAYOUT

    def scan(self) -> None:
        super().scan()
        self.files = [p for p in self.files if p.suffix == ".png"]
        require_some(self.files, self.root, "*/*.png images", self.name, LAYOUT)
