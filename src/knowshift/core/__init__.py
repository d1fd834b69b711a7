"""The bottom layer: what every stage shares and nothing here computes with a model: the
question and answer schema, the parameter schema, the run-folder layout, atomic files, code keys,
progress, statistics and scoring. Imports nothing above it and never torch."""
