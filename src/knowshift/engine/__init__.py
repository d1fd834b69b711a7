"""The model and where work runs: loading a model, encoding and generating, scoring predictions
on a split, the host's identity, and the executor that runs a stage's pieces in processes or
SLURM jobs. Imports only :mod:`knowshift.core`."""
