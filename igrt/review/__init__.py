"""Review images (CONTRACT §7): the CBCT and the planning CT in three orthogonal planes through
the plan isocentre, before and after the correction, as blends and checkerboards. Pure numpy
from volumes and transforms to RGB arrays (``views``, ``sample``, ``compose``, ``render``); PNG
encoding with the labels at the edge (``png``)."""
