"""The paper's study, one module per stage: the facts, SliCK, the fine-tuning sets and runs,
the analyses of their results, the figures and the findings the book reports."""
