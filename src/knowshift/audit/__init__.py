"""The audit of a user's own fine-tuning file: reading its containers and rows, deciding what
SliCK can judge, labelling it with the base model, the expected effect and the HTML report
(rendered from ``templates/``)."""
