"""Exact image operations in the MATLAB conventions that SR papers report in."""

from ranksrgan.ops.color import quantize_uint8, rgb_to_gray, rgb_to_y, round_levels
from ranksrgan.ops.resize import imresize, mod_crop

__all__ = ["imresize", "mod_crop", "rgb_to_y", "rgb_to_gray", "quantize_uint8", "round_levels"]
