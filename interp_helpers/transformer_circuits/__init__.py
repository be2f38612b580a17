"""Circuits in transformers: induction and head scores (`induction`), OV/QK composition and
head ablation (`circuits`), activation patching (`patching`), IOI datasets and metrics
(`ioi`), path patching and the IOI circuit's roles (`ioi_circuit`), and attention views
(`attention_view`), and their figures (`figures`). Notebooks 02 and 03.

May import: `core`, `modelzoo` (corpus names and templates), `figures` (the generic plot
helpers).
"""
