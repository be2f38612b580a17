"""Linear probes and their limits (notebook 07), scored against the corpus' ground truth.

    linear.py      logistic-regression probes (L2, held out), mass-mean probes, control tasks
                   and selectivity (Hewitt & Liang 2019), random-label probes (Cover's bound)
    ccs.py         contrast-consistent search (Burns et al. 2022) and its distractor failure
                   (Farquhar et al. 2023)
    statements.py  true / false statements built from the corpus' concept hierarchy and from
                   arithmetic, contrast pairs, distractor words
    versus_sae.py  a probe against the best SAE latent for the same label
    steering.py    adding a direction to the residual stream, the model's True / False answer
    collect.py     per-layer activations: final tokens of short texts (the real model) and
                   labelled corpus tokens (the zoo), a randomly initialised twin of a model
    figures.py     accuracy by layer, the random-label curve

May import: core, figures, modelzoo, dictionaries.
"""
