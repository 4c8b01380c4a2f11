"""Manifest -> embeddings: the backend plan, the shared row loop and cache, the CPU pool, the device path, Ray, augmentation, the embedding benchmark."""
