"""The one place for workarounds of upstream incompatibilities (keep it short).

mmdet3d 1.4's `ObjectSample` (datasets/transforms/dbsampler.py) builds arrays with
`dtype=np.long`, an alias numpy removed in 1.24; we pin numpy<2 (1.26), so restore the
alias to the type numpy.long meant (int64) until mmdet3d drops it.
"""
import warnings

import numpy as np

with warnings.catch_warnings():  # numpy 1.26 warns on the mere look-up of np.long
    warnings.simplefilter('ignore', FutureWarning)
    _missing_long = not hasattr(np, 'long')
if _missing_long:
    np.long = np.int64
