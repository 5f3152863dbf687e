"""ganzoo studio: the models' apps in the browser (`python -m ganzoo.studio ckpt=PATH ...`).

One tab per checkpoint, with the page that suits its model (chosen by the hooks its task
has, like ganzoo.sample's actions):

- Paint (SPADE, pix2pixHD; `paint.py`): GauGAN's canvas — a named, coloured class palette,
  brush, eraser, undo, fill, label-map upload; the image rendered on each stroke; a style
  image (SPADE with use_vae), pix2pixHD's feature centres per class; downloads.
- Explore (StyleGAN2, BigGAN; `explore.py`): seed, truncation (and cutoff), class, style
  mixing, interpolation.
- Translate (StarGAN; `translate.py`): an uploaded image, one column per ticked target.
- Caption (AttnGAN; `caption.py`): the stages and each word's attention map.

The pages only call ganzoo.cli.interactive (the in-memory forms of ganzoo.sample's actions),
so they show what `ganzoo.sample` writes for the same input. Everything is served locally:
no share link, no analytics, no fonts from a CDN; bound to 127.0.0.1 unless `host=` says
otherwise.
"""
