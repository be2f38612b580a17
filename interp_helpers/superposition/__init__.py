"""Toy models of superposition (Elhage et al., 2022): batched training over a grid of
densities and importances, and the measures read off their weights (`toy_models`), their
figures (`figures`) and the slider explorer (`explorer`). Notebook 01.

May import: `core`, `figures` (the generic plot helpers).
"""
