"""Graph objects: :class:`SignedGraph`, its blocks, and time-unrolled recurrent graphs."""

from .block import Block, make_block
from .signed import SignedGraph

__all__ = ["Block", "make_block", "SignedGraph"]
