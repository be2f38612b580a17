"""The synthetic corpus whose every token carries the latent variables that produced it
(`corpus`), its tokenizer (`tokenizer`), the zoo models trained on it (`specs`: what each
model is; `zoo`: training and acceptance checks; `train_cli`: the `train-zoo` command), loading
them (`models`), a real pretrained model offline (`real_model`: SmolLM2-135M-Instruct, 4-bit,
from a pip package) and
colouring text by any label (`corpus_view`), and the zoo notebook's figures (`figures`).

May import: `core`, `figures` (the generic plot helpers), and `transformer_circuits` for the metrics the zoo's
acceptance checks share with the notebooks (induction scores, IOI prompts).
"""
