"""Cards + data root -> a frozen manifest: the sampler, the manifest files, the committed manifests, the exclusion budget."""
