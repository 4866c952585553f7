"""What a run computes on: the device and its kind, the precision resolved there, its peak FLOP rate."""
