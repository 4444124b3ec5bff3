"""mmengine's Runner, loading `load_from` strictly (used by tools/test.py).

mmengine loads `load_from` with `strict=False`: a checkpoint that fills only part of the
model is evaluated with the rest at random initialisation, and the only sign is a logged
list of keys. Evaluating such a model gives a number that means nothing, so `tools/test.py`
builds this runner, which loads strictly: a missing, unexpected or mis-shaped key stops the
run with the keys named. Training keeps mmengine's runner, where a partial `load_from`
(e.g. an AQR model started from a trained CMT) is legitimate.
"""
from mmengine.runner import Runner

from mmdet3d.registry import RUNNERS


@RUNNERS.register_module()
class StrictLoadRunner(Runner):

    def load_checkpoint(self, filename, map_location='cpu', strict=True, revise_keys=[(r'^module.', '')]):
        return super().load_checkpoint(filename, map_location=map_location, strict=strict, revise_keys=revise_keys)
