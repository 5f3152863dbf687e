"""Class names and display colours of the label-map datasets, by label id as ganzoo's adapters
produce them (ADE20K: classes 0..149 and "other" 150; Cityscapes: cityscapesScripts ids 0..34;
COCO-Stuff: 0..181 and "unlabeled" 182; the synthetic scenes: SyntheticScenes.label_names).

Colours: Cityscapes' official ones (labels.py) where they are unique; every other class, and a
class whose official colour another class already has, takes the next unused colour of
ganzoo's palette (core.image.palette), so that a colour names exactly one class — a painted
label map can be read back pixel by pixel.
"""

from __future__ import annotations

from ganzoo.core.image import palette
from ganzoo.data.synthetic import SyntheticScenes

ADE20K = (
    "wall, building, sky, floor, tree, ceiling, road, bed, windowpane, grass, cabinet, sidewalk, "
    "person, earth, door, table, mountain, plant, curtain, chair, car, water, painting, sofa, "
    "shelf, house, sea, mirror, rug, field, armchair, seat, fence, desk, rock, wardrobe, lamp, "
    "bathtub, railing, cushion, base, box, column, signboard, chest of drawers, counter, sand, "
    "sink, skyscraper, fireplace, refrigerator, grandstand, path, stairs, runway, case, "
    "pool table, pillow, screen door, stairway, river, bridge, bookcase, blind, coffee table, "
    "toilet, flower, book, hill, bench, countertop, stove, palm, kitchen island, computer, "
    "swivel chair, boat, bar, arcade machine, hovel, bus, towel, light, truck, tower, "
    "chandelier, awning, streetlight, booth, television receiver, airplane, dirt track, apparel, "
    "pole, land, bannister, escalator, ottoman, bottle, buffet, poster, stage, van, ship, "
    "fountain, conveyer belt, canopy, washer, plaything, swimming pool, stool, barrel, basket, "
    "waterfall, tent, bag, minibike, cradle, oven, ball, food, step, tank, trade name, microwave, "
    "pot, animal, bicycle, lake, dishwasher, screen, blanket, sculpture, hood, sconce, vase, "
    "traffic light, tray, ashcan, fan, pier, crt screen, plate, monitor, bulletin board, shower, "
    "radiator, glass, clock, flag, other"
).split(", ")

CITYSCAPES: tuple[tuple[str, tuple[int, int, int]], ...] = (
    ("unlabeled", (0, 0, 0)), ("ego vehicle", (0, 0, 0)), ("rectification border", (0, 0, 0)),
    ("out of roi", (0, 0, 0)), ("static", (0, 0, 0)), ("dynamic", (111, 74, 0)),
    ("ground", (81, 0, 81)), ("road", (128, 64, 128)), ("sidewalk", (244, 35, 232)),
    ("parking", (250, 170, 160)), ("rail track", (230, 150, 140)), ("building", (70, 70, 70)),
    ("wall", (102, 102, 156)), ("fence", (190, 153, 153)), ("guard rail", (180, 165, 180)),
    ("bridge", (150, 100, 100)), ("tunnel", (150, 120, 90)), ("pole", (153, 153, 153)),
    ("polegroup", (153, 153, 153)), ("traffic light", (250, 170, 30)),
    ("traffic sign", (220, 220, 0)), ("vegetation", (107, 142, 35)), ("terrain", (152, 251, 152)),
    ("sky", (70, 130, 180)), ("person", (220, 20, 60)), ("rider", (255, 0, 0)),
    ("car", (0, 0, 142)), ("truck", (0, 0, 70)), ("bus", (0, 60, 100)), ("caravan", (0, 0, 90)),
    ("trailer", (0, 0, 110)), ("train", (0, 80, 100)), ("motorcycle", (0, 0, 230)),
    ("bicycle", (119, 11, 32)), ("license plate", (0, 0, 142)),
)  # fmt: skip

COCO_THINGS = (
    "person, bicycle, car, motorcycle, airplane, bus, train, truck, boat, traffic light, "
    "fire hydrant, street sign, stop sign, parking meter, bench, bird, cat, dog, horse, sheep, "
    "cow, elephant, bear, zebra, giraffe, hat, backpack, umbrella, shoe, eye glasses, handbag, "
    "tie, suitcase, frisbee, skis, snowboard, sports ball, kite, baseball bat, baseball glove, "
    "skateboard, surfboard, tennis racket, bottle, plate, wine glass, cup, fork, knife, spoon, "
    "bowl, banana, apple, sandwich, orange, broccoli, carrot, hot dog, pizza, donut, cake, chair, "
    "couch, potted plant, bed, mirror, dining table, window, desk, toilet, door, tv, laptop, "
    "mouse, remote, keyboard, cell phone, microwave, oven, toaster, sink, refrigerator, blender, "
    "book, clock, vase, scissors, teddy bear, hair drier, toothbrush, hair brush"
).split(", ")
COCO_STUFF = (
    "banner, blanket, branch, bridge, building-other, bush, cabinet, cage, cardboard, carpet, "
    "ceiling-other, ceiling-tile, cloth, clothes, clouds, counter, cupboard, curtain, desk-stuff, "
    "dirt, door-stuff, fence, floor-marble, floor-other, floor-stone, floor-tile, floor-wood, "
    "flower, fog, food-other, fruit, furniture-other, grass, gravel, ground-other, hill, house, "
    "leaves, light, mat, metal, mirror-stuff, moss, mountain, mud, napkin, net, paper, pavement, "
    "pillow, plant-other, plastic, platform, playingfield, railing, railroad, river, road, rock, "
    "roof, rug, salad, sand, sea, shelf, sky-other, skyscraper, snow, solid-other, stairs, stone, "
    "straw, structural-other, table, tent, textile-other, towel, tree, vegetable, wall-brick, "
    "wall-concrete, wall-other, wall-panel, wall-stone, wall-tile, wall-wood, water-other, "
    "waterdrops, window-blind, window-other, wood"
).split(", ")


def _names(data_name: str, num_labels: int) -> list[str]:
    if data_name == "synthetic":
        return list(SyntheticScenes.label_names)
    if data_name == "ade20k":
        return list(ADE20K)
    if data_name == "cityscapes":
        return [name for name, _ in CITYSCAPES]
    if data_name == "cocostuff":
        return COCO_THINGS + COCO_STUFF + ["unlabeled"]
    return [f"class {i}" for i in range(num_labels)]


def label_palette(data_name: str, num_labels: int) -> list[tuple[str, tuple[int, int, int]]]:
    """(name, RGB) per label id 0..num_labels-1, every colour distinct."""
    names = _names(data_name, num_labels)
    names += [f"class {i}" for i in range(len(names), num_labels)]
    official = dict(enumerate(c for _, c in CITYSCAPES)) if data_name == "cityscapes" else {}
    spare = iter((int(r), int(g), int(b)) for r, g, b in palette(4 * num_labels + 8).tolist()[1:])
    used: set[tuple[int, int, int]] = set()
    out = []
    for i in range(num_labels):
        colour = official.get(i)
        while colour is None or colour in used:
            colour = next(spare)
        used.add(colour)
        out.append((names[i], colour))
    return out
