"""faco: corruption studies of language-model fine-tuning."""

__version__ = "0.1.0"
