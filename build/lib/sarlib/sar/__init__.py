"""The SAR loss itself: batched 8-connected labelling, the spatial entropy, the other regularizers, the lambda schedule."""
