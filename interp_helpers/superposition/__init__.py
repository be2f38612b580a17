"""Toy models of superposition (Elhage et al., 2022): batched training over a grid of
densities and importances, and the measures read off their weights (notebook 01).

May import: `core`.
"""
