"""Plotly figures (`plots`) and ipywidgets explorers (`widgets`) the notebooks draw with.

May import: `core`, and the science package whose results a figure draws.
"""
