"""`MultiViewGridMask` as official CMT's GridMask: the blanked cells, the probability and
one coin per sample."""
import numpy as np

import plugin  # noqa: F401
from mmdet3d.registry import TRANSFORMS


# ---------------------------------------------------------------- GridMask
def test_grid_mask_blanks_the_cells_between_the_bands(monkeypatch):
    """d = 40 (band 20), bands starting at 0, no rotation: on 320x800 views (mask canvas 480x1200,
    cropped at (80, 200), both multiples of 40) exactly the pixels with y % 40 >= 20 and
    x % 40 >= 20 are blanked (mode 1), a quarter of the view, to the fill value."""
    draws = iter([40, 0, 0, 0] * 2)
    monkeypatch.setattr(np.random, 'randint', lambda *a, **k: next(draws))
    monkeypatch.setattr(np.random, 'rand', lambda *a: 0.0)      # the coin says "mask"
    fill = [103.53, 116.28, 123.675]
    t = TRANSFORMS.build(dict(type='MultiViewGridMask', fill=fill, prob=0.7))
    rng = np.random.default_rng(0)
    imgs = [rng.uniform(0, 255, (320, 800, 3)).astype(np.float32) for _ in range(2)]
    out = t(dict(img=[i.copy() for i in imgs]))
    y, x = np.mgrid[0:320, 0:800]
    blank = (y % 40 >= 20) & (x % 40 >= 20)
    assert blank.sum() == 64000 == 320 * 800 // 4
    for before, after in zip(imgs, out['img']):
        assert after.dtype == np.float32
        np.testing.assert_array_equal(after[blank], np.broadcast_to(np.float32(fill), (64000, 3)))
        np.testing.assert_array_equal(after[~blank], before[~blank])
    # after the data preprocessor's normalisation the blanked pixels are exactly 0, as in official CMT
    normed = (out['img'][0] - np.float32(fill)) / np.float32([57.375, 57.120, 58.395])
    assert (normed[blank] == 0).all()


def test_grid_mask_structure_probability_and_one_coin_per_sample():
    np.random.seed(0)
    t = TRANSFORMS.build(dict(type='MultiViewGridMask', fill=[1.0, 2.0, 3.0], prob=0.7))
    masked_samples, fractions = 0, []
    for _ in range(600):
        imgs = [np.full((32, 80, 3), 200.0, np.float32) for _ in range(6)]
        out = t(dict(img=imgs))['img']
        changed = [bool((o != 200.0).any()) for o in out]
        assert all(changed) or not any(changed)                   # one coin for the six views
        masked_samples += all(changed)
        for o in out if all(changed) else []:
            blank = (o == np.float32([1.0, 2.0, 3.0])).all(-1)
            assert ((o == 200.0).all(-1) | blank).all()           # only the fill value is written
            # blanked = (rows off the row bands) x (columns off the column bands)
            np.testing.assert_array_equal(blank, np.outer(blank.any(1), blank.any(0)))
            fractions.append(blank.mean())
    assert abs(masked_samples / 600 - 0.7) < 0.06
    assert 0.05 < np.mean(fractions) < 0.5
    assert len({f for f in fractions}) > 20                       # a mask per view
