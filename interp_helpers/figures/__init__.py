"""The generic plotly helpers (`plots`): array conversion, the common layout, a labelled
heatmap, a moving average, a figure as widget output. Each topic's own figures live beside
it, in `<topic>/figures.py` (and the superposition explorer in `superposition/explorer.py`).

May import: `core`.
"""
