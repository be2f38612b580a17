"""The runner: finds notebooks and their declared parameters (`catalog`), builds them from
their sources (`build`), executes them with papermill (`runner`), locally or on a Dask
cluster (`cluster`), records their key numbers (`results`), writes offline exports
(`export`) and is driven by the `workbook` command (`cli`).

May import: `core`. Never the science packages: the runner runs notebooks, it does not
know what they compute (the zoo's training command is run as its own program).
"""
