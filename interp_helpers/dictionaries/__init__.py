"""Sparse dictionaries: SAEs and their trainers (`sae`, `matryoshka`), activations cached
from a model with their corpus labels (`activations`), recovery of ground-truth labels
(`recovery`), dictionaries compared across sizes and seeds (`splitting`) and feature
dashboards (`features`), and their figures (`figures`). Notebooks 04 and 05.

May import: `core`, `modelzoo`, `transformer_circuits`, `figures` (the generic plot helpers).
"""
