"""The dtypes netstruct uses for its arrays (the only place they are chosen)."""

from __future__ import annotations

import numpy as np

INDEX_DTYPE = np.int64
SIGN_DTYPE = np.int8
WEIGHT_DTYPE = np.float32
MASK_DTYPE = np.bool_
