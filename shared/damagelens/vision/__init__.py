"""Torch-side model code: architectures, loading, preprocessing, classify/explain/detect pipelines.

Never imported by the gateway.
"""
