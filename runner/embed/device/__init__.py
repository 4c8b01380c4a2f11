"""The device backend: read stored pixels on the CPU, stage them, preprocess and embed on the encoder's device."""
