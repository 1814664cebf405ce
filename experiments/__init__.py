"""The machine side: ingest, features, retrieval, subsets, distractors, designs.

The only package that imports torch, torchvision or dlib (and only inside the modules
that need them, so `python -m experiments ingest` starts quickly)."""
