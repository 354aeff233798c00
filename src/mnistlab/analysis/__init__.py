"""Looking at models and runs: metrics, evaluation, summaries, feature maps,
comparisons, reports and the pictures they draw.

Submodules are imported on use (``from mnistlab.analysis.evaluate import ...``),
so that importing one piece does not pull in matplotlib or the trainer.
"""
