"""The BYOC image's code: SageMaker's `train` and `serve` for a GPT-Neo intent model.

This package must stay importable inside the image on its own: it imports nothing from the rest of the
repository. Serving with onnxruntime must not import torch.
"""
