"""knowshift: a runnable companion to Gekhman et al. (2024), "Does Fine-Tuning LLMs on New
Knowledge Encourage Hallucinations?". One module per study stage; notebooks call them."""

__version__ = "0.1.0"
